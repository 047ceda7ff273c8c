//! argon2id password hashing, off the async runtime and bounded in concurrency.
//!
//! One hash at the crate defaults (m = 19 MiB, t = 2, p = 1; the OWASP baseline) costs tens of
//! milliseconds of CPU and 19 MiB of memory, so hashing runs on the blocking pool behind a
//! semaphore sized to the cores.

use std::sync::{Arc, OnceLock};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

/// Hashing failed (never the password's fault).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    /// A hasher running at most `parallelism` hashes at once.
    pub fn new(parallelism: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(parallelism.max(1))),
        }
    }

    /// The argon2id PHC string of `password` with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.blocking(move || {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
            Argon2::default()
                .hash_password_with_salt(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
    }

    /// True when `password` matches `phc`. With `phc = None` (no such account) a dummy hash is
    /// verified anyway, so the answer takes as long whether or not the account exists.
    pub async fn verify(&self, password: &str, phc: Option<String>) -> Result<bool, HashError> {
        let password = password.to_owned();
        let exists = phc.is_some();
        let phc = match phc {
            Some(p) => p,
            None => dummy_hash()?.to_owned(),
        };
        let matched = self
            .blocking(move || {
                Ok(Argon2::default()
                    .verify_password(password.as_bytes(), phc.as_str())
                    .is_ok())
            })
            .await?;
        Ok(exists && matched)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| HashError(e.to_string()))?
    }
}

fn dummy_hash() -> Result<&'static str, HashError> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            Argon2::default()
                .hash_password_with_salt(b"no account has this password", b"emporium-dummy-salt")
                .ok()
                .map(|h| h.to_string())
        })
        .as_deref()
        .ok_or_else(|| HashError("dummy hash unavailable".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::Hasher;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = Hasher::new(2);
        let phc = h.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            h.verify("correct horse battery", Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!h.verify("wrong horse battery", Some(phc)).await.unwrap());
        assert!(!h.verify("anything at all", None).await.unwrap());
    }
}
