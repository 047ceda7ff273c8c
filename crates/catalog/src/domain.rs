//! Catalog rules: what a valid handle, SKU, option set, variant and price list are. Pure
//! functions; each records every violation with a JSON Pointer so one answer lists them all.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use emporium_kernel::{Money, Violations};

use crate::api::ProductOption;

/// The most options a product may have.
pub const MAX_OPTIONS: usize = 5;
/// The most values one option may have.
pub const MAX_OPTION_VALUES: usize = 100;
/// The most variants a product may have.
pub const MAX_VARIANTS: usize = 250;
/// The most currencies a variant may be priced in.
pub const MAX_PRICES: usize = 30;
/// The largest amount a price may have, in minor units.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// The most free-form attributes a product may have.
pub const MAX_ATTRIBUTES: usize = 100;

/// Checks one-line text is between `min` and `max` characters (after trimming, which the caller
/// does) and holds no control character.
pub fn check_len(v: &mut Violations, pointer: &str, text: &str, min: usize, max: usize) {
    v.check(pointer, emporium_kernel::text::single_line(text));
    let n = text.chars().count();
    if n < min {
        if n == 0 {
            v.push(pointer, "required", "must not be empty");
        } else {
            v.push(pointer, "too_short", format!("at least {min} characters"));
        }
    } else if n > max {
        v.push(pointer, "too_long", format!("at most {max} characters"));
    }
}

/// Checks a description: at most `max` characters, no control character but line breaks and
/// tabs.
pub fn check_description(v: &mut Violations, pointer: &str, text: &str, max: usize) {
    v.check(pointer, emporium_kernel::text::multi_line(text));
    if text.chars().count() > max {
        v.push(pointer, "too_long", format!("at most {max} characters"));
    }
}

/// A handle (URL slug): lower-case ASCII letters and digits in words joined by single hyphens,
/// 1 to 200 characters.
pub fn check_handle(v: &mut Violations, pointer: &str, handle: &str) {
    if v.check(pointer, emporium_kernel::text::single_line(handle))
        .is_none()
    {
        return;
    }
    if handle.is_empty() {
        v.push(pointer, "required", "must not be empty");
        return;
    }
    let valid = handle.len() <= 200
        && handle.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !valid {
        v.push(
            pointer,
            "invalid_format",
            "lower-case letters and digits in words joined by single hyphens (e.g. `linen-shirt`), at most 200 characters",
        );
    }
}

/// A handle made from a title: `Linen Shirt (Blue)` → `linen-shirt-blue`. Never empty.
pub fn slugify(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    let mut gap = false;
    for c in title.chars().flat_map(char::to_lowercase) {
        let c = fold_accent(c);
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            out.push(c);
            gap = false;
        } else {
            gap = true;
        }
        if out.len() >= 180 {
            break;
        }
    }
    if out.is_empty() {
        out.push_str("item");
    }
    out
}

fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        'ß' => 's',
        other => other,
    }
}

/// A SKU: 1 to 100 characters of letters, digits and `.`, `_`, `-`, `/`, starting with a letter
/// or digit.
pub fn check_sku(v: &mut Violations, pointer: &str, sku: &str) {
    if v.check(pointer, emporium_kernel::text::single_line(sku))
        .is_none()
    {
        return;
    }
    if sku.is_empty() {
        v.push(pointer, "required", "must not be empty");
        return;
    }
    let mut bytes = sku.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
    if !first_ok || !rest_ok || sku.len() > 100 {
        v.push(
            pointer,
            "invalid_format",
            "letters, digits, `.`, `_`, `-` and `/`, starting with a letter or digit, at most 100 characters",
        );
    }
}

