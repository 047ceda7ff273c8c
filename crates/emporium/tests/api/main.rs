//! HTTP suites: each starts the real server on a random port against a fresh database and talks
//! to it over TCP. Suites that touch storage run on SQLite always and on PostgreSQL when
//! `EMPORIUM_TEST_POSTGRES_URL` is set.

// Test code may panic on the unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

mod cart;
mod catalog;
mod checkout;
mod cli;
mod docs;
mod events;
mod helpers;
mod http_conventions;
mod identity;
mod import;
mod media;
mod payments;
mod pricing;
mod recovery;
mod revocation;
mod search;
mod security;
