//! The vocabulary every Emporium crate shares: typed ids, the error kinds and codes, the clock, the
//! event envelope, opaque cursors and secrets. Depends on no other workspace crate.

pub mod breaker;
pub mod clock;
pub mod cursor;
pub mod error;
pub mod event;
pub mod id;
pub mod ids;
pub mod money;
pub mod secret;
pub mod text;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use cursor::{Cursor, Page};
pub use error::{DomainError, ErrorKind, FieldError, Violations};
pub use event::{Envelope, Event};
pub use money::{Currency, Money};
pub use secret::Secret;
pub mod auth;
pub mod fault;
pub mod trace;
