//! Coding activity: WakaTime heartbeats, the user agents that send them, and the rules for
//! coding time. No I/O.
//!
//! Coding time (SPEC §8): sort a user's heartbeats by time; each gap to the next heartbeat
//! counts `min(gap, 120 s)`; the first heartbeat of a range counts 0. Equivalently, each
//! heartbeat carries `gap = min(next - this, 120 s)` (0 for the newest), and a range's total is
//! the sum of its heartbeats' gaps minus the gap of its last heartbeat (whose next one lies
//! outside the range).

use serde::Deserialize;
use serde_json::Value;

use super::secret::sha256_hex;

/// The heartbeat timeout: a longer gap is a break, counted as two minutes.
pub const TIMEOUT_US: i64 = 120_000_000;

/// Rollup buckets are 15 minutes wide: every timezone's midnight is on such a boundary.
pub const BUCKET_SECS: i64 = 900;

/// Latest accepted time: the last second of the year 9999.
const MAX_TIME_SECS: f64 = 253_402_300_799.0;

pub fn bucket_of(time_us: i64) -> i64 {
    (time_us / 1_000_000).div_euclid(BUCKET_SECS) * BUCKET_SECS
}

pub fn gap(this_us: i64, next_us: Option<i64>) -> i64 {
    next_us.map_or(0, |next| (next - this_us).clamp(0, TIMEOUT_US))
}

/// Editor and operating system from a WakaTime user agent, e.g.
/// `wakatime/13.1.0 (Linux-6.1-x86_64-with-glibc2.36) Python3.11.7.final.0 vscode/1.80.0 vscode-wakatime/24.0.0`.
pub fn parse_user_agent(ua: &str) -> (String, String) {
    let os = ua
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside.split(['-', ' ', ';']).next().unwrap_or("").trim())
        .map(|os| match os.to_ascii_lowercase().as_str() {
            "linux" => "Linux".to_owned(),
            "darwin" | "macos" | "mac" => "Mac".to_owned(),
            "windows" | "win32" | "cygwin" => "Windows".to_owned(),
            "" => String::new(),
            _ => os.to_owned(),
        })
        .unwrap_or_default();

    // The editor is the token before the plugin (`name-wakatime/version`), or the plugin's name.
    let after = ua.split_once(')').map(|(_, rest)| rest).unwrap_or(ua);
    // Skip the runtime the CLI reports (`Python3.11.7.final.0`, `go1.21.4`).
    let runtime = |t: &&str| {
        t.starts_with("Python")
            || (t.starts_with("go") && t[2..].starts_with(|c: char| c.is_ascii_digit()))
    };
    let tokens: Vec<&str> = after.split_whitespace().filter(|t| !runtime(t)).collect();
    let plugin = tokens
        .iter()
        .rposition(|t| t.to_ascii_lowercase().contains("-wakatime/"));
    let raw = match plugin {
        Some(i) if i > 0 => tokens[i - 1].split('/').next().unwrap_or(""),
        Some(i) => tokens[i].split("-wakatime").next().unwrap_or(""),
        None => tokens
            .first()
            .and_then(|t| t.split('/').next())
            .unwrap_or(""),
    };
    (editor_name(raw), os)
}

/// Editors as people know them; anything unknown as it came.
pub fn editor_name(raw: &str) -> String {
    let known = match raw.to_ascii_lowercase().as_str() {
        "vscode" | "code" | "visual studio code" => "VS Code",
        "vscodium" => "VSCodium",
        "neovim" | "nvim" => "Neovim",
        "vim" => "Vim",
        "emacs" => "Emacs",
        "zed" => "Zed",
        "cursor" => "Cursor",
        "sublime_text" | "sublime" | "sublimetext" | "sublime text" => "Sublime Text",
        "intellij" | "intellijidea" | "idea" | "intellij idea" => "IntelliJ IDEA",
        "pycharm" => "PyCharm",
        "webstorm" => "WebStorm",
        "goland" => "GoLand",
        "clion" => "CLion",
        "rubymine" => "RubyMine",
        "phpstorm" => "PhpStorm",
        "rider" => "Rider",
        "datagrip" => "DataGrip",
        "rustrover" => "RustRover",
        "androidstudio" | "android studio" => "Android Studio",
        "xcode" => "Xcode",
        "atom" => "Atom",
        "helix" => "Helix",
        _ => return raw.to_owned(),
    };
    known.to_owned()
}

