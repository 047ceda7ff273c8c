//! Amounts as staff read and type them: minor units shown with the currency's decimals, and
//! decimal input turned back into minor units without floating point.

/// Digits after the decimal point in `currency` (ISO 4217).
pub(crate) fn decimals(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `1999`, `EUR` → `19.99 EUR`.
pub(crate) fn show(amount: i64, currency: &str) -> String {
    format!("{} {currency}", plain(amount, currency))
}

/// `1999`, `EUR` → `19.99` (what an input field is refilled with).
pub(crate) fn plain(amount: i64, currency: &str) -> String {
    let places = decimals(currency);
    if places == 0 {
        return amount.to_string();
    }
    let scale = 10i64.pow(places);
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    let scale = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = places as usize
    )
}

/// `19.99`, `EUR` → `1999`; `None` for anything that is not a plain decimal with at most the
/// currency's decimals.
pub(crate) fn parse(text: &str, currency: &str) -> Option<i64> {
    let text = text.trim();
    let places = decimals(currency) as usize;
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > places
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let padded = format!("{fraction:0<places$}");
    let fraction: i64 = if padded.is_empty() {
        0
    } else {
        padded.parse().ok()?
    };
    let scale = 10i64.pow(places as u32);
    whole
        .checked_mul(scale)?
        .checked_add(fraction)
        .map(|v| v * sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_through_their_text() {
        for (amount, currency, text) in [
            (1999, "EUR", "19.99"),
            (5, "USD", "0.05"),
            (-250, "GBP", "-2.50"),
            (1200, "JPY", "1200"),
            (1500, "KWD", "1.500"),
        ] {
            assert_eq!(plain(amount, currency), text);
            assert_eq!(parse(text, currency), Some(amount));
        }
    }

    #[test]
    fn bad_amounts_are_refused() {
        for text in ["", "1.999", "abc", "1,5", "1.2.3", "."] {
            assert_eq!(parse(text, "EUR"), None, "{text}");
        }
        assert_eq!(parse("12", "EUR"), Some(1200));
        assert_eq!(parse("12.5", "EUR"), Some(1250));
    }
}
