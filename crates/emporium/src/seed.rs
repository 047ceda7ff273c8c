//! A realistic, deterministic demo catalog: the same `n` gives the same products every time, so
//! seeding twice changes nothing.

use std::collections::BTreeMap;

use anyhow::Context;

use emporium_catalog::{ProductOption, ProductStatus};
use emporium_kernel::Money;

use crate::import::{ImportProduct, ImportVariant, Record};

struct Department {
    path: &'static str,
    code: &'static str,
    nouns: &'static [&'static str],
    materials: &'static [&'static str],
    sized: bool,
}

const DEPARTMENTS: &[Department] = &[
    Department {
        path: "Apparel > Shirts",
        code: "SHI",
        nouns: &["Shirt", "Oxford Shirt", "Overshirt", "Polo"],
        materials: &["Linen", "Cotton", "Flannel", "Chambray"],
        sized: true,
    },
    Department {
        path: "Apparel > Trousers",
        code: "TRO",
        nouns: &["Chinos", "Trousers", "Jeans", "Shorts"],
        materials: &["Twill", "Denim", "Corduroy", "Wool"],
        sized: true,
    },
    Department {
        path: "Apparel > Knitwear",
        code: "KNI",
        nouns: &["Sweater", "Cardigan", "Beanie", "Scarf"],
        materials: &["Merino", "Cashmere", "Lambswool", "Alpaca"],
        sized: true,
    },
    Department {
        path: "Apparel > Jackets",
        code: "JAC",
        nouns: &["Jacket", "Parka", "Raincoat", "Gilet"],
        materials: &["Waxed Cotton", "Nylon", "Wool", "Down"],
        sized: true,
    },
    Department {
        path: "Home > Kitchen",
        code: "KIT",
        nouns: &["Mug", "Teapot", "Chef Knife", "Cutting Board", "Saucepan"],
        materials: &["Stoneware", "Cast Iron", "Oak", "Copper", "Porcelain"],
        sized: false,
    },
    Department {
        path: "Home > Lighting",
        code: "LIG",
        nouns: &["Table Lamp", "Pendant", "Floor Lamp", "Candle Holder"],
        materials: &["Brass", "Rattan", "Glass", "Ceramic"],
        sized: false,
    },
    Department {
        path: "Home > Textiles",
        code: "TEX",
        nouns: &["Throw", "Cushion", "Duvet Cover", "Tea Towel"],
        materials: &["Linen", "Wool", "Cotton", "Velvet"],
        sized: false,
    },
    Department {
        path: "Outdoor > Camping",
        code: "CAM",
        nouns: &["Tent", "Sleeping Bag", "Camp Stove", "Lantern", "Backpack"],
        materials: &["Ripstop", "Titanium", "Canvas", "Aluminium"],
        sized: false,
    },
    Department {
        path: "Outdoor > Cycling",
        code: "CYC",
        nouns: &["Bike Light", "Saddle Bag", "Bidon", "Helmet"],
        materials: &["Recycled", "Carbon", "Steel", "Leather"],
        sized: false,
    },
    Department {
        path: "Books > Cooking",
        code: "BOO",
        nouns: &["Cookbook", "Baking Guide", "Kitchen Handbook"],
        materials: &["Hardback", "Paperback"],
        sized: false,
    },
];

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Everyday",
    "Heritage",
    "Coastal",
    "Alpine",
    "Urban",
    "Nordic",
    "Vintage",
    "Essential",
    "Relaxed",
    "Tailored",
    "Rustic",
    "Modern",
    "Field",
    "Harbour",
    "Meadow",
];
const COLOURS: &[&str] = &[
    "Navy", "Ecru", "Olive", "Black", "Rust", "Sky", "Charcoal", "Sand",
];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];

/// `n` demo products, the same every time.
pub fn demo_catalog(n: usize) -> Vec<Record> {
    (0..n).map(|i| (i + 1, Ok(product(i)))).collect()
}

