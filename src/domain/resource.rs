//! Resource servers (RFC 8707): what makes a valid identifier and name.

use url::Url;

use super::user::FieldError;

/// A resource server's identifier (an absolute URI without a fragment, RFC 8707 §2, at most
/// 500 characters) and name (1–100 characters), trimmed; or what is wrong.
pub fn validate(identifier: &str, name: &str) -> Result<(String, String), FieldError> {
    let identifier = identifier.trim();
    let name = name.trim();
    let uri_ok = identifier.len() <= 500
        && !identifier.contains('#')
        && Url::parse(identifier).is_ok_and(|u| !u.cannot_be_a_base() || u.scheme() == "urn");
    if !uri_ok {
        return Err(FieldError::new("identifier", "error-resource-identifier"));
    }
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(FieldError::new("name", "error-resource-name"));
    }
    Ok((identifier.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(validate("https://api.example.com", "API").is_ok());
        assert!(validate("urn:example:calendar", "Calendar").is_ok());
        for bad in [
            "",
            "api.example.com",
            "/relative",
            "https://api.example.com/#frag",
        ] {
            assert!(validate(bad, "API").is_err(), "{bad}");
        }
        assert!(validate("https://api.example.com", " ").is_err());
    }
}
