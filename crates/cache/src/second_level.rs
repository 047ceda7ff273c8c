//! The optional shared level between the in-process cache and the loader (Redis, when configured).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A byte store shared by every instance of the service, such as Redis.
///
/// Failures are the implementation's business: a store that cannot answer must behave as a miss
/// (and log), never fail the read that asked.
#[async_trait]
pub trait SecondLevel: Send + Sync {
    /// The bytes stored under `key`, or `None` when absent, expired or unreachable.
    async fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key` for `ttl`, replacing what was there.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration);
    /// Removes `key`; removing an absent key is not an error.
    async fn remove(&self, key: &str);
}

/// What the second level holds: a value, or the fact that the loader found none.
///
/// Tagged so that a value which itself serialises to `null` stays distinct from an absence.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stored<T> {
    Present(T),
    Absent,
}

type Encode<V> = Box<dyn Fn(&Option<V>) -> Result<Vec<u8>, serde_json::Error> + Send + Sync>;
type Decode<V> = Box<dyn Fn(&[u8]) -> Result<Option<V>, serde_json::Error> + Send + Sync>;

/// A second level together with the codec for one value type, so that the cache itself needs no
/// serde bounds.
pub(crate) struct Attached<V> {
    pub(crate) level: Arc<dyn SecondLevel>,
    pub(crate) encode: Encode<V>,
    pub(crate) decode: Decode<V>,
}

impl<V> Attached<V>
where
    V: Serialize + DeserializeOwned + 'static,
{
    /// Attaches `level`, storing values as JSON.
    pub(crate) fn json(level: Arc<dyn SecondLevel>) -> Self {
        Self {
            level,
            encode: Box::new(|value: &Option<V>| {
                let stored = match value {
                    Some(value) => Stored::Present(value),
                    None => Stored::Absent,
                };
                serde_json::to_vec(&stored)
            }),
            decode: Box::new(|bytes: &[u8]| {
                Ok(match serde_json::from_slice::<Stored<V>>(bytes)? {
                    Stored::Present(value) => Some(value),
                    Stored::Absent => None,
                })
            }),
        }
    }
}