/// The option set of a product.
pub fn check_options(v: &mut Violations, options: &[ProductOption]) {
    if options.len() > MAX_OPTIONS {
        v.push(
            "/options",
            "too_many",
            format!("at most {MAX_OPTIONS} options"),
        );
    }
    let mut names = HashSet::new();
    for (i, option) in options.iter().enumerate() {
        let at = format!("/options/{i}");
        check_len(v, &format!("{at}/name"), &option.name, 1, 100);
        if !names.insert(option.name.to_lowercase()) {
            v.push(
                format!("{at}/name"),
                "duplicate",
                "option names must be unique",
            );
        }
        if option.values.is_empty() {
            v.push(
                format!("{at}/values"),
                "required",
                "an option needs at least one value",
            );
        } else if option.values.len() > MAX_OPTION_VALUES {
            v.push(
                format!("{at}/values"),
                "too_many",
                format!("at most {MAX_OPTION_VALUES} values"),
            );
        }
        let mut seen = HashSet::new();
        for (j, value) in option.values.iter().enumerate() {
            check_len(v, &format!("{at}/values/{j}"), value, 1, 100);
            if !seen.insert(value.as_str()) {
                v.push(
                    format!("{at}/values/{j}"),
                    "duplicate",
                    "option values must be unique",
                );
            }
        }
    }
}

/// A variant's own fields against the product's options.
pub fn check_variant(
    v: &mut Violations,
    at: &str,
    sku: &str,
    options: &BTreeMap<String, String>,
    weight_grams: i64,
    prices: &[Money],
    product_options: &[ProductOption],
) {
    check_sku(v, &format!("{at}/sku"), sku);
    for option in product_options {
        match options.get(&option.name) {
            None => v.push(
                format!("{at}/options"),
                "missing_option",
                format!("a value for option `{}` is required", option.name),
            ),
            Some(value) if !option.values.contains(value) => v.push(
                format!("{at}/options/{}", pointer_escape(&option.name)),
                "unknown_option_value",
                format!(
                    "`{value}` is not one of the values of option `{}`",
                    option.name
                ),
            ),
            Some(_) => {}
        }
    }
    for name in options.keys() {
        if !product_options.iter().any(|o| &o.name == name) {
            v.push(
                format!("{at}/options/{}", pointer_escape(name)),
                "unknown_option",
                format!("the product has no option `{name}`"),
            );
        }
    }
    if !(0..=100_000_000).contains(&weight_grams) {
        v.push(
            format!("{at}/weight_grams"),
            "out_of_range",
            "between 0 and 100000000",
        );
    }
    check_prices(v, &format!("{at}/prices"), prices);
}

/// A price list: one amount per currency, each between 0 and [`MAX_AMOUNT`].
pub fn check_prices(v: &mut Violations, at: &str, prices: &[Money]) {
    if prices.len() > MAX_PRICES {
        v.push(at, "too_many", format!("at most {MAX_PRICES} prices"));
    }
    let mut seen = HashSet::new();
    for (i, price) in prices.iter().enumerate() {
        if !(0..=MAX_AMOUNT).contains(&price.amount) {
            v.push(
                format!("{at}/{i}/amount"),
                "out_of_range",
                format!("between 0 and {MAX_AMOUNT} minor units"),
            );
        }
        if !seen.insert(price.currency) {
            v.push(
                format!("{at}/{i}/currency"),
                "duplicate",
                "one price per currency",
            );
        }
    }
}

/// No two variants of a product may have the same option values, and a product without options
/// has at most one variant.
pub fn check_variant_set<'a>(
    v: &mut Violations,
    product_options: &[ProductOption],
    variants: impl Iterator<Item = (String, &'a BTreeMap<String, String>)>,
) {
    let mut combos = BTreeSet::new();
    let mut count = 0;
    for (at, options) in variants {
        count += 1;
        if !product_options.is_empty() && !combos.insert(options.clone()) {
            v.push(
                format!("{at}/options"),
                "duplicate_variant",
                "another variant has the same option values",
            );
        }
    }
    if product_options.is_empty() && count > 1 {
        v.push(
            "/variants",
            "too_many",
            "a product without options has at most one variant",
        );
    }
    if count > MAX_VARIANTS {
        v.push(
            "/variants",
            "too_many",
            format!("at most {MAX_VARIANTS} variants"),
        );
    }
}

/// Free-form attributes: at most [`MAX_ATTRIBUTES`] keys of 1 to 100 characters.
pub fn check_attributes(
    v: &mut Violations,
    attributes: &serde_json::Map<String, serde_json::Value>,
) {
    if attributes.len() > MAX_ATTRIBUTES {
        v.push(
            "/attributes",
            "too_many",
            format!("at most {MAX_ATTRIBUTES} attributes"),
        );
    }
    for key in attributes.keys() {
        let n = key.chars().count();
        if n == 0 || n > 100 {
            v.push(
                format!("/attributes/{}", pointer_escape(key)),
                "invalid_key",
                "attribute names are 1 to 100 characters",
            );
        }
    }
}

