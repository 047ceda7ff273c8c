//! The characters a text field may hold. Every context checks client text through these, so a
//! NUL or a terminal escape never reaches storage, logs or another client's screen.

use crate::FieldError;

/// Checks one-line text (a name, a title, a code): no control character at all (C0, DEL, C1).
/// Fails with `invalid_format` at the pointer `""`, to be placed by `Violations::check`.
pub fn single_line(text: &str) -> Result<(), FieldError> {
    check(text, |_| false)
}

/// Checks text that may span lines (a description): line feed, carriage return and tab are
/// kept, every other control character is refused as in [`single_line`].
pub fn multi_line(text: &str) -> Result<(), FieldError> {
    check(text, |c| matches!(c, '\n' | '\r' | '\t'))
}

fn check(text: &str, allowed: impl Fn(char) -> bool) -> Result<(), FieldError> {
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        Err(FieldError::new(
            "",
            "invalid_format",
            "must not contain NUL or other control characters",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{multi_line, single_line};

    #[test]
    fn control_characters_are_refused_and_line_breaks_only_in_multi_line_text() {
        assert!(single_line("Linen shirt · Größe M").is_ok());
        for bad in [
            "a\u{0}b",
            "a\nb",
            "a\tb",
            "\u{1b}[31m",
            "a\u{7f}",
            "a\u{85}b",
        ] {
            assert_eq!(
                single_line(bad).unwrap_err().code,
                "invalid_format",
                "{bad:?}"
            );
        }
        assert!(multi_line("one\r\ntwo\tthree").is_ok());
        assert!(multi_line("one\u{0}").is_err());
        assert!(multi_line("\u{1b}[2J").is_err());
    }
}
