//! The New Application form: name, homepage, the redirect-URI textarea (one per line), the
//! scopes, the flags, the post-logout redirect URIs, the back-channel logout URL and the webhook URL, separated
//! by NUL bytes in the input.
#![no_main]
use latchkey::domain::app::{AppInput, split_lines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = text.split('\0');
    let mut next = || fields.next().unwrap_or("").to_owned();
    let (name, homepage, uris, scopes, flags) = (next(), next(), next(), next(), next());
    let (post_logout, backchannel, webhook) = (next(), next(), next());
    let input = AppInput {
        name,
        homepage_url: homepage,
        redirect_uris: split_lines(&uris),
        scopes: scopes
            .split([' ', ',', '\n'])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        confidential: flags.contains('c'),
        access_token_ttl: flags.strip_prefix('t').and_then(|t| t.parse().ok()),
        issue_refresh: Some(flags.contains('r')),
        device_flow: Some(flags.contains('d')),
        require_par: Some(flags.contains('p')),
        dpop_bound: Some(flags.contains('b')),
        post_logout_redirect_uris: split_lines(&post_logout),
        backchannel_logout_uri: backchannel,
        webhook_url: webhook,
    };
    match input.validate(3600) {
        Ok(draft) => {
            assert!((1..=10).contains(&draft.redirect_uris.len()));
            assert!(!draft.name.trim().is_empty());
            assert!(draft.access_token_ttl > 0);
            assert!(draft.post_logout_redirect_uris.len() <= 10);
            assert!(!draft.backchannel_logout_uri.contains('#'));
            assert!(!draft.webhook_url.contains('#'));
        }
        Err(errors) => assert!(!errors.is_empty()),
    }
});
