//! argon2id password hashing, off the async runtime and bounded in concurrency.
//!
//! One hash at the crate defaults (m = 19 MiB, t = 2, p = 1; the OWASP baseline) costs tens of
//! milliseconds of CPU and 19 MiB of memory. Hashing runs on a few dedicated threads fed by a
//! bounded queue: the runtime never blocks, at most that many hashes run at once, and the memory
//! the allocator keeps for the 19 MiB blocks stays bounded by the number of threads (on the
//! blocking pool every new thread could pin another copy).

use std::sync::{Arc, Mutex, OnceLock};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
}

/// Hashing failed (never the password's fault).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    /// A hasher with `threads` hashing threads. The threads end when the last clone is dropped.
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>(1024);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        // A std mutex, held while waiting for the next job: idle workers queue on it.
                        let job = queue
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self { jobs }
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
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone (request cancelled); the result is then dropped.
            let _ = done.send(work());
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| HashError("hashing threads are gone".to_owned()))?;
        result
            .await
            .map_err(|_| HashError("hashing thread failed".to_owned()))?
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
