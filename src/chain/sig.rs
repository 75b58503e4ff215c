//! The consensus signature rule, ZIP 215 Ed25519 (`proto/PROTOCOL.md` section 4.5), through
//! `ed25519-zebra`: a block's transfers in batches spread over the cores, and the transfers
//! waiting for admission to the mempool as one batch ([`verify_all`]). ZIP 215 makes single and
//! batch verification agree, so a block is valid or not whatever the grouping; when a batch
//! fails, its transfers are checked one by one to name the first that fails, with its reason,
//! exactly as single checks would.

use super::tx::SignatureError;
use ed25519_zebra::batch;
use ed25519_zebra::{Signature, SigningKey, VerificationKey, VerificationKeyBytes};
use std::sync::OnceLock;

/// The 32-byte public key of a signing key.
pub fn public_key(key: &SigningKey) -> [u8; 32] {
    VerificationKeyBytes::from(key).into()
}

/// Whether 32 bytes decode to a curve point (non-canonical encodings included): whether they
/// can be a sender.
pub fn is_public_key(bytes: &[u8; 32]) -> bool {
    VerificationKey::try_from(*bytes).is_ok()
}

/// Signs `msg` (RFC 8032, deterministic).
pub fn sign(key: &SigningKey, msg: &[u8]) -> [u8; 64] {
    key.sign(msg).to_bytes()
}

/// Checks one signature under ZIP 215.
pub fn verify(
    public_key: &[u8; 32],
    signature: &[u8; 64],
    msg: &[u8],
) -> Result<(), SignatureError> {
    let key = VerificationKey::try_from(*public_key).map_err(|_| SignatureError::BadPublicKey)?;
    key.verify(&Signature::from_bytes(signature), msg)
        .map_err(|_| SignatureError::BadSignature)
}

/// One signature to check: the public key, the signature, the signed message.
pub type Item<'a> = (&'a [u8; 32], &'a [u8; 64], &'a [u8]);

/// Fewest signatures worth a batch: below this, single checks are as fast.
pub const MIN_BATCH: usize = 2;
/// Fewest signatures given to each thread: below this, a thread's start-up costs more than it
/// saves (a batch check is about 15-20 microseconds of CPU per signature).
pub const MIN_PER_THREAD: usize = 64;