/// Writes `n` demo products to `path` as JSON Lines, the format `import products` reads.
pub fn write_jsonl(path: &std::path::Path, n: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for i in 0..n {
        serde_json::to_writer(&mut out, &product(i))?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{n} demo products written to {}", path.display());
    Ok(())
}

fn product(i: usize) -> ImportProduct {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0000 ^ i as u64);
    let dept = &DEPARTMENTS[i % DEPARTMENTS.len()];
    let adjective = ADJECTIVES[rng.usize(..ADJECTIVES.len())];
    let material = dept.materials[rng.usize(..dept.materials.len())];
    let noun = dept.nouns[rng.usize(..dept.nouns.len())];
    let title = format!("{adjective} {material} {noun}");
    let handle = format!("{}-{i}", emporium_catalog::slugify(&title));
    // Prices end in 99 or 00, between 5 and 250 EUR; USD and GBP follow at fixed rates.
    let base = 500 + rng.i64(0..24_500);
    let eur = if rng.bool() {
        base / 100 * 100 + 99
    } else {
        base / 100 * 100
    };
    let prices = |extra: i64| {
        let eur = eur + extra;
        vec![
            Money {
                amount: eur,
                currency: currency("EUR"),
            },
            Money {
                amount: eur * 108 / 100,
                currency: currency("USD"),
            },
            Money {
                amount: eur * 86 / 100,
                currency: currency("GBP"),
            },
        ]
    };
    let mut options = Vec::new();
    let mut variants = Vec::new();
    let weight = 100 + rng.i64(0..2_000);
    let sku_base = format!("{}-{i:06}", dept.code);
    if dept.sized {
        let first = rng.usize(..2);
        let sizes: Vec<&str> = SIZES[first..first + 2 + rng.usize(..3)].to_vec();
        let colours: Vec<&str> = (0..1 + rng.usize(..2))
            .map(|k| COLOURS[(i + k * 3) % COLOURS.len()])
            .collect();
        options.push(ProductOption {
            name: "Size".into(),
            values: sizes.iter().map(|s| (*s).to_owned()).collect(),
        });
        options.push(ProductOption {
            name: "Colour".into(),
            values: colours.iter().map(|s| (*s).to_owned()).collect(),
        });
        for colour in &colours {
            for size in &sizes {
                let mut chosen = BTreeMap::new();
                chosen.insert("Size".to_owned(), (*size).to_owned());
                chosen.insert("Colour".to_owned(), (*colour).to_owned());
                variants.push(ImportVariant {
                    sku: format!("{sku_base}-{}-{size}", &colour[..3].to_uppercase()),
                    title: None,
                    options: chosen,
                    weight_grams: weight,
                    prices: prices(if *size == "XL" { 200 } else { 0 }),
                    stock: Some(stock(&mut rng)),
                });
            }
        }
    } else if rng.usize(..3) == 0 {
        let colours = [COLOURS[i % COLOURS.len()], COLOURS[(i + 1) % COLOURS.len()]];
        options.push(ProductOption {
            name: "Colour".into(),
            values: colours.iter().map(|s| (*s).to_owned()).collect(),
        });
        for colour in colours {
            let mut chosen = BTreeMap::new();
            chosen.insert("Colour".to_owned(), colour.to_owned());
            variants.push(ImportVariant {
                sku: format!("{sku_base}-{}", &colour[..3].to_uppercase()),
                title: None,
                options: chosen,
                weight_grams: weight,
                prices: prices(0),
                stock: Some(stock(&mut rng)),
            });
        }
    } else {
        variants.push(ImportVariant {
            sku: sku_base,
            title: None,
            options: BTreeMap::new(),
            weight_grams: weight,
            prices: prices(0),
            stock: Some(stock(&mut rng)),
        });
    }
    let mut collections = Vec::new();
    if i.is_multiple_of(10) {
        collections.push("New arrivals".to_owned());
    }
    if i.is_multiple_of(17) {
        collections.push("Bestsellers".to_owned());
    }
    let mut attributes = serde_json::Map::new();
    attributes.insert(
        "material".into(),
        serde_json::Value::String(material.to_owned()),
    );
    ImportProduct {
        handle,
        description: format!(
            "The {} {} in {}: made to last, easy to care for, and designed for {} days.",
            adjective.to_lowercase(),
            noun.to_lowercase(),
            material.to_lowercase(),
            ["busy", "slow", "long", "bright", "rainy"][i % 5]
        ),
        title,
        status: Some(if i % 20 == 19 {
            ProductStatus::Draft
        } else {
            ProductStatus::Published
        }),
        options,
        variants,
        categories: vec![dept.path.to_owned()],
        collections,
        attributes,
    }
}

fn stock(rng: &mut fastrand::Rng) -> i64 {
    if rng.usize(..10) == 0 {
        0
    } else {
        rng.i64(1..60)
    }
}

fn currency(code: &str) -> emporium_kernel::Currency {
    code.parse()
        .unwrap_or_else(|_| unreachable!("constant currency codes are valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_deterministic_and_unique() {
        let a = demo_catalog(300);
        let b = demo_catalog(300);
        let handles = |r: &[Record]| {
            r.iter()
                .map(|(_, p)| p.as_ref().map(|p| p.handle.clone()).unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(handles(&a), handles(&b));
        let mut unique = handles(&a);
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 300);
        let mut skus: Vec<String> = a
            .iter()
            .flat_map(|(_, p)| {
                p.as_ref()
                    .map(|p| p.variants.iter().map(|v| v.sku.clone()).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        let total = skus.len();
        skus.sort();
        skus.dedup();
        assert_eq!(skus.len(), total, "duplicate SKUs");
    }
}
