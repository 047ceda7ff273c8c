//! Identity: customers, staff users (roles owner > admin > staff), API clients of the
//! client-credentials grant, their credentials (argon2id passwords, hashed secrets) and tokens
//! (Ed25519 JWT access tokens, rotating refresh tokens with reuse detection).

pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod password;
pub mod revocation;
pub mod routes;
pub mod service;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use api::IdentityApi;
pub use error::IdentityError;
pub use routes::{ADMIN_RULES, router};
pub use service::IdentityService;

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
