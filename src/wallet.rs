//! Secret key files: the node's wallet (an Ed25519 key whose public half is its address) and
//! its libp2p identity. A file holds the 32-byte secret as 64 hex digits and a newline, is
//! created with mode 0600, and is never overwritten.
//!
//! A wallet made by `wallet new` also has a backup a person can write down: 24 BIP 39 words.
//! The key is derived from them (PROTOCOL.md §8): the BIP 39 seed (empty passphrase), then
//! SLIP-0010 Ed25519 along [`DERIVATION_PATH`]. The key file still holds only the secret, so
//! files made before mnemonics, and by `--file` users, keep working.

use crate::chain::{Address, ChainId, Transfer};
use ed25519_zebra::SigningKey;
use hmac::{KeyInit, Mac};
use sha2::Sha512;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("key file {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error(
        "key file {path} is not 64 hex digits; refusing to replace it (move it away to create a new key)"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the 32-byte secret in `path`.
pub fn read_secret(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|cause| KeyFileError::Io {
        path: path.into(),
        cause,
    })?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| KeyFileError::Malformed { path: path.into() })?;
    Ok(out)
}

/// Reads the secret in `path`, or creates the file with a fresh random secret (mode 0600).
/// Returns the secret and whether it was created.
pub fn load_or_create_secret(path: &Path) -> Result<([u8; 32], bool), KeyFileError> {
    if path.exists() {
        return read_secret(path).map(|s| (s, false));
    }
    let secret: [u8; 32] = rand::random();
    write_new_secret(path, &secret)?;
    Ok((secret, true))
}

/// Writes `secret` to a new file `path` (mode 0600, its directory made if absent); fails if the
/// file exists.
pub fn write_new_secret(path: &Path, secret: &[u8; 32]) -> Result<(), KeyFileError> {
    let io = |cause| KeyFileError::Io {
        path: path.into(),
        cause,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    writeln!(file, "{}", hex::encode(secret)).map_err(io)?;
    file.sync_all().map_err(io)
}

/// SLIP-0044 coin type of the derivation path: 26467 = 0x6763, "gc" in ASCII (unregistered).
pub const COIN_TYPE: u32 = 26467;

/// The wallet key's path below the SLIP-0010 master key, every index hardened:
/// m/44'/26467'/0'/0'/0' (purpose, coin type, account, change, index as in BIP 44).
pub const DERIVATION_PATH: [u32; 5] = [44, COIN_TYPE, 0, 0, 0];

/// Words of a new wallet's backup: 256 bits of entropy and an 8-bit checksum.
pub const MNEMONIC_WORDS: usize = 24;

/// Why words are not a backup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MnemonicError {
    /// Not 12, 15, 18, 21 or 24 words.
    #[error("a backup is 24 words (or 12, 15, 18, 21); got {0}")]
    WordCount(usize),
    /// A word outside the list.
    #[error("word {position}, '{word}', is not in the BIP 39 English word list{hint}")]
    UnknownWord {
        /// 1-based.
        position: usize,
        /// The word as given.
        word: String,
        /// Words of the list that start like it, if any.
        hint: String,
    },
    /// Every word is in the list but the checksum does not match.
    #[error(
        "the words' checksum does not match: a word is wrong, missing or out of order (compare them with the backup)"
    )]
    Checksum,
}

/// A new random 24-word backup.
pub fn new_mnemonic() -> bip39::Mnemonic {
    let entropy: [u8; 32] = rand::random();
    bip39::Mnemonic::from_entropy(&entropy).expect("32 bytes are a valid entropy length")
}

/// Parses words typed or pasted by a user: English BIP 39 words separated by any blanks, in
/// any case.
pub fn parse_mnemonic(text: &str) -> Result<bip39::Mnemonic, MnemonicError> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if ![12, 15, 18, 21, 24].contains(&words.len()) {
        return Err(MnemonicError::WordCount(words.len()));
    }
    let list = bip39::Language::English;
    if let Some((i, w)) = words
        .iter()
        .enumerate()
        .find(|(_, w)| list.find_word(w).is_none())
    {
        // Words of the list that share the first three letters: a typo usually keeps them.
        let prefix: String = w.chars().take(3).collect();
        let near: Vec<&str> = list.words_by_prefix_iter(&prefix).collect();
        let hint = match near.len() {
            0 => String::new(),
            1..=6 => format!(" (did you mean {}?)", near.join(", ")),
            _ => format!(" ({} words start with '{prefix}')", near.len()),
        };
        return Err(MnemonicError::UnknownWord {
            position: i + 1,
            word: w.clone(),
            hint,
        });
    }
    bip39::Mnemonic::parse_in_normalized(list, &words.join(" ")).map_err(|e| match e {
        bip39::Error::BadWordCount(n) => MnemonicError::WordCount(n),
        _ => MnemonicError::Checksum,
    })
}

