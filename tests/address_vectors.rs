//! Address and wallet-backup vectors (the rules: `proto/PROTOCOL.md` §8), read as a second
//! implementation would:
//!
//! - `proto/vectors/address.txt`: BIP 350's Bech32m vectors, and this chain's addresses (a key's
//!   text on the default chain and on others; hex input; the other kind refused).
//! - `proto/vectors/mnemonic.txt`: BIP 39's English vectors (trezor/python-mnemonic), SLIP-0010's
//!   Ed25519 vectors 1 and 2, and this chain's wallet keys from their words.
//! - `a_million_typos_are_all_rejected`: 10^6 random addresses with 1 to 4 characters changed,
//!   every one rejected before the key is even looked at (the checksum's guarantee).

use gossipchain::chain::address::check_bech32m;
use gossipchain::chain::{Address, ChainKind, ParseAddressError};
use gossipchain::wallet::{self, Wallet};
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;

fn read(name: &str) -> BTreeMap<String, String> {
    let path = format!("{}/proto/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("{name} line {}: no ' = '", n + 1));
        assert!(
            map.insert(k.to_string(), v.to_string()).is_none(),
            "{name} line {}: duplicate key {k}",
            n + 1
        );
    }
    map
}

/// `\xNN` escapes of the BIP 350 strings.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let code = u8::from_str_radix(&rest[i + 2..i + 4], 16).unwrap();
        out.push(char::from(code));
        rest = &rest[i + 4..];
    }
    out.push_str(rest);
    out
}

fn b32(v: &BTreeMap<String, String>, key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(&v[key], &mut out).unwrap_or_else(|e| panic!("{key}: {e}"));
    out
}

/// The entries `prefix.<i>.*` present, i = 0, 1, ...
fn indices(v: &BTreeMap<String, String>, prefix: &str, field: &str) -> Vec<usize> {
    (0..)
        .take_while(|i| v.contains_key(&format!("{prefix}.{i}.{field}")))
        .collect()
}

#[test]
fn bip350_vectors_pass() {
    let v = read("address.txt");
    let (mut valid, mut invalid) = (0, 0);
    for (k, s) in &v {
        if k.starts_with("bip350.valid.") {
            let s = unescape(s);
            assert!(
                check_bech32m(&s).is_ok(),
                "{k} {s:?}: {:?}",
                check_bech32m(&s)
            );
            valid += 1;
        } else if k.starts_with("bip350.invalid.") {
            let s = unescape(s);
            assert!(check_bech32m(&s).is_err(), "{k} {s:?} was accepted");
            invalid += 1;
        }
    }
    assert_eq!((valid, invalid), (7, 14));
}

#[test]
fn addresses_encode_and_parse_as_the_vectors_say() {
    let v = read("address.txt");
    let cases = indices(&v, "address", "key");
    assert_eq!(cases.len(), 3);
    for i in cases {
        let a = Address(b32(&v, &format!("address.{i}.key")));
        let gc = &v[&format!("address.{i}.gc")];
        let gct = &v[&format!("address.{i}.gct")];
        assert_eq!(&ChainKind::Main.encode(&a), gc);
        assert_eq!(&ChainKind::Test.encode(&a), gct);
        for (kind, text, other) in [(ChainKind::Main, gc, gct), (ChainKind::Test, gct, gc)] {
            assert_eq!(kind.parse(text), Ok(a));
            assert_eq!(kind.parse(&text.to_uppercase()), Ok(a));
            assert_eq!(kind.parse(&a.to_hex()), Ok(a));
            assert_eq!(kind.parse(&a.to_hex().to_uppercase()), Ok(a));
            assert!(matches!(
                kind.parse(other),
                Err(ParseAddressError::WrongChain { .. })
            ));
        }
    }
}

