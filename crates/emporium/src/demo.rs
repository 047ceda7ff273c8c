//! Demo data for `emporium serve --demo`: a store someone can sign in to straight away. Seeding
//! is idempotent; accounts that exist are left alone.

use emporium_identity::IdentityError;
use emporium_identity::service::{CreateStaffUser, RegisterCustomer};
use emporium_kernel::auth::Role;

use crate::Store;

/// The demo owner's e-mail address.
pub const OWNER_EMAIL: &str = "owner@demo.emporium.test";
/// The demo owner's password; public, like everything in demo data.
pub const OWNER_PASSWORD: &str = "demo owner passphrase";
/// The demo shopper's e-mail address.
pub const SHOPPER_EMAIL: &str = "shopper@demo.emporium.test";
/// The demo shopper's password.
pub const SHOPPER_PASSWORD: &str = "demo shopper passphrase";

/// Creates the demo accounts that do not exist yet.
pub async fn seed(store: &Store) -> anyhow::Result<()> {
    let owner = store
        .identity
        .create_staff(
            CreateStaffUser {
                email: OWNER_EMAIL.to_owned(),
                password: OWNER_PASSWORD.to_owned(),
                name: "Demo Owner".to_owned(),
                role: Role::Owner,
            },
            "demo",
        )
        .await;
    let shopper = store
        .identity
        .register(RegisterCustomer {
            email: SHOPPER_EMAIL.to_owned(),
            password: SHOPPER_PASSWORD.to_owned(),
            name: "Demo Shopper".to_owned(),
        })
        .await;
    for result in [owner.map(|_| ()), shopper.map(|_| ())] {
        match result {
            Ok(()) | Err(IdentityError::EmailTaken) => {}
            Err(e) => return Err(anyhow::Error::new(e).context("cannot seed demo data")),
        }
    }
    tracing::warn!(
        owner = OWNER_EMAIL,
        owner_password = OWNER_PASSWORD,
        shopper = SHOPPER_EMAIL,
        shopper_password = SHOPPER_PASSWORD,
        "demo data: these accounts have public passwords; never use --demo for a real store"
    );
    Ok(())
}
