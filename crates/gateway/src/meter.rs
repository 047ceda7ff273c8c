//! The metric handles a request records into, kept beside the route and the instance they
//! describe: a request adds to a counter it already holds instead of building a label set,
//! hashing it and looking it up in the recorder's registry. Each series is registered at its
//! first use, as the macros would register it, so `/gateway/metrics` shows the same series.

use std::sync::OnceLock;
use std::time::Duration;

use hyper::StatusCode;
use metrics::{Counter, Histogram};

/// The statuses whose request counters a route keeps at hand; others go through the registry.
const KEPT_STATUSES: [u16; 26] = [
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 409, 410, 412,
    413, 422, 429, 500, 502, 503, 504,
];

/// `emporium_gateway_requests_total` and `emporium_gateway_request_duration_seconds` of one
/// route.
#[derive(Debug)]
pub(crate) struct RouteMeter {
    requests: [OnceLock<Counter>; KEPT_STATUSES.len()],
    duration: OnceLock<Histogram>,
}

impl RouteMeter {
    pub(crate) const fn new() -> Self {
        Self {
            requests: [const { OnceLock::new() }; KEPT_STATUSES.len()],
            duration: OnceLock::new(),
        }
    }

    /// Counts one answered request of the route `route` to `group` and records its duration.
    pub(crate) fn record(&self, route: &str, group: &str, status: StatusCode, elapsed: Duration) {
        let code = status.as_u16();
        let counter = || {
            metrics::counter!("emporium_gateway_requests_total",
                "route" => route.to_owned(), "group" => group.to_owned(),
                "status" => code.to_string())
        };
        match KEPT_STATUSES.iter().position(|s| *s == code) {
            Some(i) => self.requests[i].get_or_init(counter).increment(1),
            None => counter().increment(1),
        }
        self.duration
            .get_or_init(|| {
                metrics::histogram!("emporium_gateway_request_duration_seconds",
                    "route" => route.to_owned(), "group" => group.to_owned())
            })
            .record(elapsed.as_secs_f64());
    }
}

/// How an attempt on an instance ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    ErrorStatus,
    ConnectError,
    Timeout,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ErrorStatus => "error_status",
            Self::ConnectError => "connect_error",
            Self::Timeout => "timeout",
        }
    }
}

/// `emporium_gateway_upstream_requests_total` of one instance, by outcome.
#[derive(Debug)]
pub(crate) struct AttemptMeter {
    outcomes: [OnceLock<Counter>; 4],
}

impl AttemptMeter {
    pub(crate) const fn new() -> Self {
        Self {
            outcomes: [const { OnceLock::new() }; 4],
        }
    }

    /// Counts one attempt on the instance `upstream` of `group`.
    pub(crate) fn record(&self, group: &str, upstream: &str, outcome: Outcome) {
        self.outcomes[outcome as usize]
            .get_or_init(|| {
                metrics::counter!("emporium_gateway_upstream_requests_total",
                    "group" => group.to_owned(), "upstream" => upstream.to_owned(),
                    "outcome" => outcome.label())
            })
            .increment(1);
    }
}
