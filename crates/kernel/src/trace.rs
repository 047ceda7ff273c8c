//! The request being served — its id and W3C `traceparent` — visible to code deep below the
//! handler: events carry the trace of the request that caused them, errors carry its id.

use std::future::Future;

/// Identity of the request in flight.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The `x-request-id` (received or generated).
    pub request_id: String,
    /// The W3C traceparent of this server span.
    pub traceparent: Option<String>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Runs `fut` with `ctx` as the current request.
pub async fn scope<F: Future>(ctx: RequestContext, fut: F) -> F::Output {
    CURRENT.scope(ctx, fut).await
}

/// The current request's traceparent, if a request is in scope.
pub fn current() -> Option<String> {
    CURRENT.try_with(|c| c.traceparent.clone()).ok().flatten()
}

/// The current request's id, if a request is in scope.
pub fn request_id() -> Option<String> {
    CURRENT.try_with(|c| c.request_id.clone()).ok()
}
