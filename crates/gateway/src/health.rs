//! Active health checks: every instance of every group is asked `GET <health.path>` each
//! interval; `unhealthy_after` failures in a row mark it down, `healthy_after` passes mark it up.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::proxy::Shared;
use crate::upstream::Upstream;

/// Checks until `shutdown` is cancelled. The configuration is read afresh each round, so a
/// reload changes the path, interval and thresholds.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let state = shared.state.load_full();
        let health = state.config.health.clone();
        let interval = Duration::from_millis(health.interval_ms);
        if !health.path.is_empty() {
            let mut checks = JoinSet::new();
            for group in state.table.groups.values() {
                for upstream in &group.upstreams {
                    let shared = shared.clone();
                    let upstream = upstream.clone();
                    let health = health.clone();
                    checks.spawn(async move {
                        let passed = check(&shared, &upstream, &health.path,
                            Duration::from_millis(health.timeout_ms)).await;
                        if let Some(now_healthy) =
                            upstream.record_check(passed, health.healthy_after, health.unhealthy_after)
                        {
                            tracing::info!(group = %upstream.group, upstream = %upstream.instance.url,
                                healthy = now_healthy, "upstream health changed");
                        }
                    });
                }
            }
            drop(state);
            let all = async { while checks.join_next().await.is_some() {} };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = all => {}
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn check(shared: &Shared, upstream: &Upstream, path: &str, timeout: Duration) -> bool {
    let mut parts = upstream.base.clone().into_parts();
    let Ok(pq) = path.parse() else { return false };
    parts.path_and_query = Some(pq);
    let Ok(uri) = hyper::Uri::from_parts(parts) else {
        return false;
    };
    let Ok(request) = Request::get(uri)
        .header("user-agent", "emporium-gateway-health")
        .body(Empty::new().map_err(|never| match never {}).boxed())
    else {
        return false;
    };
    match tokio::time::timeout(timeout, shared.client.request(request)).await {
        Ok(Ok(response)) => {
            let ok = response.status().is_success();
            // Read the body so the connection goes back to the pool.
            let _ = tokio::time::timeout(timeout, response.into_body().collect()).await;
            ok
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, upstream = %upstream.instance.url, "health check failed");
            false
        }
        Err(_) => false,
    }
}