/// The wallet secret of a backup: the BIP 39 seed (empty passphrase), then SLIP-0010 along
/// [`DERIVATION_PATH`].
pub fn secret_from_mnemonic(mnemonic: &bip39::Mnemonic) -> [u8; 32] {
    slip10_ed25519(&mnemonic.to_seed(""), &DERIVATION_PATH).0
}

/// SLIP-0010 derivation for Ed25519: the secret key and chain code at `path` below the master
/// key of `seed`. Every index is hardened (Ed25519 has no other kind): `path` holds the indices
/// without the hardened bit, which is added here.
///
/// Written here because the crates that do this (`slip10`, `ed25519-dalek-bip32`,
/// `slip10_ed25519`) pin older hmac/sha2 releases, which would bring a second SHA-2 into the
/// build; the derivation is two HMAC-SHA512 steps, checked against SLIP-0010's vectors.
pub fn slip10_ed25519(seed: &[u8], path: &[u32]) -> ([u8; 32], [u8; 32]) {
    let hmac = |key: &[u8], parts: &[&[u8]]| -> ([u8; 32], [u8; 32]) {
        let mut mac =
            hmac::Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes keys of any length");
        for p in parts {
            mac.update(p);
        }
        let out = mac.finalize().into_bytes();
        let (mut k, mut c) = ([0u8; 32], [0u8; 32]);
        k.copy_from_slice(&out[..32]);
        c.copy_from_slice(&out[32..]);
        (k, c)
    };
    let (mut key, mut chain_code) = hmac(b"ed25519 seed", &[seed]);
    for &index in path {
        let hardened = (index | 0x8000_0000).to_be_bytes();
        (key, chain_code) = hmac(&chain_code, &[&[0], &key, &hardened]);
    }
    (key, chain_code)
}

/// A wallet: one Ed25519 key.
pub struct Wallet {
    /// The signing key.
    key: SigningKey,
}

impl Wallet {
    /// Loads the wallet in `path`, creating it if absent.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyFileError> {
        let (secret, created) = load_or_create_secret(path)?;
        Ok((Self::from_secret(secret), created))
    }

    /// Loads an existing wallet.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        read_secret(path).map(Self::from_secret)
    }

    /// A wallet from a secret.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// The wallet of a backup's words.
    pub fn from_mnemonic(mnemonic: &bip39::Mnemonic) -> Self {
        Self::from_secret(secret_from_mnemonic(mnemonic))
    }

    /// Its address (the public key).
    pub fn address(&self) -> Address {
        Address::of(&self.key)
    }

    /// The 32-byte secret, as a key file holds it.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The secret in hex, for `wallet show --secret`.
    pub fn secret_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// Signs a transfer for `chain_id`.
    pub fn sign(
        &self,
        chain_id: &ChainId,
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
    ) -> Transfer {
        Transfer::sign(&self.key, chain_id, to, amount, fee, nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/wallet.key");
        let (w1, created) = Wallet::load_or_create(&path).unwrap();
        assert!(created);
        let (w2, created) = Wallet::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(w1.address(), w2.address());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_malformed_file_is_an_error_and_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            Wallet::load_or_create(&path),
            Err(KeyFileError::Malformed { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }

    #[test]
    fn mnemonic_errors_name_the_problem() {
        let m = new_mnemonic();
        assert_eq!(m.word_count(), MNEMONIC_WORDS);
        let words: Vec<&str> = m.words().collect();
        let text = words.join(" ");
        assert_eq!(
            parse_mnemonic(&format!("  {}\n", text.to_uppercase())),
            Ok(m.clone())
        );
        assert_eq!(
            Wallet::from_mnemonic(&parse_mnemonic(&text).unwrap()).address(),
            Wallet::from_mnemonic(&m).address()
        );
        assert_eq!(
            parse_mnemonic(&words[..23].join(" ")),
            Err(MnemonicError::WordCount(23))
        );
        let mut typo = words.clone();
        typo[6] = "abandn";
        let e = parse_mnemonic(&typo.join(" ")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "word 7, 'abandn', is not in the BIP 39 English word list (did you mean abandon?)"
        );
        assert_eq!(
            parse_mnemonic(&["abandon"; 24].join(" ")),
            Err(MnemonicError::Checksum)
        );
    }
}
