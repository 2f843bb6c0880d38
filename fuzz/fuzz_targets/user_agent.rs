//! WakaTime user agents: editor and operating system, never a panic, never longer than the input.
#![no_main]
use latchkey::domain::activity::parse_user_agent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ua) = std::str::from_utf8(data) else {
        return;
    };
    let (editor, os) = parse_user_agent(ua);
    assert!(editor.len() <= ua.len().max(32));
    assert!(os.len() <= ua.len().max(8));
});
