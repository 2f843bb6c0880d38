//! Scopes: the known set, parsing, and plain-language description keys.

use std::fmt;

/// Every scope latchkey knows. Apps may be allowed a subset; tokens carry a subset of that.
pub const KNOWN: [&str; 6] = [
    "profile",
    "read",
    "openid",
    "email",
    "project:read",
    "offline_access",
];

/// Scopes a personal access token may carry: `apps` (manage the user's own apps) plus the
/// resource scopes.
pub const PAT_SCOPES: [&str; 4] = ["apps", "profile", "read", "project:read"];

/// The scope used when a request names none.
pub const DEFAULT: &str = "profile";

/// A set of scopes, kept sorted in the order of [`KNOWN`] (then `apps`), without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScope(pub String);

fn rank(scope: &str) -> usize {
    KNOWN
        .iter()
        .chain(PAT_SCOPES.iter())
        .position(|s| *s == scope)
        .unwrap_or(usize::MAX)
}

impl Scopes {
    /// Parse scope names from any iterator, accepting only names in `allowed`.
    pub fn from_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
        allowed: &[&str],
    ) -> Result<Scopes, UnknownScope> {
        let mut out: Vec<String> = Vec::new();
        for name in names {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if !allowed.contains(&name) {
                return Err(UnknownScope(name.chars().take(64).collect()));
            }
            if !out.iter().any(|s| s == name) {
                out.push(name.to_owned());
            }
        }
        out.sort_by_key(|s| rank(s));
        Ok(Scopes(out))
    }

    /// Parse a space-separated scope string (RFC 6749 §3.3).
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Scopes, UnknownScope> {
        Scopes::from_names(text.split([' ', '\t', '\n', '\r', ',']), allowed)
    }

    /// Read a stored, space-separated list without checking it against a set.
    pub fn from_stored(text: &str) -> Scopes {
        Scopes(text.split_whitespace().map(str::to_owned).collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset_of(&self, other: &Scopes) -> bool {
        self.0.iter().all(|s| other.contains(s))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// The message key describing a scope to a person (consent page, forms).
pub fn description_key(scope: &str) -> &'static str {
    match scope {
        "profile" => "scope-profile",
        "read" => "scope-read",
        "openid" => "scope-openid",
        "email" => "scope-email",
        "project:read" => "scope-project-read",
        "offline_access" => "scope-offline-access",
        "apps" => "scope-apps",
        _ => "scope-unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_orders_dedups_and_refuses_unknown_names() {
        let s = Scopes::parse("read  profile read openid", &KNOWN).unwrap();
        assert_eq!(s.to_string(), "profile read openid");
        assert_eq!(
            Scopes::parse("profile admin", &KNOWN),
            Err(UnknownScope("admin".into()))
        );
        assert!(Scopes::parse("", &KNOWN).unwrap().is_empty());
        assert_eq!(
            Scopes::parse("apps,read", &PAT_SCOPES).unwrap().to_string(),
            "read apps"
        );
        assert!(Scopes::parse("openid", &PAT_SCOPES).is_err());
    }

    #[test]
    fn subsets() {
        let all = Scopes::parse("profile read email", &KNOWN).unwrap();
        assert!(Scopes::parse("read", &KNOWN).unwrap().is_subset_of(&all));
        assert!(!Scopes::parse("openid", &KNOWN).unwrap().is_subset_of(&all));
    }
}
