//! The catalog read cache: in-process (moka) with room for a second level, guarded against
//! penetration, breakdown and avalanche.
//!
//! [`Cache`] is a read-through cache in front of a loader (usually a database read):
//!
//! - **Penetration**: a key the loader reports absent (`Ok(None)`) is cached too, for the shorter
//!   [`CacheConfig::negative_ttl`], so a flood of reads for a missing id reaches the loader once.
//! - **Breakdown**: when many callers miss the same key together the loader runs once and the others
//!   wait for its result.
//! - **Avalanche**: every entry lives its time to live stretched or shrunk by a random factor
//!   ([`jittered`]), so entries filled together do not expire together.
//!
//! Values are invalidated by key (from catalog events) or all at once. An optional
//! [`SecondLevel`] sits between the in-process level and the loader, shared by every instance of
//! a service: [`RedisLevel`] when Redis is configured. Callers do not change when it is added, and
//! a second level that is slow or down only turns into misses.
//!
//! ```
//! use emporium_cache::{Cache, CacheConfig};
//!
//! # async fn read() -> Result<(), std::sync::Arc<std::io::Error>> {
//! let products: Cache<u64, String> = Cache::new(CacheConfig::new("product"));
//! let name = products
//!     .get_or_load(&7, || async { Ok::<_, std::io::Error>(Some("mug".to_owned())) })
//!     .await?;
//! assert_eq!(name.as_deref(), Some("mug"));
//! products.invalidate(&7).await; // On a catalog event about product 7.
//! # Ok(())
//! # }
//! ```

mod cache;
mod config;
mod expiry;
mod redis;
mod second_level;

pub use crate::redis::{RedisLevel, RedisLevelError, RedisOptions};
pub use cache::{Cache, CacheStats};
pub use config::CacheConfig;
pub use expiry::jittered;
pub use second_level::SecondLevel;

#[cfg(test)]
mod tests;
