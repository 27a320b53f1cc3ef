//! The node's master key: sealing secrets at rest and hashing presented credentials.
//!
//! The key file holds 32 random bytes (base64) and is created with mode 0600 by `gatehouse
//! init`. From it two keys are derived: one for AES-256-GCM (provider credentials in the store,
//! each sealed with a fresh 96-bit nonce) and one for HMAC-SHA256 (API keys, admin tokens and
//! session cookies are stored as keyed hashes, so a stolen database alone cannot check guesses).
//! `ring` does the cryptography: it is already in the build for TLS.

use std::path::Path;

use base64::Engine;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;

use crate::ids::random_bytes;
use crate::StoreError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The master key and the keys derived from it.
pub struct MasterKey {
    seal: LessSafeKey,
    hash: hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// Derives the working keys from 32 bytes of key material.
    pub fn from_bytes(material: &[u8; 32]) -> Result<Self, StoreError> {
        let root = hmac::Key::new(hmac::HMAC_SHA256, material);
        let derive = |label: &str| hmac::sign(&root, label.as_bytes());
        let seal = UnboundKey::new(&AES_256_GCM, derive("gatehouse seal v1").as_ref())
            .map_err(|_| StoreError::MasterKey("cannot derive the sealing key".into()))?;
        Ok(Self {
            seal: LessSafeKey::new(seal),
            hash: hmac::Key::new(
                hmac::HMAC_SHA256,
                derive("gatehouse credential hash v1").as_ref(),
            ),
        })
    }

    /// A key that lives only as long as the process: for file-only mode, where nothing is
    /// stored, so nothing needs to be read back by another process.
    pub fn ephemeral() -> Result<Self, StoreError> {
        let mut material = [0u8; 32];
        random_bytes(&mut material)?;
        Self::from_bytes(&material)
    }

    /// Reads a key file written by `create`.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
            what: format!("read the master key {}", path.display()),
            source,
        })?;
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| StoreError::MasterKey(format!("{}: not base64: {e}", path.display())))?;
        let material: [u8; 32] = bytes.try_into().map_err(|_| {
            StoreError::MasterKey(format!("{}: must hold 32 bytes", path.display()))
        })?;
        Self::from_bytes(&material)
    }

    /// Writes a new random key file readable only by its owner; refuses to overwrite one.
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        use std::io::Write;
        let mut material = [0u8; 32];
        random_bytes(&mut material)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let io = |source| StoreError::Io {
            what: format!("create the master key {}", path.display()),
            source,
        };
        let mut file = opts.open(path).map_err(io)?;
        file.write_all(B64.encode(material).as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        Self::from_bytes(&material)
    }

    /// Seals `plain`: nonce ‖ ciphertext ‖ tag. `context` is bound as associated data, so a
    /// sealed value cannot be moved to another row.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let mut buf = plain.to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| StoreError::MasterKey("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a value sealed by `seal` with the same context.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, StoreError> {
        let bad = || {
            StoreError::corrupt(
                "secret",
                format!("{context}: cannot be opened with this master key"),
            )
        };
        if sealed.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(bad());
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = rest.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| bad())?;
        Ok(plain.to_vec())
    }

    /// The keyed hash under which a credential is stored and looked up.
    pub fn hash(&self, credential: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.hash, credential.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// Argon2id password hashing with the crate's recommended parameters.
pub mod password {
    use argon2::password_hash::rand_core::OsRng;
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    use argon2::Argon2;

    use crate::StoreError;

    /// The PHC string of a new password hash.
    pub fn hash(password: &str) -> Result<String, StoreError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::MasterKey(format!("password hashing failed: {e}")))
    }

    /// Whether `password` matches the PHC string `phc` (constant time in the password).
    pub fn verify(password: &str, phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let key = MasterKey::ephemeral().unwrap();
        let sealed = key.seal(b"sk-live-123", "provider:p1").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"sk-live-123"));
        assert_eq!(key.open(&sealed, "provider:p1").unwrap(), b"sk-live-123");
        assert!(
            key.open(&sealed, "provider:p2").is_err(),
            "moved to another row"
        );
        let other = MasterKey::ephemeral().unwrap();
        assert!(other.open(&sealed, "provider:p1").is_err(), "another key");
        assert!(key.open(&sealed[..10], "provider:p1").is_err(), "truncated");
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("gh-mk-{}", crate::ids::new_id("")));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let a = MasterKey::create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(MasterKey::create(&path).is_err());
        let b = MasterKey::load(&path).unwrap();
        assert_eq!(a.hash("k"), b.hash("k"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passwords_verify() {
        let phc = password::hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(password::verify("correct horse", &phc));
        assert!(!password::verify("wrong", &phc));
        assert!(!password::verify("x", "not a phc string"));
    }
}
