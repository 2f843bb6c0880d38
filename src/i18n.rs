//! Translations: Fluent catalogues under `locales/{en,ru}/`, compiled into the binary.
//! The language comes from the `lang` cookie (set by the switcher) or `Accept-Language`.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid};

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ru,
}

static EN: LanguageIdentifier = langid!("en");
static RU: LanguageIdentifier = langid!("ru");

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ru];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
        }
    }

    /// The language's own name, for the switcher.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ru => "Русский",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "ru" => Some(Lang::Ru),
            _ => None,
        }
    }

    fn id(self) -> &'static LanguageIdentifier {
        match self {
            Lang::En => &EN,
            Lang::Ru => &RU,
        }
    }

    /// Pick from an `Accept-Language` header: the supported language with the highest q-value.
    pub fn negotiate(accept_language: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in accept_language.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::from_code(tag)
                && q > 0.0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }

    /// The message `key`; a missing key shows as the key itself (and fails the catalogue test).
    pub fn t(self, key: &str) -> String {
        LOCALES
            .try_lookup(self.id(), key)
            .unwrap_or_else(|| key.to_owned())
    }

    /// The message `key` with named arguments.
    pub fn t_args(self, key: &str, args: &[(&'static str, &str)]) -> String {
        let map: HashMap<Cow<'static, str>, FluentValue<'_>> = args
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), FluentValue::from(v.to_string())))
            .collect();
        LOCALES
            .try_lookup_with_args(self.id(), key, &map)
            .unwrap_or_else(|| key.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with([' ', '#', '\t', '.', '*', '[', '}']) && l.contains('='))
            .filter_map(|l| l.split('=').next())
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect()
    }

    #[test]
    fn every_key_exists_in_every_catalogue() {
        let en = keys(include_str!("../locales/en/main.ftl"));
        let ru = keys(include_str!("../locales/ru/main.ftl"));
        assert!(en.len() > 20, "the English catalogue looks empty");
        let only_en: Vec<_> = en.difference(&ru).collect();
        let only_ru: Vec<_> = ru.difference(&en).collect();
        assert!(only_en.is_empty(), "missing in Russian: {only_en:?}");
        assert!(only_ru.is_empty(), "missing in English: {only_ru:?}");
        // Fill every `{ $variable }` a message uses, as the code will.
        let en_text = include_str!("../locales/en/main.ftl");
        for key in &en {
            let line = en_text
                .lines()
                .find(|l| l.split('=').next().map(str::trim) == Some(key.as_str()))
                .unwrap_or("");
            let vars: Vec<&'static str> = line
                .split('$')
                .skip(1)
                .map(|rest| {
                    &*rest
                        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                        .next()
                        .unwrap_or("")
                        .to_owned()
                        .leak()
                })
                .collect();
            let args: Vec<(&'static str, &str)> = vars.iter().map(|v| (*v, "1")).collect();
            for lang in Lang::ALL {
                assert_ne!(
                    lang.t_args(key, &args),
                    *key,
                    "{key} does not resolve in {lang:?}"
                );
            }
        }
    }

    #[test]
    fn every_key_used_in_code_and_templates_exists() {
        let en = keys(include_str!("../locales/en/main.ftl"));
        let mut missing = Vec::new();
        for dir in ["src", "templates"] {
            for entry in walk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)) {
                let text = std::fs::read_to_string(&entry).unwrap();
                for key in used_keys(&text) {
                    if !en.contains(&key) {
                        missing.push(format!("{}: {key}", entry.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys used but not in the catalogue: {missing:#?}"
        );
    }

    fn walk(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(path));
            } else {
                out.push(path);
            }
        }
        out
    }

    /// Keys in `t("…")` calls (pages and code) and in `FieldError::new(_, "…")` messages.
    fn used_keys(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for marker in [".t(", "t_args("] {
            for piece in text.split(marker).skip(1) {
                let piece = piece.trim_start();
                if let Some(rest) = piece.strip_prefix('"')
                    && let Some(end) = rest.find('"')
                {
                    out.push(rest[..end].to_owned());
                }
            }
        }
        for prefix in ["error-", "scope-"] {
            for piece in text.split(&format!("\"{prefix}")).skip(1) {
                if let Some(end) = piece.find('"') {
                    out.push(format!("{prefix}{}", &piece[..end]));
                }
            }
        }
        out.retain(|k| {
            !k.is_empty()
                && !k.ends_with('-')
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit())
        });
        out
    }

    #[test]
    fn negotiation() {
        assert_eq!(Lang::negotiate("ru-RU,ru;q=0.9,en;q=0.8"), Lang::Ru);
        assert_eq!(Lang::negotiate("de-DE,en;q=0.5,ru;q=0.4"), Lang::En);
        assert_eq!(Lang::negotiate("de"), Lang::En);
        assert_eq!(Lang::negotiate(""), Lang::En);
        assert_eq!(Lang::negotiate("en;q=0.1, ru;q=0.7"), Lang::Ru);
    }

    #[test]
    fn arguments_are_filled_in() {
        assert_eq!(
            Lang::En.t_args("signed-in-as", &[("email", "a@b.c")]),
            "Signed in as a@b.c"
        );
        assert_eq!(
            Lang::Ru.t_args("signed-in-as", &[("email", "a@b.c")]),
            "Вы вошли как a@b.c"
        );
    }
}