/// One heartbeat as WakaTime clients send it.
#[derive(Debug, Clone, Deserialize)]
pub struct HeartbeatInput {
    pub time: Option<Value>,
    pub entity: Option<Value>,
    #[serde(rename = "type")]
    pub kind: Option<Value>,
    pub category: Option<Value>,
    pub project: Option<Value>,
    pub branch: Option<Value>,
    pub language: Option<Value>,
    pub is_write: Option<Value>,
    pub lines: Option<Value>,
    pub lineno: Option<Value>,
    pub cursorpos: Option<Value>,
    pub dependencies: Option<Value>,
    pub user_agent: Option<Value>,
}

/// A checked heartbeat, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub time_us: i64,
    pub entity: String,
    pub kind: String,
    pub category: String,
    pub project: String,
    pub branch: String,
    pub language: String,
    pub is_write: bool,
    pub lines: Option<i64>,
    pub lineno: Option<i64>,
    pub cursorpos: Option<i64>,
    pub dependencies: String,
    pub user_agent: String,
    pub editor: String,
    pub operating_system: String,
    pub machine: String,
}

fn text(v: &Option<Value>, field: &str, max: usize) -> Result<String, String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(s.trim().to_owned()),
        Some(Value::String(_)) => Err(format!("{field} is too long")),
        Some(_) => Err(format!("{field} must be a string")),
    }
}

fn int(v: &Option<Value>, field: &str) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| format!("{field} must be an integer")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{field} must be an integer")),
        Some(_) => Err(format!("{field} must be an integer")),
    }
}

