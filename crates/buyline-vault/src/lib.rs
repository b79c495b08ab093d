//! Envelope encryption for saved cards and addresses.
//!
//! Key hierarchy: each record gets its own random 256-bit data key (DEK); the payload is
//! encrypted with AES-256-GCM under the DEK, bound by associated data to its kind, owner and
//! record id. The DEK is itself encrypted (wrapped) with AES-256-GCM under a key-encryption
//! key (KEK) that never lives in the database. A KEK is identified by a key id: the first
//! 16 hex digits of SHA-256 of the key, so a wrong key shows up as a different id.
//!
//! KEKs come from `BUYLINE_VAULT_KEY` (base64 of 32 bytes; a comma-separated list during a
//! rotation, current first) or from key files in `DATA_DIR/vault-keys/` (`{id}.key`, 0600)
//! with `current` naming the one new records use. Rotation re-wraps every DEK under a new
//! KEK while servers keep running: a server that meets an unknown key id reloads the files.
//!
//! Deleting a record destroys its wrapped DEK (crypto-shredding): the ciphertext, wherever
//! a copy survives, can no longer be decrypted.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use buyline_core::vault::{Sealed, Sealer, VaultError};
use rand::RngCore;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use zeroize::{Zeroize, Zeroizing};

/// A key-encryption key. Its bytes never print and are zeroed on drop.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

impl Kek {
    pub fn from_bytes(bytes: [u8; 32]) -> Kek {
        use sha2::Digest;
        let d = sha2::Sha256::digest(bytes);
        let id = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        Kek { id, key: Zeroizing::new(bytes) }
    }

    pub fn generate() -> Kek {
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        let k = Kek::from_bytes(b);
        b.zeroize();
        k
    }

    /// Parses base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Kek, VaultError> {
        let mut raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| VaultError::Other("a vault key must be base64 of 32 bytes".into()))?,
        );
        if raw.len() != 32 {
            return Err(VaultError::Other(format!("a vault key must be 32 bytes, not {}", raw.len())));
        }
        let mut b = [0u8; 32];
        b.copy_from_slice(&raw);
        raw.zeroize();
        let k = Kek::from_bytes(b);
        b.zeroize();
        Ok(k)
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(*self.key))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Where key-encryption keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `BUYLINE_VAULT_KEY`: comma-separated base64 keys, the first is current.
    Env(String),
    /// Key files in this directory.
    Dir(PathBuf),
}

#[derive(Debug, Clone)]
struct Ring {
    current: Kek,
    all: Vec<Kek>,
}

impl Ring {
    fn find(&self, id: &str) -> Option<&Kek> {
        self.all.iter().find(|k| k.id == id)
    }
}

pub struct Vault {
    source: KeySource,
    ring: RwLock<Ring>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vault(current={})", self.current_kek_id())
    }
}

fn io(e: std::io::Error, what: &Path) -> VaultError {
    VaultError::Other(format!("{}: {e}", what.display()))
}

fn write_private(path: &Path, contents: &str) -> Result<(), VaultError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| io(e, path))?;
    f.write_all(contents.as_bytes()).map_err(|e| io(e, path))?;
    f.sync_all().map_err(|e| io(e, path))
}

/// Only the owner may list or enter the key directory.
fn private_dir(dir: &Path) -> Result<(), VaultError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(e, dir))?;
    }
    Ok(())
}

fn load_dir(dir: &Path) -> Result<Option<Ring>, VaultError> {
    let current_path = dir.join("current");
    let Ok(current_id) = std::fs::read_to_string(&current_path) else { return Ok(None) };
    let current_id = current_id.trim().to_string();
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(e, dir))? {
        let path = entry.map_err(|e| io(e, dir))?.path();
        if path.extension().is_some_and(|x| x == "key") {
            let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| io(e, &path))?);
            all.push(Kek::from_base64(&text)?);
        }
    }
    let current =
        all.iter().find(|k| k.id == current_id).cloned().ok_or_else(|| VaultError::MissingKey(current_id.clone()))?;
    Ok(Some(Ring { current, all }))
}

fn load_env(list: &str) -> Result<Ring, VaultError> {
    let all: Vec<Kek> =
        list.split(',').filter(|s| !s.trim().is_empty()).map(Kek::from_base64).collect::<Result<_, _>>()?;
    let current = all.first().cloned().ok_or_else(|| VaultError::Other("BUYLINE_VAULT_KEY is empty".into()))?;
    Ok(Ring { current, all })
}

