//! The one place `/v1/admin/*` access is decided: a table from (method, route template) to the
//! role a staff user needs or the scope an API client needs. A route missing from the table is
//! refused: access fails closed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_kernel::ErrorKind;
use emporium_kernel::auth::{Actor, Principal, Role};

use crate::ApiError;

/// Who may call one admin route.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The least staff role allowed.
    pub role: Role,
    /// The scope that lets an API client in; `None`: staff only.
    pub scope: Option<&'static str>,
}

/// One row of the access table.
#[derive(Debug, Clone, Copy)]
pub struct AdminRule {
    /// HTTP method, upper-case.
    pub method: &'static str,
    /// Route template as registered, e.g. `/v1/admin/users/{id}`.
    pub route: &'static str,
    /// Who may call it.
    pub access: Access,
}

impl AdminRule {
    /// A route for staff of at least `role`.
    pub const fn staff(method: &'static str, route: &'static str, role: Role) -> Self {
        Self {
            method,
            route,
            access: Access { role, scope: None },
        }
    }

    /// A route for staff of at least `role`, or API clients holding `scope`.
    pub const fn staff_or_client(
        method: &'static str,
        route: &'static str,
        role: Role,
        scope: &'static str,
    ) -> Self {
        Self {
            method,
            route,
            access: Access {
                role,
                scope: Some(scope),
            },
        }
    }
}

/// The access table of every admin route in the process.
#[derive(Debug, Default)]
pub struct AdminPolicy {
    rules: HashMap<(&'static str, &'static str), Access>,
}

impl AdminPolicy {
    /// Builds the table from each context's rules.
    pub fn new<'a>(rule_sets: impl IntoIterator<Item = &'a [AdminRule]>) -> Self {
        let rules = rule_sets
            .into_iter()
            .flatten()
            .map(|r| ((r.method, r.route), r.access))
            .collect();
        Self { rules }
    }

    /// The rule for a route, if any.
    pub fn access(&self, method: &str, route: &str) -> Option<Access> {
        // The map is covariant in its key, so it can be searched with borrowed strings.
        let rules: &HashMap<(&str, &str), Access> = &self.rules;
        rules.get(&(method, route)).copied()
    }

    /// Decides whether `principal` may call `method route`.
    pub fn check(&self, method: &str, route: &str, principal: &Principal) -> Result<(), ApiError> {
        let forbidden = |detail: &str| ApiError::new(ErrorKind::Forbidden, "forbidden", detail);
        let Some(access) = self.access(method, route) else {
            tracing::error!(method, route, "admin route without an access rule; refused");
            return Err(forbidden("this route is not open to anyone"));
        };
        match principal.actor {
            Actor::Staff(role) if role >= access.role => Ok(()),
            Actor::Staff(_) => Err(forbidden(&format!(
                "this route needs the {} role or higher",
                access.role.as_str()
            ))),
            Actor::Client => match access.scope {
                Some(scope) if principal.has_scope(scope) => Ok(()),
                Some(scope) => Err(forbidden(&format!("this route needs the {scope} scope"))),
                None => Err(forbidden("this route is for staff users only")),
            },
            Actor::Customer => Err(forbidden("this route is for staff")),
        }
    }
}

/// Route layer: enforces the [`AdminPolicy`] on every route under `/v1/admin`.
pub async fn guard(State(policy): State<Arc<AdminPolicy>>, req: Request, next: Next) -> Response {
    let Some(route) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    if !route.starts_with("/v1/admin") {
        return next.run(req).await;
    }
    let Some(principal) = req.extensions().get::<Principal>() else {
        return ApiError::new(
            ErrorKind::Unauthenticated,
            "unauthenticated",
            "admin routes need a staff or API client access token",
        )
        .into_response();
    };
    match policy.check(req.method().as_str(), &route, principal) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(actor: Actor, scopes: &[&str]) -> Principal {
        Principal {
            subject: "x".into(),
            actor,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            session: None,
        }
    }

    #[test]
    fn roles_scopes_and_unknown_routes_are_decided_by_the_table() {
        const RULES: &[AdminRule] = &[
            AdminRule::staff_or_client("GET", "/v1/admin/customers", Role::Staff, "customers:read"),
            AdminRule::staff("POST", "/v1/admin/users", Role::Owner),
        ];
        let p = AdminPolicy::new([RULES]);
        let ok = |m, r, who: &Principal| p.check(m, r, who).is_ok();
        assert!(ok(
            "GET",
            "/v1/admin/customers",
            &principal(Actor::Staff(Role::Staff), &[])
        ));
        assert!(ok(
            "GET",
            "/v1/admin/customers",
            &principal(Actor::Client, &["customers:read"])
        ));
        assert!(!ok(
            "GET",
            "/v1/admin/customers",
            &principal(Actor::Client, &["events:read"])
        ));
        assert!(!ok(
            "GET",
            "/v1/admin/customers",
            &principal(Actor::Customer, &["store"])
        ));
        assert!(!ok(
            "POST",
            "/v1/admin/users",
            &principal(Actor::Staff(Role::Admin), &[])
        ));
        assert!(ok(
            "POST",
            "/v1/admin/users",
            &principal(Actor::Staff(Role::Owner), &[])
        ));
        assert!(!ok(
            "POST",
            "/v1/admin/users",
            &principal(Actor::Client, &["customers:read"])
        ));
        assert!(!ok(
            "DELETE",
            "/v1/admin/customers",
            &principal(Actor::Staff(Role::Owner), &[])
        ));
    }
}
