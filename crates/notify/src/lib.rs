//! The notify context: webhooks (Standard Webhooks 1.0: signed, retried for about three days,
//! dead-lettered, replayable), e-mail to customers and staff, and merchant notifications. It
//! follows the domain events through the bus; nothing here runs on a request's path.

pub mod api;
mod deliver;
pub mod domain;
mod email;
mod error;
mod events;
mod fanout;
mod routes;
mod service;
mod store;
mod templates;

pub use deliver::Deliverer;
pub use domain::{DeliveryId, Destinations, EndpointId};
pub use email::{MailComposer, MailSettings, Mailer, MailerError, is_mailbox};
pub use error::NotifyError;
pub use events::EndpointChanged;
pub use fanout::{Handoff, WebhookFanout, payload_of};
pub use routes::{ADMIN_RULES, WebhookState, router};
pub use service::{WebhookService, WebhookSettings};

/// Notify's schema.
pub const MIGRATIONS: &[emporium_db::Migration] = &[emporium_db::Migration {
    version: 20261205000100,
    description: "notify",
    sqlite: include_str!("../migrations/sqlite/20261205000100_notify.sql"),
    postgres: include_str!("../migrations/postgres/20261205000100_notify.sql"),
}];
