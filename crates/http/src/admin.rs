//! The one place `/v1/admin/*` access is decided: a table from (method, route template) to the
//! role a staff user needs or the scope an API client needs. A route missing from the table is
//! refused: access fails closed. A method the route does not serve at all is answered 405, as
//! on any other route.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use emporium_kernel::ErrorKind;
use emporium_kernel::auth::{Actor, Principal, Role};

use crate::ApiError;
use crate::middleware::method_not_allowed_error;

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
    // The methods the router serves on each route template, to tell a method the route lacks
    // (405) from a served method that lacks a rule (403 and an error log).
    served: HashMap<String, HashSet<String>>,
}

impl AdminPolicy {
    /// Builds the table from each context's rules.
    pub fn new<'a>(rule_sets: impl IntoIterator<Item = &'a [AdminRule]>) -> Self {
        let rules = rule_sets
            .into_iter()
            .flatten()
            .map(|r| ((r.method, r.route), r.access))
            .collect();
        Self {
            rules,
            served: HashMap::new(),
        }
    }

    /// Tells the policy the `(method, route template)` pairs the router serves (the operations
    /// of the OpenAPI document), so a method a route lacks is answered 405, not refused.
    pub fn serving(mut self, served: impl IntoIterator<Item = (String, String)>) -> Self {
        for (method, route) in served {
            self.served.entry(route).or_default().insert(method);
        }
        self
    }

    /// The rule for a route, if any. `HEAD` follows the rule of `GET`, which serves it.
    pub fn access(&self, method: &str, route: &str) -> Option<Access> {
        let method = rule_method(method);
        // The map is covariant in its key, so it can be searched with borrowed strings.
        let rules: &HashMap<(&str, &str), Access> = &self.rules;
        rules.get(&(method, route)).copied()
    }

    /// Whether `route` is known to serve other methods but not `method`: such a request is
    /// answered 405 whoever sends it. A route the policy was not told about is never
    /// presumed to lack a method, so a missing rule there is still refused and logged.
    pub fn lacks_method(&self, method: &str, route: &str) -> bool {
        let method = rule_method(method);
        self.access(method, route).is_none()
            && self
                .served
                .get(route)
                .is_some_and(|methods| !methods.contains(method))
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
    if policy.lacks_method(req.method().as_str(), &route) {
        // The router answers 405 (with `Allow`) for this request anyway: say so to every caller
        // rather than ask for credentials or log a missing rule.
        return method_not_allowed_error().into_response();
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

/// The method whose rule applies: axum serves `HEAD` with the `GET` handler.
fn rule_method(method: &str) -> &str {
    if method == "HEAD" { "GET" } else { method }
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

    #[test]
    fn a_method_the_route_does_not_serve_is_told_apart_from_a_missing_rule() {
        const RULES: &[AdminRule] = &[AdminRule::staff(
            "POST",
            "/v1/admin/orders/{id}/capture",
            Role::Staff,
        )];
        let served = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(m, r)| (m.to_string(), r.to_string()))
                .collect::<Vec<_>>()
        };
        let p = AdminPolicy::new([RULES]).serving(served(&[
            ("POST", "/v1/admin/orders/{id}/capture"),
            ("GET", "/v1/admin/orders"),
            ("POST", "/v1/admin/orders"),
        ]));
        assert!(p.lacks_method("PUT", "/v1/admin/orders/{id}/capture"));
        assert!(p.lacks_method("HEAD", "/v1/admin/orders/{id}/capture"));
        assert!(!p.lacks_method("POST", "/v1/admin/orders/{id}/capture"));
        // Served without a rule: refused, not 405.
        assert!(!p.lacks_method("GET", "/v1/admin/orders"));
        assert!(!p.lacks_method("HEAD", "/v1/admin/orders"));
        let owner = principal(Actor::Staff(Role::Owner), &[]);
        assert!(p.check("GET", "/v1/admin/orders", &owner).is_err());
        // A route the policy was not told about is never presumed to lack a method.
        assert!(!p.lacks_method("PUT", "/v1/admin/unknown"));
    }
}
