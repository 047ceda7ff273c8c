//! Demo data for `emporium serve --demo`: a store someone can sign in to straight away. Seeding
//! is idempotent; accounts that exist are left alone.

use emporium_identity::{CreateStaffUser, IdentityError, IdentityService, RegisterCustomer};
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

/// Products in the demo catalog `serve --demo` seeds on first start.
pub const DEMO_PRODUCTS: usize = 200;

/// Creates the demo accounts that do not exist yet, the demo catalog when the store has no
/// product, and each part of the demo pricing that is missing.
pub async fn seed(store: &Store) -> anyhow::Result<()> {
    if let Some(identity) = &store.identity {
        seed_accounts(identity).await?;
    }
    // A browsable store on first start: the demo catalog, once, where the catalog runs.
    if store.catalog.is_some() {
        seed_catalog(&crate::import::Target::of(store)?).await?;
    }
    // Whatever the store held (products from `emporium seed`, say), the walk from a cart to a
    // checkout needs these: each part is added when missing.
    seed_pricing(store).await?;
    tracing::warn!(
        owner = OWNER_EMAIL,
        owner_password = OWNER_PASSWORD,
        shopper = SHOPPER_EMAIL,
        shopper_password = SHOPPER_PASSWORD,
        "demo data: these accounts have public passwords; never use --demo for a real store"
    );
    Ok(())
}

/// The demo owner and shopper, unless they exist.
pub async fn seed_accounts(identity: &IdentityService) -> anyhow::Result<()> {
    let owner = identity
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
    let shopper = identity
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
    Ok(())
}

/// The demo catalog, with stock, when the catalog has no product yet.
pub async fn seed_catalog(to: &crate::import::Target) -> anyhow::Result<()> {
    let empty = to
        .catalog
        .list_products(emporium_catalog::AdminListQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .items
        .is_empty();
    if empty {
        let bar = indicatif::ProgressBar::hidden();
        let summary =
            crate::import::run(to, crate::seed::demo_catalog(DEMO_PRODUCTS), &bar).await?;
        anyhow::ensure!(
            summary.failed.is_empty(),
            "the demo catalog was not seeded whole: {:?}",
            summary.failed.first()
        );
        tracing::info!(products = summary.created, "demo catalog seeded");
    }
    Ok(())
}

/// Demo pricing: VAT included in three countries, one flat shipping option per currency, and a
/// `WELCOME10` coupon (10 % off), so a demo cart can be checked out. Each part is created only
/// when missing (a tax rate of the country, an option of the name, the promotion of the name,
/// the coupon code), so seeding again changes nothing.
async fn seed_pricing(store: &Store) -> anyhow::Result<()> {
    use emporium_kernel::{Currency, Money};
    use emporium_pricing::{
        Benefit, Conditions, CreateCoupon, Promotion, ShippingOption, ShippingRate, Stacking,
        TaxRate,
    };
    let pricing = &store.pricing;
    let rules = pricing.rules().await?;
    for (country, basis_points) in [("DE", 1_900), ("FR", 2_000), ("GB", 2_000)] {
        if rules
            .tax_rates
            .iter()
            .any(|r| r.country == country && r.state.is_none())
        {
            continue;
        }
        let rate = TaxRate {
            id: Default::default(),
            name: format!("{country} VAT"),
            country: country.to_owned(),
            state: None,
            basis_points,
            inclusive: true,
        };
        pricing.create_rule(rate, "demo").await?;
    }
    for (currency, amount) in [("EUR", 490), ("USD", 590), ("GBP", 450)] {
        let currency: Currency = currency.parse()?;
        let name = format!("Standard ({currency})");
        if rules.shipping_options.iter().any(|o| o.name == name) {
            continue;
        }
        let option = ShippingOption {
            id: Default::default(),
            name,
            countries: Vec::new(),
            rate: ShippingRate::Flat {
                price: Money { amount, currency },
            },
        };
        pricing.create_rule(option, "demo").await?;
    }
    const WELCOME: &str = "Welcome, 10 % off";
    let promotion_id = match rules.promotions.iter().find(|p| p.name == WELCOME) {
        Some(p) => p.id,
        None => {
            let welcome = Promotion {
                id: Default::default(),
                name: WELCOME.to_owned(),
                benefit: Benefit::OrderPercent {
                    basis_points: 1_000,
                },
                conditions: Conditions::default(),
                needs_coupon: true,
                stacking: Stacking::Combinable,
                priority: 0,
            };
            pricing.create_rule(welcome, "demo").await?.rule.id
        }
    };
    let coupon = pricing
        .create_coupon(
            CreateCoupon {
                code: "WELCOME10".to_owned(),
                promotion_id,
                usage_limit: None,
                per_customer_limit: Some(1),
            },
            "demo",
        )
        .await;
    match coupon {
        Ok(_) | Err(emporium_pricing::PricingError::CouponCodeTaken) => {}
        Err(e) => return Err(anyhow::Error::new(e).context("cannot seed the demo coupon")),
    }
    Ok(())
}
