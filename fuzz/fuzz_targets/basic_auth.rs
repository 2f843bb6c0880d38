//! `Authorization: Basic` credentials at the token endpoint.
#![no_main]
use http::{HeaderMap, HeaderValue, header};
use latchkey::oauth::params::basic_credentials;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    if let Ok(Some((id, _secret))) = basic_credentials(&headers) {
        let text = std::str::from_utf8(data).unwrap();
        assert!(text.len() >= 6 && text[..5].eq_ignore_ascii_case("basic"));
        assert!(id.len() <= text.len() * 3);
    }
});