/// Checks every item under ZIP 215 with batches (on one thread). On failure, returns the
/// index of the first failing item in order and why it fails, as [`verify`] on each item in
/// turn would.
pub fn verify_batch(items: &[Item<'_>]) -> Result<(), (usize, SignatureError)> {
    if items.len() < MIN_BATCH {
        return verify_each(items, 0);
    }
    let mut verifier = batch::Verifier::new();
    for (key, sig, msg) in items {
        verifier.queue((
            VerificationKeyBytes::from(**key),
            Signature::from_bytes(sig),
            *msg,
        ));
    }
    // The batch coefficients are random: an attacker who cannot predict them cannot make an
    // invalid signature pass (probability 2^-128). Which signatures are valid does not depend
    // on them (ZIP 215), so nodes agree whatever the coefficients.
    match verifier.verify(rand::rng()) {
        Ok(()) => Ok(()),
        Err(_) => verify_each(items, 0),
    }
}

/// Checks items one at a time; the first failure, its index offset by `base`.
fn verify_each(items: &[Item<'_>], base: usize) -> Result<(), (usize, SignatureError)> {
    for (i, (key, sig, msg)) in items.iter().enumerate() {
        verify(key, sig, msg).map_err(|e| (base + i, e))?;
    }
    // A batch that failed although every item verifies alone would contradict ZIP 215's
    // agreement (or be the 2^-128 chance the other way): the single checks decide.
    Ok(())
}

/// The cores this process may use, read once (the lookup reads cgroup files on Linux).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How many threads check `n` signatures when `cores` are available: at least
/// [`MIN_PER_THREAD`] each, one thread for small blocks.
pub fn threads_for(n: usize, cores: usize) -> usize {
    (n / MIN_PER_THREAD).clamp(1, cores.max(1))
}

/// [`verify_batch`] over all cores: the items are cut into one contiguous run per thread
/// (see [`threads_for`]), each checked as a batch. The error is that of the first failing item
/// in order, whichever thread finds it.
pub fn verify_parallel(items: &[Item<'_>]) -> Result<(), (usize, SignatureError)> {
    verify_on(items, threads_for(items.len(), cores()))
}

/// [`verify_parallel`] on exactly `threads` threads (at least one, at most one per item).
pub fn verify_on(items: &[Item<'_>], threads: usize) -> Result<(), (usize, SignatureError)> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return verify_batch(items);
    }
    let per = items.len().div_ceil(threads);
    let mut runs = items.chunks(per).enumerate();
    let (_, first) = runs.next().expect("at least one item");
    let results: Vec<Result<(), (usize, SignatureError)>> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .map(|(i, run)| s.spawn(move || verify_batch(run).map_err(|(at, e)| (i * per + at, e))))
            .collect();
        // This thread takes the first run instead of waiting idle.
        let mut results = vec![verify_batch(first)];
        results.extend(handles.into_iter().map(|h| match h.join() {
            Ok(r) => r,
            // Signature checks do not panic on any input; if one ever did, propagate it.
            Err(panic) => std::panic::resume_unwind(panic),
        }));
        results
    });
    // Runs are in item order, so the first error found is the first failing item.
    results.into_iter().collect()
}

/// After a failure, the items left are checked in batches of this many, so that each further
/// forgery costs one small batch, not a pass over everything left.
pub const RETRY_RUN: usize = 64;

/// Every item's verdict, in order: all of them at once first ([`verify_parallel`]); past a
/// failure, the rest in batches of [`RETRY_RUN`], each failing batch checked one by one up to
/// its first failure. What gossip admission needs: a forgery among good signatures is found
/// and named alone, and costs the good ones little.
pub fn verify_all(items: &[Item<'_>]) -> Vec<Result<(), SignatureError>> {
    let mut out = Vec::with_capacity(items.len());
    let mut rest = items;
    let mut first = true;
    while !rest.is_empty() {
        let (run, result) = if first {
            (rest, verify_parallel(rest))
        } else {
            let run = &rest[..rest.len().min(RETRY_RUN)];
            (run, verify_batch(run))
        };
        first = false;
        // Both report the first failing item, every item before it having verified.
        match result {
            Ok(()) => {
                out.extend(run.iter().map(|_| Ok(())));
                rest = &rest[run.len()..];
            }
            Err((at, reason)) => {
                out.extend((0..at).map(|_| Ok(())));
                out.push(Err(reason));
                rest = &rest[at + 1..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from([seed; 32])
    }

    fn signed(n: usize) -> Vec<([u8; 32], [u8; 64], Vec<u8>)> {
        (0..n)
            .map(|i| {
                let k = key(i as u8);
                let msg = format!("message {i}").into_bytes();
                (public_key(&k), sign(&k, &msg), msg)
            })
            .collect()
    }

    fn items(v: &[([u8; 32], [u8; 64], Vec<u8>)]) -> Vec<Item<'_>> {
        v.iter().map(|(k, s, m)| (k, s, m.as_slice())).collect()
    }

    #[test]
    fn valid_signatures_pass_on_any_number_of_threads() {
        let v = signed(200);
        for threads in [1, 2, 3, 7, 200, 500] {
            assert_eq!(verify_on(&items(&v), threads), Ok(()), "{threads} threads");
        }
        assert_eq!(verify_parallel(&items(&v)), Ok(()));
        assert_eq!(verify_parallel(&[]), Ok(()));
    }

    #[test]
    fn the_first_failure_is_reported_whatever_the_split() {
        let mut v = signed(150);
        v[120].2.push(0); // changed message
        v[40].1[0] ^= 1; // changed R
        v[90].0 = [0xff; 32]; // not a point? (checked below)
        let bad_key = !is_public_key(&[0xff; 32]);
        for threads in [1, 2, 3, 4, 150] {
            let got = verify_on(&items(&v), threads);
            assert_eq!(got, Err((40, SignatureError::BadSignature)), "{threads}");
        }
        v[40].1[0] ^= 1;
        let want = if bad_key {
            (90, SignatureError::BadPublicKey)
        } else {
            (90, SignatureError::BadSignature)
        };
        for threads in [1, 2, 3, 4] {
            assert_eq!(verify_on(&items(&v), threads), Err(want), "{threads}");
        }
    }

    #[test]
    fn every_forgery_is_named_and_every_good_signature_passes() {
        let mut v = signed(300);
        let bad = [0, 5, 6, 70, 150, 299];
        for &i in &bad {
            v[i].2.push(1);
        }
        let verdicts = verify_all(&items(&v));
        assert_eq!(verdicts.len(), 300);
        for (i, verdict) in verdicts.iter().enumerate() {
            let want = if bad.contains(&i) {
                Err(SignatureError::BadSignature)
            } else {
                Ok(())
            };
            assert_eq!(*verdict, want, "item {i}");
        }
        assert!(verify_all(&[]).is_empty());
    }

    #[test]
    fn threads_are_sized_to_the_work() {
        assert_eq!(threads_for(0, 8), 1);
        assert_eq!(threads_for(10, 8), 1);
        assert_eq!(threads_for(MIN_PER_THREAD * 2, 8), 2);
        assert_eq!(threads_for(100_000, 2), 2);
        assert_eq!(threads_for(100_000, 0), 1);
    }
}