impl HeartbeatInput {
    /// Check and normalise. `user_agent` and `machine` come from the request headers unless the
    /// heartbeat names its own user agent.
    pub fn check(&self, header_user_agent: &str, machine: &str) -> Result<Heartbeat, String> {
        let time = match &self.time {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .ok_or("time is required: epoch seconds")?;
        if !time.is_finite() || !(0.0..=MAX_TIME_SECS).contains(&time) {
            return Err("time must be between 1970 and 9999".into());
        }
        let entity = text(&self.entity, "entity", 4096)?;
        if entity.is_empty() {
            return Err("entity is required".into());
        }
        let category = text(&self.category, "category", 64)?;
        let kind = text(&self.kind, "type", 32)?;
        let is_write = match &self.is_write {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
            Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
            Some(_) => return Err("is_write must be a boolean".into()),
        };
        let dependencies = match &self.dependencies {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|d| {
                    d.as_str()
                        .map(str::to_owned)
                        .ok_or("dependencies must be strings")
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            Some(_) => return Err("dependencies must be a list of strings".into()),
        };
        if dependencies.len() > 8192 {
            return Err("dependencies is too long".into());
        }
        let own_ua = text(&self.user_agent, "user_agent", 1024)?;
        let user_agent = if own_ua.is_empty() {
            header_user_agent.chars().take(1024).collect()
        } else {
            own_ua
        };
        let (editor, operating_system) = parse_user_agent(&user_agent);
        Ok(Heartbeat {
            time_us: (time * 1_000_000.0).round() as i64,
            entity,
            kind: if kind.is_empty() { "file".into() } else { kind },
            category: if category.is_empty() {
                "coding".into()
            } else {
                category
            },
            project: text(&self.project, "project", 512)?,
            branch: text(&self.branch, "branch", 512)?,
            language: text(&self.language, "language", 128)?,
            is_write,
            lines: int(&self.lines, "lines")?,
            lineno: int(&self.lineno, "lineno")?,
            cursorpos: int(&self.cursorpos, "cursorpos")?,
            dependencies,
            user_agent,
            editor,
            operating_system,
            machine: machine.chars().take(256).collect(),
        })
    }
}

impl Heartbeat {
    /// Identical heartbeats are stored once: this hash names what makes one heartbeat.
    pub fn dedup_hash(&self) -> String {
        let key = serde_json::json!([
            self.time_us,
            self.entity,
            self.kind,
            self.category,
            self.project,
            self.branch,
            self.language,
            self.is_write,
            self.lines,
            self.lineno,
            self.cursorpos,
            self.machine
        ]);
        sha256_hex(key.to_string().as_bytes())
    }

    /// A stable id: the same heartbeat sent twice gets the same id. Laid out like a UUIDv7
    /// (version 8, since the rest is a hash, not random): the heartbeat's time in milliseconds,
    /// then 76 bits of the hash of its user and content. Heartbeats arrive roughly in time
    /// order, so the primary-key index grows at its end; with a hash in front every insert
    /// touched a random page of an index as large as the table's keys, and the writer's page
    /// cache filled with them.
    pub fn id(&self, user_id: &str) -> String {
        let h = sha256_hex(format!("{user_id}:{}", self.dedup_hash()).as_bytes());
        // Checked input lies between 1970 and 9999, under 2^48 milliseconds.
        let ms = u64::try_from(self.time_us.div_euclid(1000)).unwrap_or(0) & 0xffff_ffff_ffff;
        format!(
            "{:08x}-{:04x}-8{}-{}-{}",
            ms >> 16,
            ms & 0xffff,
            &h[0..3],
            &h[3..7],
            &h[7..19]
        )
    }
}

/// Coding time of a sorted run of heartbeat times, by the definition (for tests and checks).
pub fn coding_time_us(sorted_times: &[i64]) -> i64 {
    sorted_times.windows(2).map(|w| gap(w[0], Some(w[1]))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents() {
        let ua = "wakatime/13.1.0 (Linux-6.1-x86_64-with-glibc2.36) Python3.11.7.final.0 vscode/1.80.0 vscode-wakatime/24.0.0";
        assert_eq!(
            parse_user_agent(ua),
            ("VS Code".to_owned(), "Linux".to_owned())
        );
        let ua = "wakatime/v1.93.0 (darwin-23.1.0-arm64) go1.21.4 neovim/0.9.4 vim-wakatime/11.1.1";
        assert_eq!(
            parse_user_agent(ua),
            ("Neovim".to_owned(), "Mac".to_owned())
        );
        let ua = "wakatime/v1.90.0 (windows-10.0.22621-amd64) go1.21.1 PyCharm/2023.2.3 PyCharm-wakatime/14.1.4";
        assert_eq!(
            parse_user_agent(ua),
            ("PyCharm".to_owned(), "Windows".to_owned())
        );
        let ua = "wakatime/v1.0 (linux-6-x86_64) go1.22 emacs-wakatime/1.0.2";
        assert_eq!(parse_user_agent(ua).0, "Emacs");
        let ua = "wakatime/v1.0 (freebsd-14) go1.22 Kakoune/2024 kak-wakatime/0.1";
        assert_eq!(
            parse_user_agent(ua),
            ("Kakoune".to_owned(), "freebsd".to_owned())
        );
        assert_eq!(parse_user_agent(""), (String::new(), String::new()));
    }

    #[test]
    fn coding_time_caps_each_gap_and_counts_the_first_heartbeat_as_zero() {
        let s = 1_000_000;
        assert_eq!(coding_time_us(&[0]), 0);
        assert_eq!(coding_time_us(&[0, 30 * s, 60 * s]), 60 * s);
        assert_eq!(coding_time_us(&[0, 30 * s, 1000 * s]), 150 * s);
        assert_eq!(coding_time_us(&[]), 0);
        assert_eq!(gap(5, None), 0);
        assert_eq!(bucket_of(1_700_000_123 * s), 1_700_000_100);
    }

    #[test]
    fn heartbeats_are_checked() {
        let input: HeartbeatInput = serde_json::from_value(serde_json::json!({
            "time": 1700000000.123456, "entity": "src/main.rs", "type": "file", "category": null,
            "project": "latchkey", "language": "Rust", "is_write": true, "lines": 120, "dependencies": ["serde", "tokio"]
        }))
        .unwrap();
        let hb = input
            .check(
                "wakatime/13.1.0 (Linux-6.1) Python3.11 vscode/1.80.0 vscode-wakatime/24.0.0",
                "box",
            )
            .unwrap();
        assert_eq!(hb.time_us, 1_700_000_000_123_456);
        assert_eq!(hb.category, "coding");
        assert_eq!(hb.dependencies, "serde,tokio");
        assert_eq!(hb.editor, "VS Code");
        assert_eq!(hb.machine, "box");
        assert_eq!(hb.id("u"), hb.clone().id("u"));
        assert_ne!(hb.id("u"), hb.id("v"));
        assert!(hb.id("u").starts_with("018bcfe5-687b-8"), "{}", hb.id("u"));
        // Later heartbeats get greater ids, whatever their content.
        let later = Heartbeat {
            time_us: hb.time_us + 1_000,
            entity: "a".into(),
            ..hb.clone()
        };
        assert!(later.id("u") > hb.id("u"));
        assert_eq!(hb.id("u").len(), 36);
        for bad in [
            serde_json::json!({"entity": "x"}),
            serde_json::json!({"time": -1, "entity": "x"}),
            serde_json::json!({"time": 253402300800.0_f64, "entity": "x"}),
            serde_json::json!({"time": 1, "entity": ""}),
            serde_json::json!({"time": 1, "entity": "x", "lines": "many"}),
            serde_json::json!({"time": 1, "entity": 5}),
        ] {
            let input: HeartbeatInput = serde_json::from_value(bad.clone()).unwrap();
            assert!(input.check("", "").is_err(), "{bad}");
        }
    }
}
