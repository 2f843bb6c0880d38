//! A DPoP proof as a client sends it in the `DPoP` header: whatever it holds, checking its
//! header, key and signature answers a refusal or the key's thumbprint, never a panic.
#![no_main]
use latchkey::oauth::dpop::signed_claims;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((thumbprint, _)) = signed_claims(text) {
        // A SHA-256 in base64url.
        assert_eq!(thumbprint.len(), 43);
    }
});
