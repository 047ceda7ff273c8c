//! argon2id password hashing, off the async runtime and bounded in concurrency.
//!
//! One hash at the crate defaults (m = 19 MiB, t = 2, p = 1; the OWASP baseline) costs tens of
//! milliseconds of CPU and 19 MiB of memory. Hashing runs on a few dedicated threads fed by a
//! bounded queue, so the runtime never blocks and at most that many hashes run at once. Each
//! thread keeps its own 19 MiB work area and reuses it for every hash: allocating it per hash
//! lets the allocator scatter retained copies across its arenas (hundreds of MiB under load).

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use tokio::sync::{mpsc, oneshot};

thread_local! {
    // The argon2 work area of a hashing thread, grown to the largest cost seen and then reused.
    static WORK_AREA: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2 with `params` into `out`, in this thread's reusable work area.
fn argon2_into(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), HashError> {
    let blocks = params.block_count();
    WORK_AREA.with(|area| {
        let mut area = area.borrow_mut();
        if area.len() < blocks {
            area.resize(blocks, Block::new());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, out, &mut area[..blocks])
            .map_err(|e| HashError(e.to_string()))
    })
}

/// The argon2id PHC string of `password` with `salt`, at the default cost.
fn hash_phc(password: &[u8], salt: &[u8]) -> Result<String, HashError> {
    let err = |e: argon2::password_hash::phc::Error| HashError(e.to_string());
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password,
        salt,
        &mut out,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| HashError(e.to_string()))?,
        salt: Some(Salt::new(salt).map_err(err)?),
        hash: Some(Output::new(&out).map_err(err)?),
    };
    Ok(phc.to_string())
}

/// True when `password` matches the PHC string (its algorithm, version and cost are honoured).
fn verify_phc(password: &[u8], phc: &str) -> Result<bool, HashError> {
    let bad = |e: &dyn std::fmt::Display| HashError(format!("stored hash unreadable: {e}"));
    let parsed = PasswordHash::new(phc).map_err(|e| bad(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| bad(&e))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| bad(&e))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| bad(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(HashError("stored hash lacks salt or output".to_owned()));
    };
    let mut out = vec![0u8; expected.len()];
    argon2_into(
        algorithm,
        version,
        params,
        password,
        salt.as_ref(),
        &mut out,
    )?;
    // Output compares in constant time.
    Ok(Output::new(&out).is_ok_and(|computed| computed == expected))
}

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
            hash_phc(password.as_bytes(), &salt)
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
            .blocking(move || verify_phc(password.as_bytes(), &phc))
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
        .get_or_init(|| hash_phc(b"no account has this password", b"emporium-dummy-salt").ok())
        .as_deref()
        .ok_or_else(|| HashError("dummy hash unavailable".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::Hasher;

    #[test]
    fn hashes_are_standard_phc_strings_the_argon2_crate_verifies() {
        use argon2::PasswordVerifier;
        let phc = super::hash_phc(b"correct horse battery", b"0123456789abcdef").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            argon2::Argon2::default()
                .verify_password(b"correct horse battery", phc.as_str())
                .is_ok()
        );
        // And hashes made elsewhere (another cost) verify here.
        use argon2::PasswordHasher;
        let other = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8192, 3, 1, None).unwrap(),
        )
        .hash_password_with_salt(b"pw from elsewhere", b"saltsaltsaltsalt")
        .unwrap()
        .to_string();
        assert!(super::verify_phc(b"pw from elsewhere", &other).unwrap());
        assert!(!super::verify_phc(b"wrong", &other).unwrap());
    }

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
