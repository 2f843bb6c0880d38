//! Users: the account record and the rules for its fields.

use serde::Serialize;

/// Trust levels set by admins (Hackatime's trust factor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// Not yet judged (the default).
    Blue,
    Red,
    Green,
    Yellow,
}

impl TrustLevel {
    pub const ALL: [TrustLevel; 4] = [
        TrustLevel::Blue,
        TrustLevel::Red,
        TrustLevel::Green,
        TrustLevel::Yellow,
    ];

    pub fn parse(s: &str) -> Option<TrustLevel> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s.trim().to_ascii_lowercase())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Blue => "blue",
            TrustLevel::Red => "red",
            TrustLevel::Green => "green",
            TrustLevel::Yellow => "yellow",
        }
    }

    /// The numeric value the resource API reports: blue 0, red 1, green 2, yellow 3.
    pub fn value(self) -> i64 {
        match self {
            TrustLevel::Blue => 0,
            TrustLevel::Red => 1,
            TrustLevel::Green => 2,
            TrustLevel::Yellow => 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    pub slack_id: String,
    pub github_username: String,
    pub timezone: String,
    pub admin: bool,
    pub disabled: bool,
    pub trust_level: TrustLevel,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Editable profile fields.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    pub slack_id: String,
    pub github_username: String,
    pub timezone: String,
}

/// A field of a form that failed validation, with the message key to show beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: &'static str,
}

impl FieldError {
    pub fn new(field: &'static str, message: &'static str) -> Self {
        FieldError { field, message }
    }
}

/// Normalise and check an email address: trimmed, one `@`, something on each side, no spaces.
/// Deliverability is not checked; the address is an identifier here.
pub fn parse_email(input: &str) -> Result<String, FieldError> {
    let email = input.trim();
    let valid = email.len() <= 254
        && email.split('@').count() == 2
        && email.split('@').all(|part| !part.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .rsplit('@')
            .next()
            .is_some_and(|domain| !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(email.to_owned())
    } else {
        Err(FieldError::new("email", "error-email-invalid"))
    }
}

/// Check a short free-text field: at most `max` characters, no control characters.
pub fn parse_text(field: &'static str, input: &str, max: usize) -> Result<String, FieldError> {
    let value = input.trim();
    if value.chars().count() > max {
        return Err(FieldError::new(field, "error-too-long"));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, "error-invalid-characters"));
    }
    Ok(value.to_owned())
}

/// IANA timezone names look like `UTC`, `Europe/Moscow`, `America/Argentina/Buenos_Aires`,
/// `Etc/GMT+3`. The full database arrives with the activity API; until then the shape is checked.
pub fn parse_timezone(input: &str) -> Result<String, FieldError> {
    let tz = input.trim();
    let tz = if tz.is_empty() { "UTC" } else { tz };
    let ok = tz.len() <= 64
        && tz.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        });
    if ok {
        Ok(tz.to_owned())
    } else {
        Err(FieldError::new("timezone", "error-timezone-invalid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            parse_email("  Ann@Example.com ").unwrap(),
            "Ann@Example.com"
        );
        for bad in [
            "",
            "ann",
            "@x",
            "ann@",
            "a@b@c",
            "a b@c.d",
            "ann@.example",
            "ann@example.",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timezones() {
        assert_eq!(parse_timezone("").unwrap(), "UTC");
        assert!(parse_timezone("Europe/Moscow").is_ok());
        assert!(parse_timezone("Etc/GMT+3").is_ok());
        assert!(parse_timezone("../etc/passwd").is_err());
        assert!(parse_timezone("Europe//Moscow").is_err());
    }

    #[test]
    fn trust_levels_have_hackatime_values() {
        let values: Vec<_> = TrustLevel::ALL
            .iter()
            .map(|l| (l.as_str(), l.value()))
            .collect();
        assert_eq!(
            values,
            [("blue", 0), ("red", 1), ("green", 2), ("yellow", 3)]
        );
        assert_eq!(TrustLevel::parse(" Green "), Some(TrustLevel::Green));
        assert_eq!(TrustLevel::parse("purple"), None);
    }
}
