//! Inventory's behaviour, driven through `InventoryService` over a real database: SQLite always,
//! PostgreSQL when `EMPORIUM_TEST_POSTGRES_URL` is set (a fresh database per test).

// Test code may panic on the unexpected: that is how a test fails.
#![allow(clippy::unwrap_used)]

mod helpers;
mod levels;
mod reservations;
mod routes;
