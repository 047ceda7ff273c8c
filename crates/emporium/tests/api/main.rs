//! HTTP suites: each starts the real server on a random port against a fresh database and talks
//! to it over TCP. Suites that touch storage run on SQLite always and on PostgreSQL too: the
//! server `EMPORIUM_TEST_POSTGRES_URL` names, or else a throw-away one the binary starts when
//! PostgreSQL is installed (a suite that finds neither says loudly that it did not run).

// Test code may panic on the unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

mod admin_ui;
mod admin_webhooks;
mod cache;
mod cart;
mod catalog;
mod checkout;
mod cli;
mod cluster;
mod dashboard_reads;
mod degradation;
mod docs;
mod events;
mod gateway;
mod helpers;
mod http_conventions;
mod identity;
mod import;
mod media;
mod notify_email;
mod payments;
mod prices;
mod pricing;
mod recovery;
mod revocation;
mod search;
mod security;
mod webhooks;