impl Vault {
    /// Loads the keys. With key files, a first run (no `current` yet) creates a key only if
    /// `may_create`: the caller passes false when the database already holds sealed records,
    /// so a lost key file is reported instead of silently replaced.
    pub fn load(source: KeySource, may_create: bool) -> Result<Vault, VaultError> {
        let ring = match &source {
            KeySource::Env(list) => load_env(list)?,
            KeySource::Dir(dir) => match load_dir(dir)? {
                Some(r) => r,
                None if may_create => {
                    std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
                    private_dir(dir)?;
                    let k = Kek::generate();
                    write_private(&dir.join(format!("{}.key", k.id)), &k.to_base64())?;
                    std::fs::write(dir.join("current"), &k.id).map_err(|e| io(e, dir))?;
                    tracing::info!(kek_id = %k.id, dir = %dir.display(), "created the vault key");
                    Ring { current: k.clone(), all: vec![k] }
                }
                None => {
                    return Err(VaultError::MissingKey(format!(
                        "(none in {}: the key file is missing and the database holds encrypted records)",
                        dir.display()
                    )))
                }
            },
        };
        Ok(Vault { source, ring: RwLock::new(ring) })
    }

    /// Re-reads key files (after a rotation by another process). Env keys do not change.
    pub fn reload(&self) -> Result<(), VaultError> {
        if let KeySource::Dir(dir) = &self.source {
            if let Some(r) = load_dir(dir)? {
                *self.ring.write().expect("vault lock") = r;
            }
        }
        Ok(())
    }

    fn kek(&self, id: &str) -> Result<Kek, VaultError> {
        if let Some(k) = self.ring.read().expect("vault lock").find(id) {
            return Ok(k.clone());
        }
        self.reload()?;
        self.ring.read().expect("vault lock").find(id).cloned().ok_or_else(|| VaultError::MissingKey(id.to_string()))
    }

    fn current(&self) -> Kek {
        self.ring.read().expect("vault lock").current.clone()
    }

    /// Starts a rotation with key files: a new KEK becomes current for new records. Returns
    /// its id. Call [`Vault::retire`] with the old id once every record is re-wrapped.
    pub fn add_current_key(&self) -> Result<String, VaultError> {
        let KeySource::Dir(dir) = &self.source else {
            return Err(VaultError::Other(
                "keys from BUYLINE_VAULT_KEY rotate by listing the new key first: BUYLINE_VAULT_KEY=new,old".into(),
            ));
        };
        let k = Kek::generate();
        write_private(&dir.join(format!("{}.key", k.id)), &k.to_base64())?;
        let tmp = dir.join("current.tmp");
        std::fs::write(&tmp, &k.id).map_err(|e| io(e, &tmp))?;
        std::fs::rename(&tmp, dir.join("current")).map_err(|e| io(e, dir))?;
        self.reload()?;
        Ok(k.id)
    }

    /// Removes a key file that no record uses any more.
    pub fn retire(&self, id: &str) -> Result<(), VaultError> {
        if let KeySource::Dir(dir) = &self.source {
            if id == self.current_kek_id() {
                return Err(VaultError::Other("the current key cannot be retired".into()));
            }
            let path = dir.join(format!("{id}.key"));
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| io(e, &path))?;
            }
            self.reload()?;
        }
        Ok(())
    }

    pub fn kek_ids(&self) -> Vec<String> {
        self.ring.read().expect("vault lock").all.iter().map(|k| k.id.clone()).collect()
    }
}

fn nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

fn encrypt(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let cipher = Aes256Gcm::new(key.into());
    let n = nonce();
    let ct = cipher
        .encrypt(Nonce::from_slice(&n), Payload { msg: plaintext, aad })
        .map_err(|_| VaultError::Other("encryption failed".into()))?;
    let mut out = n.to_vec();
    out.extend(ct);
    Ok(out)
}

fn decrypt(key: &[u8; 32], aad: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if data.len() < 12 + 16 {
        return Err(VaultError::Tampered);
    }
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(Nonce::from_slice(&data[..12]), Payload { msg: &data[12..], aad })
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Tampered)
}

/// The wrapped key is bound to the record as well, so neither half can be moved alone.
fn key_aad(kek_id: &str, aad: &[u8]) -> Vec<u8> {
    let mut v = b"dek:".to_vec();
    v.extend(kek_id.as_bytes());
    v.push(b':');
    v.extend(aad);
    v
}

impl Vault {
    fn unwrap_dek(&self, aad: &[u8], sealed: &Sealed) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let kek = self.kek(&sealed.kek_id)?;
        let dek = decrypt(&kek.key, &key_aad(&kek.id, aad), &sealed.wrapped_key)?;
        if dek.len() != 32 {
            return Err(VaultError::Tampered);
        }
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&dek);
        Ok(out)
    }
}

