//! Identity's events, recorded in the outbox with the change they describe.

use emporium_kernel::Event;
use serde::{Deserialize, Serialize};

use crate::domain::{ApiClientId, CustomerId, StaffUserId};

/// A shopper created an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerRegistered {
    pub customer_id: CustomerId,
    pub email: String,
    pub name: String,
}

impl Event for CustomerRegistered {
    const TYPE: &'static str = "customer.registered";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.customer_id.to_string()
    }
}

/// A staff user was created (by the CLI or an owner).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffUserCreated {
    pub user_id: StaffUserId,
    pub email: String,
    pub role: String,
    /// Who created it: a `usr_…` id, or `cli` for the command line.
    pub created_by: String,
}

impl Event for StaffUserCreated {
    const TYPE: &'static str = "staff_user.created";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.user_id.to_string()
    }
}

/// A staff user's name, role, password or disabled state changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffUserUpdated {
    pub user_id: StaffUserId,
    pub role: String,
    pub password_changed: bool,
    /// Whether the user is disabled after the change (absent from events recorded before users
    /// could be disabled: read as false).
    #[serde(default)]
    pub disabled: bool,
    pub updated_by: String,
}

impl Event for StaffUserUpdated {
    const TYPE: &'static str = "staff_user.updated";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.user_id.to_string()
    }
}

/// A staff user was removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffUserDeleted {
    pub user_id: StaffUserId,
    pub deleted_by: String,
}

impl Event for StaffUserDeleted {
    const TYPE: &'static str = "staff_user.deleted";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.user_id.to_string()
    }
}

/// An API client was created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiClientCreated {
    pub client_id: ApiClientId,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_by: String,
}

impl Event for ApiClientCreated {
    const TYPE: &'static str = "api_client.created";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.client_id.to_string()
    }
}

/// An API client was revoked; it can get no new tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiClientRevoked {
    pub client_id: ApiClientId,
    pub revoked_by: String,
}

impl Event for ApiClientRevoked {
    const TYPE: &'static str = "api_client.revoked";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.client_id.to_string()
    }
}

/// Staff set a customer's groups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerGroupsChanged {
    pub customer_id: CustomerId,
    /// The groups now, sorted.
    pub groups: Vec<String>,
    /// The staff user's `usr_…` id.
    pub changed_by: String,
}

impl Event for CustomerGroupsChanged {
    const TYPE: &'static str = "customer.groups_changed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.customer_id.to_string()
    }
}

/// A customer changed their password; every session and access token from before has ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerPasswordChanged {
    pub customer_id: CustomerId,
}

impl Event for CustomerPasswordChanged {
    const TYPE: &'static str = "customer.password_changed";
    const VERSION: i32 = 1;
    fn aggregate_id(&self) -> String {
        self.customer_id.to_string()
    }
}
