//! Redirect URIs: validation at registration, and matching at authorization. A match is always
//! a registered URI, equal to the requested one, or a loopback IP URI differing only in port.
#![no_main]
use latchkey::domain::app::{AppInput, match_redirect_uri, split_lines};
use libfuzzer_sys::fuzz_target;
use url::{Host, Url};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (requested, registered) = text.split_once('\n').unwrap_or((text, ""));
    for confidential in [true, false] {
        let input = AppInput {
            name: "Fuzz".into(),
            homepage_url: "https://fuzz.example".into(),
            redirect_uris: split_lines(registered),
            scopes: vec!["profile".into()],
            confidential,
            ..Default::default()
        };
        let Ok(draft) = input.validate(3600) else {
            continue;
        };
        for uri in &draft.redirect_uris {
            assert!(!uri.contains('#'), "a fragment was accepted: {uri}");
        }
        if let Some(found) = match_redirect_uri(&draft.redirect_uris, Some(requested)) {
            assert!(draft.redirect_uris.iter().any(|r| r == found));
            if found != requested {
                let asked = Url::parse(requested).expect("a loopback match parses");
                assert_eq!(asked.scheme(), "http");
                assert!(
                    matches!(asked.host(), Some(Host::Ipv4(ip)) if ip.is_loopback())
                        || matches!(asked.host(), Some(Host::Ipv6(ip)) if ip.is_loopback())
                );
                assert!(!requested.contains('#'));
            }
        }
    }
});
