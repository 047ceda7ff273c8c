//! Identity's value types; each keeps its invariant from construction on. No IO here.

use emporium_kernel::FieldError;
use emporium_kernel::typed_id;

typed_id!(
    /// A customer (shopper).
    CustomerId,
    "cus"
);
typed_id!(
    /// A back-office user.
    StaffUserId,
    "usr"
);
typed_id!(
    /// A machine client of the client-credentials grant.
    ApiClientId,
    "cli"
);

/// A normalised e-mail address: trimmed, lower-case, plausibly deliverable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises and checks an address; the error is an `invalid_format` field error.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |detail: &str| FieldError::new("", "invalid_format", detail);
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(FieldError::new("", "required", "must not be empty"));
        }
        if email.len() > 254 {
            return Err(FieldError::new("", "too_long", "at most 254 characters"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(bad("not an e-mail address"));
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err(bad("not an e-mail address"))
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy: 10 to 128 characters, not a well-known password, not the
/// e-mail address, not one repeated character.
pub struct Password(String);

const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "0123456789",
    "1q2w3e4r5t",
    "qwertyuiop",
    "password12",
    "password123",
    "password1234",
    "passwordpassword",
    "iloveyou12",
    "letmein123",
    "welcome123",
    "administrator",
    "qwerty12345",
    "abcdefghij",
    "changeme123",
    "1qaz2wsx3edc",
];

impl Password {
    /// Checks `raw` against the policy.
    pub fn parse(raw: &str, email: Option<&str>) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if chars == 0 {
            return Err(FieldError::new("", "required", "must not be empty"));
        }
        if chars < 10 {
            return Err(FieldError::new("", "too_short", "at least 10 characters"));
        }
        if chars > 128 {
            return Err(FieldError::new("", "too_long", "at most 128 characters"));
        }
        let lower = raw.to_lowercase();
        let mut distinct = raw.chars();
        let first = distinct.next();
        if distinct.all(|c| Some(c) == first) || COMMON_PASSWORDS.contains(&lower.as_str()) {
            return Err(FieldError::new(
                "",
                "too_common",
                "this password is too easy to guess",
            ));
        }
        if email.is_some_and(|e| e == lower || e.split('@').next() == Some(lower.as_str())) {
            return Err(FieldError::new(
                "",
                "matches_email",
                "the password must not be the e-mail address",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A person's or client's display name: 1 to 200 characters, trimmed, no control characters.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("", "required", "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(FieldError::new("", "too_long", "at most 200 characters"));
    }
    emporium_kernel::text::single_line(name)?;
    Ok(name.to_owned())
}

/// The scopes an API client may hold. Each names what it unlocks under `/v1/admin`.
pub const CLIENT_SCOPES: &[&str] = &[
    "customers:read",
    "events:read",
    "catalog:read",
    "catalog:write",
    "inventory:read",
    "inventory:write",
];

/// The scope of a customer's token.
pub const STORE_SCOPE: &str = "store";
/// The scope of a staff user's token.
pub const ADMIN_SCOPE: &str = "admin";

/// Parses a space-separated scope list into known client scopes, sorted and unique.
pub fn parse_client_scopes(scopes: &[String]) -> Result<Vec<String>, FieldError> {
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if !CLIENT_SCOPES.contains(&s.as_str()) {
            return Err(FieldError::new(
                "",
                "invalid_value",
                format!("unknown scope; known: {}", CLIENT_SCOPES.join(", ")),
            ));
        }
        out.push(s.clone());
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(FieldError::new("", "required", "at least one scope"));
    }
    Ok(out)
}

/// Most groups one customer may be in.
pub const MAX_GROUPS: usize = 20;

/// Checks customer group names (1 to 64 of `a-z`, `0-9`, `-`, `_`; at most [`MAX_GROUPS`]);
/// returns them sorted, each once, or every bad one with its pointer (`/groups/<i>`).
pub fn parse_groups(groups: &[String]) -> Result<Vec<String>, Vec<FieldError>> {
    let mut errors = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let pointer = format!("/groups/{i}");
        if g.is_empty() {
            errors.push(FieldError::new(pointer, "required", "must not be empty"));
        } else if g.chars().count() > 64 {
            errors.push(FieldError::new(
                pointer,
                "too_long",
                "at most 64 characters",
            ));
        } else if !g
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            errors.push(FieldError::new(
                pointer,
                "invalid_format",
                "lower-case letters, digits, '-' and '_' only",
            ));
        }
    }
    let mut out: Vec<String> = groups.to_vec();
    out.sort();
    out.dedup();
    if out.len() > MAX_GROUPS {
        errors.push(FieldError::new(
            "/groups",
            "too_long",
            format!("at most {MAX_GROUPS} groups"),
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a..b@example.com",
            "ada@exa_mple.com",
            "ada@-x.com",
            "a b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_password_policy_names_the_rule_broken() {
        let code = |p: &str| {
            Password::parse(p, Some("ada@example.com"))
                .err()
                .map(|e| e.code)
        };
        assert_eq!(code("short"), Some("too_short".into()));
        assert_eq!(code(&"x".repeat(129)), Some("too_long".into()));
        assert_eq!(code("aaaaaaaaaaaa"), Some("too_common".into()));
        assert_eq!(code("Password123"), Some("too_common".into()));
        assert_eq!(code("ada@example.com"), Some("matches_email".into()));
        assert_eq!(code("correct horse battery"), None);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Ada  ").unwrap(), "Ada");
        assert!(parse_name("   ").is_err());
        assert!(parse_name("a\u{7}b").is_err());
        assert!(parse_name(&"n".repeat(201)).is_err());
    }
}