impl Sealer for Vault {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let kek = self.current();
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(dek.as_mut());
        Ok(Sealed {
            wrapped_key: encrypt(&kek.key, &key_aad(&kek.id, aad), dek.as_ref())?,
            ciphertext: encrypt(&dek, aad, plaintext)?,
            kek_id: kek.id,
        })
    }

    fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let dek = self.unwrap_dek(aad, sealed)?;
        decrypt(&dek, aad, &sealed.ciphertext)
    }

    fn rewrap(&self, aad: &[u8], sealed: &Sealed) -> Result<Sealed, VaultError> {
        let dek = self.unwrap_dek(aad, sealed)?;
        let kek = self.current();
        Ok(Sealed {
            wrapped_key: encrypt(&kek.key, &key_aad(&kek.id, aad), dek.as_ref())?,
            ciphertext: sealed.ciphertext.clone(),
            kek_id: kek.id,
        })
    }

    fn current_kek_id(&self) -> String {
        self.ring.read().expect("vault lock").current.id.clone()
    }

    fn has_kek(&self, id: &str) -> bool {
        self.kek(id).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_vault(dir: &Path) -> Vault {
        Vault::load(KeySource::Dir(dir.to_path_buf()), true).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let tmp = tempfile::tempdir().unwrap();
        let v = dir_vault(tmp.path());
        let s = v.seal(b"card:acct_a:pm_1", b"4242424242424242").unwrap();
        assert_eq!(&**v.open(b"card:acct_a:pm_1", &s).unwrap(), b"4242424242424242");
        // Moved onto another owner's or record's row: it does not open.
        assert_eq!(v.open(b"card:acct_b:pm_1", &s), Err(VaultError::Tampered));
        assert_eq!(v.open(b"card:acct_a:pm_2", &s), Err(VaultError::Tampered));
        let mut t = s.clone();
        t.ciphertext[20] ^= 1;
        assert_eq!(v.open(b"card:acct_a:pm_1", &t), Err(VaultError::Tampered));
        // The plaintext does not appear in the sealed bytes.
        let all = [s.wrapped_key.clone(), s.ciphertext.clone()].concat();
        assert!(!all.windows(4).any(|w| w == b"4242"));
    }

    #[test]
    fn key_file_is_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let v = dir_vault(&dir);
        let id = v.current_kek_id();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(format!("{id}.key"))).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(dir_vault(&dir).current_kek_id(), id);
        assert!(!format!("{v:?}").contains(&*v.current().to_base64()));
    }

    #[test]
    fn missing_key_file_is_an_error_when_records_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Vault::load(KeySource::Dir(tmp.path().join("nothing")), false).unwrap_err();
        assert!(matches!(err, VaultError::MissingKey(_)), "{err:?}");
    }

    #[test]
    fn rotation_rewraps_and_retires() {
        let tmp = tempfile::tempdir().unwrap();
        let v = dir_vault(tmp.path());
        let old = v.current_kek_id();
        let s = v.seal(b"aad", b"secret").unwrap();
        // Another process (a running server) with the same key dir.
        let other = dir_vault(tmp.path());
        let new = v.add_current_key().unwrap();
        assert_ne!(old, new);
        let r = v.rewrap(b"aad", &s).unwrap();
        assert_eq!(r.kek_id, new);
        assert_eq!(r.ciphertext, s.ciphertext);
        v.retire(&old).unwrap();
        assert!(v.open(b"aad", &s).is_err(), "the old key is gone");
        assert_eq!(&**v.open(b"aad", &r).unwrap(), b"secret");
        // The other process reloads on meeting the new key id.
        assert_eq!(&**other.open(b"aad", &r).unwrap(), b"secret");
    }

    #[test]
    fn env_keys_list_current_first() {
        let a = Kek::generate();
        let b = Kek::generate();
        let old = Vault::load(KeySource::Env(a.to_base64().to_string()), false).unwrap();
        let s = old.seal(b"x", b"y").unwrap();
        let both = Vault::load(KeySource::Env(format!("{},{}", &*b.to_base64(), &*a.to_base64())), false).unwrap();
        assert_eq!(both.current_kek_id(), b.id());
        let r = both.rewrap(b"x", &s).unwrap();
        assert_eq!(&**both.open(b"x", &r).unwrap(), b"y");
        assert!(Vault::load(KeySource::Env("not base64!".into()), false).is_err());
        assert!(Vault::load(KeySource::Env("c2hvcnQ=".into()), false).is_err());
    }
}
