//! The Prometheus recorder (installed once per process) and the RED metrics of every request.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often recorded histogram values are folded into their buckets. The recorder keeps every
/// value until then, so without it a process that nobody scrapes grows with every request.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's Prometheus handle, installing the recorder (and its upkeep) on first use.
/// `None` only when another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ],
                )
                .ok()?
                .install_recorder()
                .ok()?;
            // A thread rather than a task: the recorder outlives any one runtime (tests start
            // many), and the upkeep is a few microseconds every few seconds.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".to_owned())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread; histograms grow until scraped");
            }
            Some(handle)
        })
        .as_ref()
}

/// The `method` label of a request: the method's own name for the nine methods of RFC 9110,
/// `other` for any extension token, so a client cannot mint label values (and series) at will.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

/// Records one finished request. Every label is bounded: the method through [`method_label`],
/// the route is a registered template (or `unmatched`, never the raw path), the status a number
/// below 1000.
pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let method = method_label(method);
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("emporium_http_requests_total", &labels).increment(1);
    metrics::histogram!(
        "emporium_http_request_duration_seconds",
        "method" => method,
        "route" => route.to_owned()
    )
    .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn standard_methods_keep_their_name_and_extension_tokens_fold_into_other() {
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("CONNECT"), "CONNECT");
        assert_eq!(method_label("PROPFIND"), "other");
        assert_eq!(method_label("get"), "other");
    }
}
