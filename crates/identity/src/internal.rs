//! What other processes ask of identity (`/internal/v1/identity/…`, service credential
//! required, never routed by the gateway), and [`IdentityClient`], the caller's side: the token
//! revocations a process that verifies tokens without identity's tables must follow.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use emporium_http::service::{CallError, Failure, ServiceClient};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::IdentityError;
use crate::revocation::Revocation;
use crate::service::IdentityService;
use crate::tokens::Tokens;

const REVOCATIONS: &str = "/internal/v1/identity/revocations";
const CUSTOMER_GROUPS: &str = "/internal/v1/identity/customer-groups";

#[derive(Serialize, Deserialize)]
struct Since {
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
struct OfCustomer {
    customer: String,
}

/// The internal routes of an identity process. The caller mounts them behind the service
/// credential guard.
pub fn internal_router(service: Arc<IdentityService>) -> Router {
    Router::new()
        .route(REVOCATIONS, post(revocations))
        .route(CUSTOMER_GROUPS, post(customer_groups))
        .with_state(service)
}

async fn revocations(
    State(s): State<Arc<IdentityService>>,
    axum::Json(c): axum::Json<Since>,
) -> Result<axum::Json<Vec<Revocation>>, Failure> {
    s.revocations_since(c.since)
        .await
        .map(axum::Json)
        .map_err(|e| Failure::of(&e, serde_json::Value::Null))
}

/// The groups of a customer (`cus_…`); none for an unknown customer or a malformed id.
async fn customer_groups(
    State(s): State<Arc<IdentityService>>,
    axum::Json(c): axum::Json<OfCustomer>,
) -> Result<axum::Json<Vec<String>>, Failure> {
    let Ok(id) = c.customer.parse() else {
        return Ok(axum::Json(Vec::new()));
    };
    match s.get_customer(id).await {
        Ok(customer) => Ok(axum::Json(customer.groups)),
        Err(IdentityError::CustomerNotFound) => Ok(axum::Json(Vec::new())),
        Err(e) => Err(Failure::of(&e, serde_json::Value::Null)),
    }
}

/// Identity over the network, for a process that does not run identity.
pub struct IdentityClient {
    client: ServiceClient,
    /// The last groups identity gave for each customer, served while it does not answer.
    known_groups: moka::sync::Cache<String, Vec<String>>,
}

/// Customers whose last known groups a client keeps.
const KNOWN_GROUPS_CAPACITY: u64 = 100_000;

/// How long a customer's last known groups stand in for identity's answer.
const KNOWN_GROUPS_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl IdentityClient {
    /// A client over `client` (whose service is `identity`).
    pub fn new(client: ServiceClient) -> Self {
        Self {
            client,
            known_groups: moka::sync::Cache::builder()
                .max_capacity(KNOWN_GROUPS_CAPACITY)
                .time_to_live(KNOWN_GROUPS_FOR)
                .build(),
        }
    }

    /// Brings `tokens`' revocations up to date with identity's, as
    /// [`IdentityService::refresh_revocations`] does over the database. On failure the set
    /// stays as it was and the next refresh reads from the same point.
    pub async fn refresh_revocations(
        &self,
        tokens: &Tokens,
        now: OffsetDateTime,
    ) -> Result<usize, CallError> {
        let since = tokens.revocations().since(now);
        let rows: Vec<Revocation> = self
            .client
            .call(REVOCATIONS, &Since { since }, true)
            .await?;
        Ok(tokens.revocations().merge_read(&rows, now))
    }

    /// The groups of customer `customer` (`cus_…`), as identity's customer cache has them;
    /// while identity does not answer, the groups it last gave for the customer (a customer
    /// never asked about is an error: a price must not silently lose its group).
    pub async fn groups_of(&self, customer: &str) -> Result<Vec<String>, CallError> {
        let call = OfCustomer {
            customer: customer.to_owned(),
        };
        match self.client.call(CUSTOMER_GROUPS, &call, true).await {
            Ok(groups) => {
                let groups: Vec<String> = groups;
                self.known_groups
                    .insert(customer.to_owned(), groups.clone());
                Ok(groups)
            }
            Err(e @ CallError::Unavailable { .. }) => match self.known_groups.get(customer) {
                Some(groups) => {
                    tracing::warn!(error = %e, "identity does not answer; using the customer's last known groups");
                    Ok(groups)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}
