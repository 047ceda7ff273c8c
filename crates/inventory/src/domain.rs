//! Inventory's value rules: what a location code, a name, a reason and a quantity may be, how
//! reservation lines merge, and how expiry times are kept. Pure functions, no IO.

use std::collections::BTreeMap;

use emporium_kernel::ids::VariantId;
use emporium_kernel::{FieldError, Violations, typed_id};
use time::OffsetDateTime;

use crate::api::ReserveLine;

typed_id!(
    /// One entry of the stock ledger.
    LedgerEntryId,
    "sled"
);

/// The largest quantity, level or adjustment accepted; keeps every sum far from overflow.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// The most lines one reservation may have.
pub const MAX_RESERVE_LINES: usize = 500;

/// The longest a reservation may hold stock.
pub const MAX_RESERVATION_TTL: time::Duration = time::Duration::days(30);

/// Checks a location code: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
pub fn parse_location_code(raw: &str) -> Result<String, FieldError> {
    if raw.is_empty() {
        return Err(FieldError::new("", "required", "must not be empty"));
    }
    if raw.chars().count() > 64 {
        return Err(FieldError::new("", "too_long", "at most 64 characters"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if !raw.chars().all(allowed) {
        return Err(FieldError::new(
            "",
            "invalid_format",
            "only lower-case letters, digits, `-` and `_`",
        ));
    }
    Ok(raw.to_owned())
}

/// Checks a free text of 1 to 200 characters (a name, a reason); surrounding space is trimmed.
pub fn parse_text(raw: &str) -> Result<String, FieldError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(FieldError::new("", "required", "must not be empty"));
    }
    if text.chars().count() > 200 {
        return Err(FieldError::new("", "too_long", "at most 200 characters"));
    }
    emporium_kernel::text::single_line(text)?;
    Ok(text.to_owned())
}

/// Checks an absolute stock level: 0 to [`MAX_QUANTITY`].
pub fn parse_on_hand(on_hand: i64) -> Result<i64, FieldError> {
    if on_hand < 0 {
        Err(FieldError::new("", "too_small", "must not be negative"))
    } else if on_hand > MAX_QUANTITY {
        Err(FieldError::new(
            "",
            "too_large",
            format!("at most {MAX_QUANTITY}"),
        ))
    } else {
        Ok(on_hand)
    }
}

/// Checks an adjustment: non-zero, at most [`MAX_QUANTITY`] either way.
pub fn parse_delta(delta: i64) -> Result<i64, FieldError> {
    if delta == 0 {
        Err(FieldError::new("", "invalid_value", "must not be zero"))
    } else if delta.unsigned_abs() > MAX_QUANTITY.unsigned_abs() {
        Err(FieldError::new(
            "",
            "too_large",
            format!("at most {MAX_QUANTITY} either way"),
        ))
    } else {
        Ok(delta)
    }
}

/// Checks the lines of a reservation request and merges lines of the same variant.
///
/// Every bad quantity is reported at `/lines/{index}/quantity`. The result is keyed by variant,
/// so iterating it gives the lock order (variant id order).
pub fn merge_reserve_lines(lines: &[ReserveLine], v: &mut Violations) -> BTreeMap<VariantId, i64> {
    if lines.is_empty() {
        v.push("/lines", "required", "at least one line");
    }
    if lines.len() > MAX_RESERVE_LINES {
        v.push(
            "/lines",
            "too_long",
            format!("at most {MAX_RESERVE_LINES} lines"),
        );
    }
    let mut merged: BTreeMap<VariantId, i64> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let pointer = format!("/lines/{i}/quantity");
        if line.quantity < 1 {
            v.push(pointer, "too_small", "at least 1");
            continue;
        }
        let total = merged.entry(line.variant_id).or_insert(0);
        *total = total.saturating_add(line.quantity);
        if *total > MAX_QUANTITY {
            v.push(
                pointer,
                "too_large",
                format!("at most {MAX_QUANTITY} units of one variant"),
            );
        }
    }
    merged
}

/// Checks a reservation's time to live: more than zero, at most [`MAX_RESERVATION_TTL`].
pub fn parse_ttl(ttl: time::Duration) -> Result<time::Duration, FieldError> {
    if ttl <= time::Duration::ZERO {
        Err(FieldError::new("", "too_small", "must be positive"))
    } else if ttl > MAX_RESERVATION_TTL {
        Err(FieldError::new("", "too_large", "at most 30 days"))
    } else {
        Ok(ttl)
    }
}

