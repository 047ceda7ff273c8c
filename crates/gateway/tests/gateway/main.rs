//! The gateway against real upstream servers over TCP: balancing, resilience, limits, gray
//! release, run-time changes, headers and TLS.
#![allow(clippy::unwrap_used)]

mod balancing;
mod limits;
mod proxying;
mod release;
mod resilience;
mod support;
mod tls;
