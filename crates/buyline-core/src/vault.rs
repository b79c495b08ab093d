//! What core needs from the vault: seal and open records under envelope encryption. The
//! `buyline-vault` crate implements it; keys never reach core.

use zeroize::Zeroizing;

/// An encrypted record: its data key wrapped by the key-encryption key `kek_id`, and the
/// payload encrypted by the data key. Both are bound to the record's associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub kek_id: String,
    /// nonce ‖ AES-256-GCM(KEK, data key)
    pub wrapped_key: Vec<u8>,
    /// nonce ‖ AES-256-GCM(data key, payload)
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The key-encryption key this record was wrapped with is not loaded.
    #[error("vault key {0} is not available")]
    MissingKey(String),
    /// Authentication failed: wrong key, tampered data, or data moved to another record.
    #[error("the record does not decrypt under its owner and id")]
    Tampered,
    #[error("vault: {0}")]
    Other(String),
}

pub trait Sealer: Send + Sync + 'static {
    /// Encrypts `plaintext` under a fresh data key, bound to `aad`.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, VaultError>;
    /// Decrypts; fails unless `aad` is the one it was sealed with.
    fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError>;
    /// The same data key wrapped under the current key-encryption key.
    fn rewrap(&self, aad: &[u8], sealed: &Sealed) -> Result<Sealed, VaultError>;
    fn current_kek_id(&self) -> String;
    fn has_kek(&self, id: &str) -> bool;
}
