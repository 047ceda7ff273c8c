//! Identity: customers, staff users (roles owner > admin > staff), API clients of the
//! client-credentials grant, their credentials (argon2id passwords, hashed secrets) and tokens
//! (Ed25519 JWT access tokens, rotating refresh tokens with reuse detection).

mod api;
mod domain;
mod error;
pub mod events;
mod internal;
mod password;
mod revocation;
mod routes;
mod service;
mod store;
mod throttle;
mod tokens;

pub use api::{
    ApiClient, Customer, IdentityApi, Jwk, Jwks, NewApiClient, StaffUser, TokenResponse,
};
pub use domain::{ApiClientId, CustomerId, StaffUserId};
pub use error::IdentityError;
pub use internal::{IdentityClient, internal_router};
pub use password::Hasher;
pub use routes::{ADMIN_RULES, router};
pub use service::{CreateStaffUser, IdentityService, RegisterCustomer, TokenLifetimes};
/// Moves a principal's token generation in the database directly. Public only so that the HTTP
/// suites can play another process writing the same database, a generation that moved with no
/// session revoked (the race of a sign-in with a change); no other crate calls it.
pub use store::bump_token_generation;
pub use throttle::{LoginThrottle, ThrottleLimits};
pub use tokens::{Tokens, rotate_keys};

/// Identity's schema migrations.
pub const MIGRATIONS: &[emporium_db::Migration] = &[
    emporium_db::Migration {
        version: 20261123000100,
        description: "identity",
        sqlite: include_str!("../migrations/sqlite/20261123000100_identity.sql"),
        postgres: include_str!("../migrations/postgres/20261123000100_identity.sql"),
    },
    emporium_db::Migration {
        version: 20261126000800,
        description: "customer groups",
        sqlite: include_str!("../migrations/sqlite/20261126000800_customer_groups.sql"),
        postgres: include_str!("../migrations/postgres/20261126000800_customer_groups.sql"),
    },
    emporium_db::Migration {
        version: 20261201223000,
        description: "token revocations",
        sqlite: include_str!("../migrations/sqlite/20261201223000_token_revocations.sql"),
        postgres: include_str!("../migrations/postgres/20261201223000_token_revocations.sql"),
    },
    emporium_db::Migration {
        version: 20261201231000,
        description: "staff disabled",
        sqlite: include_str!("../migrations/sqlite/20261201231000_staff_disabled.sql"),
        postgres: include_str!("../migrations/postgres/20261201231000_staff_disabled.sql"),
    },
];
