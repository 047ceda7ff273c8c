//! Access tokens (Ed25519-signed JWTs with a `kid`), the signing keyring kept in the data folder,
//! the JWKS that publishes its public keys, and the random refresh tokens.
//!
//! Verifying an access token needs only the keyring and the recent revocations in memory: never
//! the database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use emporium_http::{ApiError, TokenVerifier};
use emporium_kernel::ErrorKind;
use emporium_kernel::auth::{Actor, Principal, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::api::{Jwk, Jwks};
use crate::revocation::Revocations;

/// Issuer and audience of every access token.
const ISSUER: &str = "emporium";

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410 §7); the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A keyring failure: the file is unreadable, unwritable or not ours.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot access signing keys at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing keys file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredKey {
    kid: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// The 32-byte Ed25519 seed, base64url.
    seed: String,
}

struct Key {
    kid: String,
    public: [u8; 32],
    encoding: EncodingKey,
    decoding: DecodingKey,
}

struct KeySet {
    // Invariant: never empty; the last key signs.
    keys: Vec<Key>,
    modified: Option<SystemTime>,
}

impl KeySet {
    fn signer(&self) -> &Key {
        debug_assert!(!self.keys.is_empty());
        &self.keys[self.keys.len() - 1]
    }
}

fn key_of(stored: &StoredKey, path: &Path) -> Result<Key, KeyringError> {
    let corrupt = |reason: &str| KeyringError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let seed: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&stored.seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("a seed is not 32 bytes of base64url"))?;
    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let mut der = PKCS8_ED25519_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    Ok(Key {
        kid: stored.kid.clone(),
        public,
        encoding: EncodingKey::from_ed_der(&der),
        decoding: DecodingKey::from_ed_der(&public),
    })
}

/// RFC 7638 thumbprint of the public key: a stable `kid`.
fn thumbprint(public: &[u8; 32]) -> String {
    let jwk = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
}

fn new_stored_key(now: OffsetDateTime) -> Result<StoredKey, KeyringError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyringError::Random(e.to_string()))?;
    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    Ok(StoredKey {
        kid: thumbprint(&public),
        created_at: now,
        seed: URL_SAFE_NO_PAD.encode(seed),
    })
}

fn read_file(path: &Path) -> Result<Option<KeyFile>, KeyringError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KeyringError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyringError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_file(path: &Path, file: &KeyFile) -> Result<(), KeyringError> {
    let io = |source| KeyringError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let json = serde_json::to_vec_pretty(file).map_err(|e| KeyringError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // Write then rename, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn load(path: &Path) -> Result<Option<KeySet>, KeyringError> {
    let Some(file) = read_file(path)? else {
        return Ok(None);
    };
    if file.keys.is_empty() {
        return Err(KeyringError::Corrupt {
            path: path.to_owned(),
            reason: "no keys".to_owned(),
        });
    }
    let keys = file
        .keys
        .iter()
        .map(|k| key_of(k, path))
        .collect::<Result<Vec<_>, _>>()?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok(Some(KeySet { keys, modified }))
}

/// Adds a new signing key to the keyring at `path` (creating it if absent). Earlier keys stay,
/// so tokens they signed verify until they expire; keys superseded more than `retire_after` ago
/// are dropped. Returns the new key's id.
pub fn rotate_keys(
    path: &Path,
    now: OffsetDateTime,
    retire_after: time::Duration,
) -> Result<String, KeyringError> {
    let mut file = read_file(path)?.unwrap_or(KeyFile { keys: Vec::new() });
    let new = new_stored_key(now)?;
    let kid = new.kid.clone();
    file.keys.push(new);
    // A key is retired once its successor has signed for longer than any token lives.
    let successors: Vec<OffsetDateTime> = file.keys.iter().skip(1).map(|k| k.created_at).collect();
    let mut index = 0;
    file.keys.retain(|_| {
        let keep = successors
            .get(index)
            .is_none_or(|next| now - *next < retire_after);
        index += 1;
        keep
    });
    write_file(path, &file)?;
    Ok(kid)
}

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
    /// `customer`, `staff` or `client`.
    act: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    scope: String,
    /// The refresh-token family (login session), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    /// The subject's token generation at issue; a token from before revocations existed has none
    /// and counts as generation 0.
    #[serde(default, rename = "gen")]
    generation: i64,
}

/// What an access token is issued for.
#[derive(Debug, Clone)]
pub struct Grant {
    /// `cus_…`, `usr_…` or `cli_…`.
    pub subject: String,
    /// The party.
    pub actor: Actor,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Refresh family id, if the grant has one.
    pub session: Option<String>,
    /// The subject's token generation, read before its credentials were checked: the token is
    /// refused once the subject moves past it.
    pub generation: i64,
}

