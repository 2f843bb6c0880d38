//! Token, revocation and introspection bodies: form or JSON, each parameter at most once.
#![no_main]
use latchkey::oauth::params::parse_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 3 {
        0 => "application/x-www-form-urlencoded",
        1 => "application/json",
        _ => "text/plain",
    };
    match parse_body(content_type, body) {
        Ok(values) => {
            assert!(content_type != "text/plain", "only forms and JSON are read");
            // A form that parsed has no repeated names: parsing it again as pairs agrees.
            if selector % 3 == 0 {
                assert_eq!(url::form_urlencoded::parse(body).count(), values.len());
            }
        }
        Err(e) => assert!(!e.description.is_empty()),
    }
});
