//! Presented tokens and secrets: shape and checksum are checked before any look-up.
#![no_main]
use latchkey::domain::pkce;
use latchkey::domain::secret::{TokenKind, classify, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((kind, secret)) = classify(text) {
        assert_eq!(secret.expose(), text);
        assert!(text.starts_with(kind.prefix()));
    }
    for kind in TokenKind::ALL {
        if let Some(secret) = parse(kind, text) {
            assert_eq!(classify(text).map(|(k, _)| k), Some(kind));
            assert_eq!(secret.hash().len(), 64);
        }
    }
    let _ = pkce::well_formed(text);
    let _ = pkce::verify_s256(text, text);
});