/// `at` in UTC without its fraction of a second.
pub fn floor_to_second(at: OffsetDateTime) -> OffsetDateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.replace_nanosecond(0).unwrap_or(utc)
}

/// When a reservation made at `now` for `ttl` expires: rounded up to a whole second, so it never
/// holds for less than asked.
///
/// Whole seconds keep the stored RFC 3339 text of a fixed shape (`…:SSZ`) on SQLite, so comparing
/// it as text with another whole-second instant is comparing times. A reservation is expired at
/// `now` when `expires_at <= floor_to_second(now)`, which is exact for whole-second expiries.
pub fn expiry_of(now: OffsetDateTime, ttl: time::Duration) -> OffsetDateTime {
    let end = now.to_offset(time::UtcOffset::UTC).saturating_add(ttl);
    let floor = floor_to_second(end);
    if floor == end {
        end
    } else {
        floor.saturating_add(time::Duration::SECOND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    #[test]
    fn location_codes_are_short_lower_case_words() {
        assert_eq!(parse_location_code("main-wh_2").as_deref(), Ok("main-wh_2"));
        let code = |raw: &str| parse_location_code(raw).unwrap_err().code;
        assert_eq!(code(""), "required");
        assert_eq!(code("Main"), "invalid_format");
        assert_eq!(code("a b"), "invalid_format");
        assert_eq!(code(&"a".repeat(65)), "too_long");
        assert!(parse_location_code(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(parse_text("  stocktake ").as_deref(), Ok("stocktake"));
        assert_eq!(parse_text("   ").unwrap_err().code, "required");
        assert_eq!(parse_text(&"é".repeat(201)).unwrap_err().code, "too_long");
        assert!(parse_text(&"é".repeat(200)).is_ok());
        assert_eq!(parse_text("a\u{0}b").unwrap_err().code, "invalid_format");
    }

    #[test]
    fn levels_and_deltas_are_bounded() {
        assert_eq!(parse_on_hand(0), Ok(0));
        assert_eq!(parse_on_hand(-1).unwrap_err().code, "too_small");
        assert_eq!(
            parse_on_hand(MAX_QUANTITY + 1).unwrap_err().code,
            "too_large"
        );
        assert_eq!(parse_delta(-3), Ok(-3));
        assert_eq!(parse_delta(0).unwrap_err().code, "invalid_value");
        assert_eq!(parse_delta(i64::MIN).unwrap_err().code, "too_large");
    }

    #[test]
    fn lines_of_one_variant_merge_and_bad_quantities_point_at_their_line() {
        let a = VariantId::generate();
        let b = VariantId::generate();
        let line = |variant_id, quantity| ReserveLine {
            variant_id,
            quantity,
        };
        let mut v = Violations::new();
        let merged = merge_reserve_lines(&[line(a, 2), line(b, 1), line(a, 3)], &mut v);
        assert!(v.finish().is_ok());
        assert_eq!(merged.get(&a), Some(&5));
        assert_eq!(merged.get(&b), Some(&1));

        let mut v = Violations::new();
        merge_reserve_lines(&[line(a, 1), line(b, 0), line(a, -4)], &mut v);
        let errors = v.finish().unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/lines/1/quantity", "/lines/2/quantity"]);

        let mut v = Violations::new();
        merge_reserve_lines(&[], &mut v);
        assert_eq!(v.finish().unwrap_err()[0].pointer, "/lines");
    }

    #[test]
    fn expiry_rounds_up_to_a_whole_second_and_never_shortens_the_hold() {
        let now = at("2026-11-24T10:00:00.250Z");
        let ttl = time::Duration::minutes(15);
        let expires = expiry_of(now, ttl);
        assert_eq!(expires, at("2026-11-24T10:15:01Z"));
        assert!(expires >= now + ttl);
        assert_eq!(
            expiry_of(at("2026-11-24T10:00:00Z"), ttl),
            at("2026-11-24T10:15:00Z")
        );
        assert_eq!(
            floor_to_second(at("2026-11-24T10:00:59.999Z")),
            at("2026-11-24T10:00:59Z")
        );
    }

    #[test]
    fn ttls_must_be_positive_and_bounded() {
        assert_eq!(
            parse_ttl(time::Duration::ZERO).unwrap_err().code,
            "too_small"
        );
        assert_eq!(
            parse_ttl(time::Duration::days(31)).unwrap_err().code,
            "too_large"
        );
        assert!(parse_ttl(time::Duration::minutes(15)).is_ok());
    }
}
