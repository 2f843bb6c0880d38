//! Password hashing with argon2id (OWASP minimum parameters, the crate's defaults).
//! Hashing is slow on purpose, so callers run it on a blocking thread.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 1024;

/// Why a new password is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    TooShort,
    TooLong,
}

pub fn check_new(password: &str) -> Result<(), Weakness> {
    let n = password.chars().count();
    if n < MIN_LEN {
        Err(Weakness::TooShort)
    } else if password.len() > MAX_LEN {
        Err(Weakness::TooLong)
    } else {
        Ok(())
    }
}

pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))
}

/// True when `password` matches the PHC string `stored`. A malformed hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a password nobody knows: verifying against it costs as much as a real check,
/// so an unknown email and a wrong password take the same time.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash(&crate::domain::secret::random_base62(32)).unwrap_or_default())
}

pub async fn hash_blocking(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash(&password)).await?
}

pub async fn verify_blocking(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match &stored {
        Some(stored) => verify(&password, stored),
        None => verify(&password, dummy_hash()),
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn new_passwords_need_eight_characters() {
        assert_eq!(check_new("short"), Err(Weakness::TooShort));
        assert_eq!(check_new("пароль12"), Ok(()));
        assert_eq!(check_new(&"x".repeat(2000)), Err(Weakness::TooLong));
    }
}
