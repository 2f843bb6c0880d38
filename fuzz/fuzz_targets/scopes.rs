//! Scope strings (space- or comma-separated): what parses is known and reads back the same.
#![no_main]
use latchkey::domain::scope::{KNOWN, Scopes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scopes) = Scopes::parse(text, &KNOWN) {
        assert!(scopes.iter().all(|s| KNOWN.contains(&s)));
        let again = Scopes::parse(&scopes.to_string(), &KNOWN).expect("its own text parses");
        assert_eq!(again, scopes);
        assert!(scopes.is_subset_of(&Scopes::from_stored(&scopes.to_string())));
    }
});
