//! The `emporium` binary's library half: configuration, wiring and the server, so the HTTP test
//! suites can start the real application in-process.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod events;
pub mod gateway;
pub mod import;
pub mod journal;
pub mod seed;
pub mod telemetry;

pub use app::{RunningServer, Store, start};
pub use config::Config;
