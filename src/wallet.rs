//! Secret key files: the node's wallet (an Ed25519 key whose public half is its address) and
//! its libp2p identity. A file holds the 32-byte secret as 64 hex digits and a newline, is
//! created with mode 0600, and is never overwritten.

use crate::chain::{Address, ChainId, Transfer};
use ed25519_zebra::SigningKey;
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
    file.sync_all().map_err(io)?;
    Ok((secret, true))
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

    /// Its address (the public key).
    pub fn address(&self) -> Address {
        Address::of(&self.key)
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
}