/// A token whose signature was checked: what it proves, until when, under which generation.
struct Verified {
    principal: Principal,
    exp: i64,
    generation: i64,
}

/// How far past `exp` a token still verifies (clock differences between processes).
const LEEWAY_SECS: u64 = 5;

/// Signs and verifies access tokens with the keyring.
pub struct Tokens {
    path: PathBuf,
    keys: RwLock<Arc<KeySet>>,
    access_ttl: time::Duration,
    // Tokens whose signature was already checked, with their expiry: a client sends the same
    // token with every request, and an Ed25519 verification costs more than the rest of a
    // typical request. Entries live no longer than a token can.
    verified: moka::sync::Cache<String, Arc<Verified>>,
    revocations: Revocations,
}

impl Tokens {
    /// Loads the keyring at `path`, generating a first key when there is none.
    pub fn open(
        path: PathBuf,
        access_ttl: time::Duration,
        now: OffsetDateTime,
    ) -> Result<Self, KeyringError> {
        let set = match load(&path)? {
            Some(set) => set,
            None => {
                rotate_keys(&path, now, time::Duration::days(1))?;
                load(&path)?.ok_or_else(|| KeyringError::Corrupt {
                    path: path.clone(),
                    reason: "vanished after creation".to_owned(),
                })?
            }
        };
        let lifetime = std::time::Duration::from_secs(
            u64::try_from(access_ttl.whole_seconds()).unwrap_or(900),
        );
        Ok(Self {
            path,
            keys: RwLock::new(Arc::new(set)),
            access_ttl,
            verified: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(lifetime)
                .build(),
            revocations: Revocations::new(access_ttl + time::Duration::seconds(LEEWAY_SECS as i64)),
        })
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the keyring when the file changed (after `emporium keys rotate`); returns true
    /// when it did. A broken file is reported and the keys in memory stay in use.
    pub fn reload_if_changed(&self) -> bool {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified.is_none() || modified == self.current().modified {
            return false;
        }
        match load(&self.path) {
            Ok(Some(set)) => {
                tracing::info!(keys = set.keys.len(), signer = %set.signer().kid, "signing keys reloaded");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "signing keys file unreadable; keeping the keys in memory");
                false
            }
        }
    }

    /// The principals whose earlier tokens are refused.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Lifetime of access tokens.
    pub fn access_ttl(&self) -> time::Duration {
        self.access_ttl
    }

    /// Signs an access token for `grant`.
    pub fn issue(&self, grant: &Grant, now: OffsetDateTime) -> Result<String, KeyringError> {
        let (act, role) = match grant.actor {
            Actor::Customer => ("customer", None),
            Actor::Staff(role) => ("staff", Some(role.as_str().to_owned())),
            Actor::Client => ("client", None),
        };
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: ISSUER.to_owned(),
            sub: grant.subject.clone(),
            iat: now.unix_timestamp(),
            exp: (now + self.access_ttl).unix_timestamp(),
            jti: uuid::Uuid::now_v7().simple().to_string(),
            act: act.to_owned(),
            role,
            scope: grant.scopes.join(" "),
            sid: grant.session.clone(),
            generation: grant.generation,
        };
        let set = self.current();
        let signer = set.signer();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, &claims, &signer.encoding)
            .map_err(|e| KeyringError::Sign(e.to_string()))
    }

    /// The JSON Web Key Set of every key that may have signed a live token.
    pub fn jwks(&self) -> Jwks {
        let keys = self
            .current()
            .keys
            .iter()
            .map(|k| Jwk {
                kty: "OKP".to_owned(),
                crv: "Ed25519".to_owned(),
                x: URL_SAFE_NO_PAD.encode(k.public),
                kid: k.kid.clone(),
                use_: "sig".to_owned(),
                alg: "EdDSA".to_owned(),
            })
            .collect();
        Jwks { keys }
    }
}

fn invalid(detail: &str) -> ApiError {
    ApiError::new(ErrorKind::Unauthenticated, "token_invalid", detail)
}

fn revoked() -> ApiError {
    ApiError::new(
        ErrorKind::Unauthenticated,
        "token_revoked",
        "the access token was revoked: sign in again",
    )
}

impl TokenVerifier for Tokens {
    fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let verified = match self.verified.get(token) {
            Some(hit) if hit.exp > now => hit,
            Some(_) => {
                self.verified.invalidate(token);
                return Err(ApiError::new(
                    ErrorKind::Unauthenticated,
                    "token_invalid",
                    "the access token has expired",
                ));
            }
            None => {
                let verified = Arc::new(self.verify_signature(token)?);
                self.verified.insert(token.to_owned(), verified.clone());
                verified
            }
        };
        if !self
            .revocations
            .allows(&verified.principal.subject, verified.generation)
        {
            return Err(revoked());
        }
        Ok(verified.principal.clone())
    }
}