#[test]
fn bip39_vectors_pass() {
    let v = read("mnemonic.txt");
    let cases = indices(&v, "bip39", "entropy");
    assert_eq!(cases.len(), 24);
    for i in cases {
        let entropy = hex::decode(&v[&format!("bip39.{i}.entropy")]).unwrap();
        let words = &v[&format!("bip39.{i}.words")];
        let m = bip39::Mnemonic::from_entropy(&entropy).unwrap();
        assert_eq!(&m.to_string(), words, "bip39.{i}");
        let parsed = wallet::parse_mnemonic(words).unwrap();
        assert_eq!(parsed.to_entropy(), entropy, "bip39.{i}");
        assert_eq!(
            hex::encode(parsed.to_seed("TREZOR")),
            v[&format!("bip39.{i}.seed")],
            "bip39.{i}"
        );
    }
}

#[test]
fn slip10_ed25519_vectors_pass() {
    let v = read("mnemonic.txt");
    let mut chains = 0;
    for n in [1, 2] {
        let seed = hex::decode(&v[&format!("slip10.{n}.seed")]).unwrap();
        let prefix = format!("slip10.{n}.");
        for key in v
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.ends_with(".private"))
        {
            let path_text = &key[prefix.len()..key.len() - ".private".len()];
            // "m/0H/1H": the indices without the hardened bit.
            let path: Vec<u32> = path_text
                .split('/')
                .skip(1)
                .map(|i| i.strip_suffix('H').unwrap().parse().unwrap())
                .collect();
            let (secret, chain_code) = wallet::slip10_ed25519(&seed, &path);
            assert_eq!(hex::encode(secret), v[key], "{key}");
            let base = &key[..key.len() - ".private".len()];
            assert_eq!(
                hex::encode(chain_code),
                v[&format!("{base}.chain_code")],
                "{base}"
            );
            let public = Wallet::from_secret(secret).address();
            assert_eq!(
                format!("00{}", public.to_hex()),
                v[&format!("{base}.public")],
                "{base}"
            );
            chains += 1;
        }
    }
    assert_eq!(
        chains, 12,
        "6 chains in each of SLIP-0010's two Ed25519 vectors"
    );
}

#[test]
fn wallet_keys_from_words_are_the_vectors() {
    let v = read("mnemonic.txt");
    let cases = indices(&v, "wallet", "words");
    assert_eq!(cases.len(), 3);
    for i in cases {
        let m = wallet::parse_mnemonic(&v[&format!("wallet.{i}.words")]).unwrap();
        let w = Wallet::from_mnemonic(&m);
        assert_eq!(
            hex::encode(w.secret()),
            v[&format!("wallet.{i}.secret")],
            "wallet.{i}"
        );
        assert_eq!(w.address().to_hex(), v[&format!("wallet.{i}.key")]);
        assert_eq!(
            ChainKind::Main.encode(&w.address()),
            v[&format!("wallet.{i}.gc")]
        );
    }
}

/// Characters a typo may put in: the data characters and the separator.
const TYPO_CHARS: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l1";

#[test]
fn a_million_typos_are_all_rejected() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(350);
    let mut checked = 0u32;
    for round in 0..1000 {
        let kind = if round % 2 == 0 {
            ChainKind::Main
        } else {
            ChainKind::Test
        };
        // Any 32 bytes: the checksum must reject a typo whether or not they are a key.
        let address = Address(rng.random());
        let text = kind.encode(&address).into_bytes();
        for _ in 0..1000 {
            let mut typo = text.clone();
            let changes = rng.random_range(1..=4);
            let mut positions = Vec::with_capacity(4);
            while positions.len() < changes {
                let p = rng.random_range(0..typo.len());
                if !positions.contains(&p) {
                    positions.push(p);
                }
            }
            for &p in &positions {
                loop {
                    let c = TYPO_CHARS[rng.random_range(0..TYPO_CHARS.len())];
                    if c != text[p] {
                        typo[p] = c;
                        break;
                    }
                }
            }
            let typo = String::from_utf8(typo).unwrap();
            match kind.parse(&typo) {
                Err(ParseAddressError::NotAKey) | Ok(_) => {
                    panic!("{typo} (from {:?}) was not rejected as text", address)
                }
                Err(_) => checked += 1,
            }
        }
    }
    assert_eq!(checked, 1_000_000);
}
