//! Heartbeat JSON as editor plugins send it: one object or a bulk array.
#![no_main]
use latchkey::domain::activity::HeartbeatInput;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const UA: &str = "wakatime/13.1.0 (Linux-6.1-x86_64-with-glibc2.36) Python3.11.7.final.0 vscode/1.80.0 vscode-wakatime/24.0.0";

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    for item in items {
        let Ok(input) = serde_json::from_value::<HeartbeatInput>(item) else {
            continue;
        };
        if let Ok(hb) = input.check(UA, "fuzzbox") {
            // Accepted heartbeats lie in 1970..9999 and hash and identify stably.
            assert!(hb.time_us >= 0 && hb.time_us < 253_402_300_800_000_000);
            assert_eq!(hb.dedup_hash(), hb.dedup_hash());
            assert_eq!(hb.id("u"), hb.id("u"));
        }
    }
});
