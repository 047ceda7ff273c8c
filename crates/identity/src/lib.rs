//! Identity: customers, staff users, API clients, their credentials and tokens.
pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod service;
pub mod store;
pub mod throttle;
pub mod password;
pub mod tokens;