impl Tokens {
    /// Full verification: key id, signature, expiry, issuer, audience; returns the principal,
    /// the expiry and the generation.
    fn verify_signature(&self, token: &str) -> Result<Verified, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("the access token is malformed"))?;
        let kid = header
            .kid
            .ok_or_else(|| invalid("the access token has no key id"))?;
        let set = self.current();
        let key = set
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| invalid("the access token was signed by an unknown key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[ISSUER]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::new(
                    ErrorKind::Unauthenticated,
                    "token_invalid",
                    "the access token has expired",
                ),
                _ => invalid("the access token is not valid"),
            },
        )?;
        let claims = data.claims;
        let actor = match (claims.act.as_str(), claims.role.as_deref()) {
            ("customer", None) => Actor::Customer,
            ("client", None) => Actor::Client,
            ("staff", Some(role)) => {
                Actor::Staff(Role::parse(role).ok_or_else(|| invalid("unknown role"))?)
            }
            _ => return Err(invalid("the access token names no known party")),
        };
        let principal = Principal {
            subject: claims.sub,
            actor,
            scopes: claims
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            session: claims.sid,
        };
        Ok(Verified {
            principal,
            exp: claims.exp,
            generation: claims.generation,
        })
    }
}

/// 256 random bits, base64url: refresh tokens and client secrets.
pub fn random_token() -> Result<String, KeyringError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| KeyringError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

/// A fresh refresh token and the SHA-256 kept in the database.
pub fn new_refresh_token() -> Result<(String, Vec<u8>), KeyringError> {
    let token = random_token()?;
    let hash = hash_secret(&token);
    Ok((token, hash))
}

/// SHA-256 of a high-entropy secret (refresh token, client secret). A slow hash is not needed:
/// the secret has 256 random bits, so there is nothing to guess.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            subject: "cus_0192f0c1a2b37c4d8e9f0a1b2c3d4e5f".into(),
            actor: Actor::Customer,
            scopes: vec!["store".into()],
            session: None,
            generation: 0,
        }
    }

    #[test]
    fn a_token_signed_before_rotation_still_verifies_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let now = OffsetDateTime::now_utc();
        let tokens = Tokens::open(path.clone(), time::Duration::minutes(15), now).unwrap();
        let old = tokens.issue(&grant(), now).unwrap();
        let new_kid = rotate_keys(&path, now, time::Duration::days(1)).unwrap();
        // The mtime may not move within the same tick on some filesystems; force a reload.
        *tokens.keys.write().unwrap() = Arc::new(load(&path).unwrap().unwrap());
        let new = tokens.issue(&grant(), now).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
            Some(new_kid.as_str())
        );
        assert_ne!(
            jsonwebtoken::decode_header(&old).unwrap().kid,
            jsonwebtoken::decode_header(&new).unwrap().kid
        );
        assert!(tokens.verify(&old).is_ok());
        assert!(tokens.verify(&new).is_ok());
        assert_eq!(tokens.jwks().keys.len(), 2);
    }

    #[test]
    fn expired_and_tampered_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let tokens =
            Tokens::open(dir.path().join("k.json"), time::Duration::minutes(15), now).unwrap();
        let expired = tokens
            .issue(&grant(), now - time::Duration::hours(1))
            .unwrap();
        assert_eq!(tokens.verify(&expired).unwrap_err().code(), "token_invalid");
        let good = tokens.issue(&grant(), now).unwrap();
        let mut tampered = good.clone();
        tampered.pop();
        tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
        assert!(tokens.verify(&tampered).is_err());
        assert!(tokens.verify("not.a.jwt").is_err());
    }

    #[test]
    fn a_verified_token_is_refused_once_its_subject_moves_past_its_generation() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let tokens =
            Tokens::open(dir.path().join("k.json"), time::Duration::minutes(15), now).unwrap();
        let old = tokens.issue(&grant(), now).unwrap();
        // Verified once, so the next verification is the cached path.
        assert!(tokens.verify(&old).is_ok());
        tokens.revocations().note(&grant().subject, 1, now);
        assert_eq!(tokens.verify(&old).unwrap_err().code(), "token_revoked");
        // Issued in the same second, under the new generation: it works.
        let new = tokens
            .issue(
                &Grant {
                    generation: 1,
                    ..grant()
                },
                now,
            )
            .unwrap();
        assert!(tokens.verify(&new).is_ok());
    }
}
