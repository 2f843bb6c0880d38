//! Random secrets and the latchkey token format.
//!
//! Every token or secret handed out is `lk_<kind>_` + 43 base62 characters (256 random bits) +
//! a 6-character checksum: CRC-32 (IEEE) of everything before it, in the same base62 alphabet,
//! left-padded with `0`. Secret scanners can recognise them offline, and a mistyped token is
//! refused without a database look-up. Only the SHA-256 hash is ever stored.

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 43 base62 characters carry 43 × log2(62) ≈ 256.03 bits.
const RANDOM_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The kinds of token latchkey issues, named by their prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    AccessToken,
    RefreshToken,
    AuthorizationCode,
    ClientSecret,
    PersonalAccessToken,
    RegistrationAccessToken,
    DeviceCode,
    /// One-time first-admin setup link.
    Setup,
}

impl TokenKind {
    pub const ALL: [TokenKind; 8] = [
        TokenKind::AccessToken,
        TokenKind::RefreshToken,
        TokenKind::AuthorizationCode,
        TokenKind::ClientSecret,
        TokenKind::PersonalAccessToken,
        TokenKind::RegistrationAccessToken,
        TokenKind::DeviceCode,
        TokenKind::Setup,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::AccessToken => "lk_at_",
            TokenKind::RefreshToken => "lk_rt_",
            TokenKind::AuthorizationCode => "lk_ac_",
            TokenKind::ClientSecret => "lk_cs_",
            TokenKind::PersonalAccessToken => "lk_pat_",
            TokenKind::RegistrationAccessToken => "lk_rat_",
            TokenKind::DeviceCode => "lk_dc_",
            TokenKind::Setup => "lk_setup_",
        }
    }
}

/// A freshly generated or presented secret. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for handing to its owner exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 hex digest: the only form that is stored.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `n` characters drawn uniformly from the base62 alphabet.
pub fn random_base62(n: usize) -> String {
    random_from(BASE62, n)
}

/// `n` characters drawn uniformly from `alphabet` (at most 256 ASCII characters), by rejection
/// sampling: bytes at or above the largest multiple of its length would bias the first ones.
pub fn random_from(alphabet: &[u8], n: usize) -> String {
    let len = alphabet.len();
    let limit = 256 - 256 % len;
    let mut rng = rand::rng();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill_bytes(&mut buf);
        for &b in &buf {
            if usize::from(b) < limit && out.len() < n {
                out.push(alphabet[usize::from(b) % len] as char);
            }
        }
    }
    out
}

/// An opaque random value (256 bits) for cookies and other unprefixed secrets.
pub fn random_opaque() -> Secret {
    Secret(random_base62(RANDOM_LEN))
}

fn checksum(body: &str) -> String {
    let mut n = CRC32.checksum(body.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    // CRC-32 < 62^6, so nothing is lost.
    String::from_utf8_lossy(&digits).into_owned()
}

/// A new token of `kind`.
pub fn generate(kind: TokenKind) -> Secret {
    let body = format!("{}{}", kind.prefix(), random_base62(RANDOM_LEN));
    let sum = checksum(&body);
    Secret(body + &sum)
}

/// Accept `presented` as a token of `kind` only if its shape and checksum are right.
/// This runs before any database look-up.
pub fn parse(kind: TokenKind, presented: &str) -> Option<Secret> {
    let rest = presented.strip_prefix(kind.prefix())?;
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (body, sum) = presented.split_at(presented.len() - CHECKSUM_LEN);
    if !constant_time_eq(checksum(body).as_bytes(), sum.as_bytes()) {
        return None;
    }
    Some(Secret(presented.to_owned()))
}

/// The kind of a well-formed token, if it is one.
pub fn classify(presented: &str) -> Option<(TokenKind, Secret)> {
    TokenKind::ALL
        .iter()
        .find_map(|&kind| parse(kind, presented).map(|s| (kind, s)))
}

pub fn sha256_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        for kind in TokenKind::ALL {
            let t = generate(kind);
            let s = t.expose();
            assert!(s.starts_with(kind.prefix()));
            assert_eq!(s.len(), kind.prefix().len() + 43 + 6);
            assert_eq!(parse(kind, s).as_ref(), Some(&t));
            assert_eq!(classify(s).map(|(k, _)| k), Some(kind));
        }
    }

    #[test]
    fn checksum_is_crc32_in_base62_left_padded() {
        // CRC-32/IEEE of "123456789" is the standard check value 0xCBF43926 = 3421780262,
        // which is "3jZRME" in base62 (digits 0-9, then A-Z, then a-z).
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(checksum("123456789"), "3jZRME");
        // A small CRC is left-padded with zeros.
        assert_eq!(checksum("").len(), 6);
        assert_eq!(checksum(""), "000000");
    }

    #[test]
    fn a_mistyped_token_is_refused_offline() {
        let t = generate(TokenKind::AccessToken);
        let s = t.expose();
        let mut chars: Vec<char> = s.chars().collect();
        let i = 10;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(parse(TokenKind::AccessToken, &typo).is_none());
        assert!(parse(TokenKind::RefreshToken, s).is_none());
        assert!(parse(TokenKind::AccessToken, &s[..s.len() - 1]).is_none());
        assert!(parse(TokenKind::AccessToken, "").is_none());
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = generate(TokenKind::ClientSecret);
        assert!(!format!("{t:?}").contains(&t.expose()[6..]));
    }

    #[test]
    fn random_values_differ_and_use_the_alphabet() {
        let a = random_base62(43);
        let b = random_base62(43);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