/// A variant's title when none is given: its option values joined by ` / `, or `Default`.
pub fn default_variant_title(
    product_options: &[ProductOption],
    options: &BTreeMap<String, String>,
) -> String {
    let parts: Vec<&str> = product_options
        .iter()
        .filter_map(|o| options.get(&o.name).map(String::as_str))
        .collect();
    if parts.is_empty() {
        "Default".to_owned()
    } else {
        parts.join(" / ")
    }
}

/// Escapes a key for use in a JSON Pointer (RFC 6901).
pub fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(f: impl FnOnce(&mut Violations)) -> Vec<(String, String)> {
        let mut v = Violations::new();
        f(&mut v);
        v.finish()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.pointer, e.code))
            .collect()
    }

    #[test]
    fn handles_are_lower_case_words_joined_by_hyphens() {
        for good in ["a", "linen-shirt", "tee-2024"] {
            assert!(
                violations(|v| check_handle(v, "/handle", good)).is_empty(),
                "{good}"
            );
        }
        for bad in [
            "",
            "Linen",
            "linen--shirt",
            "-linen",
            "linen-",
            "lin en",
            "é",
        ] {
            assert!(
                !violations(|v| check_handle(v, "/handle", bad)).is_empty(),
                "{bad}"
            );
        }
    }

    #[test]
    fn slugify_makes_valid_handles() {
        assert_eq!(slugify("Linen Shirt (Blue)"), "linen-shirt-blue");
        assert_eq!(slugify("  Café crème  "), "cafe-creme");
        assert_eq!(slugify("!!!"), "item");
        for title in [
            "Linen Shirt (Blue)",
            "Ünïcode — ok",
            "x".repeat(500).as_str(),
        ] {
            assert!(violations(|v| check_handle(v, "/h", &slugify(title))).is_empty());
        }
    }

    #[test]
    fn variants_must_match_the_product_options() {
        let options = vec![ProductOption {
            name: "Size".into(),
            values: vec!["S".into(), "M".into()],
        }];
        let mut chosen = BTreeMap::new();
        chosen.insert("Size".to_owned(), "XL".to_owned());
        chosen.insert("Colour".to_owned(), "Red".to_owned());
        let found =
            violations(|v| check_variant(v, "/variants/0", "SKU-1", &chosen, -1, &[], &options));
        assert_eq!(
            found,
            vec![
                (
                    "/variants/0/options/Size".to_owned(),
                    "unknown_option_value".to_owned()
                ),
                (
                    "/variants/0/options/Colour".to_owned(),
                    "unknown_option".to_owned()
                ),
                (
                    "/variants/0/weight_grams".to_owned(),
                    "out_of_range".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn duplicate_option_combinations_are_refused() {
        let options = vec![ProductOption {
            name: "Size".into(),
            values: vec!["S".into()],
        }];
        let mut a = BTreeMap::new();
        a.insert("Size".to_owned(), "S".to_owned());
        let found = violations(|v| {
            check_variant_set(
                v,
                &options,
                [
                    ("/variants/0".to_owned(), &a),
                    ("/variants/1".to_owned(), &a),
                ]
                .into_iter(),
            )
        });
        assert_eq!(
            found,
            vec![(
                "/variants/1/options".to_owned(),
                "duplicate_variant".to_owned()
            )]
        );
    }

    #[test]
    fn skus_and_prices_are_checked() {
        assert!(violations(|v| check_sku(v, "/sku", "LS-01/blue_x.2")).is_empty());
        assert_eq!(violations(|v| check_sku(v, "/sku", "-bad")).len(), 1);
        let eur = "EUR".parse().expect("valid");
        let prices = [
            Money {
                amount: -1,
                currency: eur,
            },
            Money {
                amount: 5,
                currency: eur,
            },
        ];
        assert_eq!(
            violations(|v| check_prices(v, "/prices", &prices)),
            vec![
                ("/prices/0/amount".to_owned(), "out_of_range".to_owned()),
                ("/prices/1/currency".to_owned(), "duplicate".to_owned()),
            ]
        );
    }
}
