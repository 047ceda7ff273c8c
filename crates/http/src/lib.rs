//! HTTP conventions shared by every context: RFC 9457 problem responses (the one place where an
//! error kind becomes a status), extractors whose rejections are problems too, the request
//! middleware (request id, traceparent, timeout, metrics), the security headers, bearer authentication plumbing, and
//! the OpenAPI additions every route shares.

pub mod admin;
pub mod auth;
pub mod conditional;
pub mod extract;
pub mod headers;
pub mod metrics;
pub mod middleware;
mod objects;
pub mod openapi;
pub mod problem;
pub mod service;

pub use auth::{Authenticated, Customer, TokenVerifier};
pub use extract::{Json, PageQuery, Path, Query};
pub use problem::{ApiError, Problem, status_of};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";
