//! Authenticated encryption (AES-256-GCM) for the few values latchkey must be able to read
//! back: a refresh token's successor pair, a WakaTime API key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const NONCE_LEN: usize = 12;

fn key(bytes: &[u8; 32]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .ok()
        .map(LessSafeKey::new)
}

/// `nonce || ciphertext || tag`, with a fresh random nonce.
pub fn seal(key_bytes: &[u8; 32], plain: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut nonce);
    let mut buf = plain.to_vec();
    key(key_bytes)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend(buf);
    Some(out)
}

/// The plaintext, if `sealed` was sealed under this key and not altered.
pub fn open(key_bytes: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let mut buf = ciphertext.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = key(key_bytes)?
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .ok()?;
    Some(plain.to_vec())
}

/// A key derived from a secret value (256 random bits), domain-separated by `purpose`.
pub fn derive_key(purpose: &str, secret: &str) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(secret.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = derive_key("test", "secret");
        let sealed = seal(&k, b"hello").unwrap();
        assert_eq!(open(&k, &sealed).unwrap(), b"hello");
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&k, &bad).is_none());
        assert!(open(&derive_key("test", "other"), &sealed).is_none());
        assert_ne!(seal(&k, b"hello").unwrap(), sealed, "fresh nonce each time");
    }
}
