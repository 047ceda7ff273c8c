//! Who is calling: the principal an access token proves, as plain data every context can read.

use serde::{Deserialize, Serialize};

/// A staff role; each includes the powers of those below it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Staff,
    Admin,
    Owner,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// Parses a stored or requested role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "staff" => Some(Self::Staff),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }
}

/// What kind of party a token was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A shopper (`cus_…`).
    Customer,
    /// A back-office user (`usr_…`) with a role.
    Staff(Role),
    /// A machine client of the client-credentials grant (`cli_…`), limited to its scopes.
    Client,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token subject, a prefixed id (`cus_…`, `usr_…`, `cli_…`).
    pub subject: String,
    /// What kind of party it is.
    pub actor: Actor,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The token's refresh family, for logout (absent for client credentials).
    pub session: Option<String>,
}

impl Principal {
    /// True when the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}
