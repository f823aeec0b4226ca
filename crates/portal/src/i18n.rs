//! Japanese first, English on request: every string of every page lives in `i18n/ja.toml`
//! and `i18n/en.toml` (flat `key = "text"`), compiled into the binary and checked by a test
//! to have the same keys, and every key a template asks for.

use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    pub fn strings(self) -> &'static I18n {
        match self {
            Lang::Ja => &JA,
            Lang::En => &EN,
        }
    }
}

#[derive(Debug)]
pub struct I18n {
    strings: HashMap<String, String>,
}

impl I18n {
    fn parse(text: &str) -> I18n {
        let table: toml::Table = toml::from_str(text).unwrap_or_default();
        let strings = table
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
            .collect();
        I18n { strings }
    }

    /// The text of `key`; the key itself if missing (a test keeps that from shipping).
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.strings.get(key).map(String::as_str).unwrap_or(key)
    }

    /// Whether the language has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.strings.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.strings.keys().map(String::as_str)
    }
}

pub static JA: LazyLock<I18n> = LazyLock::new(|| I18n::parse(include_str!("../i18n/ja.toml")));
pub static EN: LazyLock<I18n> = LazyLock::new(|| I18n::parse(include_str!("../i18n/en.toml")));

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn keys(i: &I18n) -> BTreeSet<String> {
        i.keys().map(str::to_string).collect()
    }

    #[test]
    fn both_languages_have_the_same_keys() {
        assert!(JA.keys().count() > 100, "ja.toml parsed");
        let (ja, en) = (keys(&JA), keys(&EN));
        assert_eq!(
            ja.difference(&en).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "only in ja"
        );
        assert_eq!(
            en.difference(&ja).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "only in en"
        );
    }

    /// Every `t.get("…")` in a template and every key named in the source has its text.
    #[test]
    fn every_key_used_is_defined() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut missing = Vec::new();
        for dir in ["templates", "src", "src/pages"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read");
                for (i, _) in text.match_indices(".get(\"") {
                    let rest = &text[i + 6..];
                    let key = &rest[..rest.find('"').expect("closing quote")];
                    if key.contains('.') && !JA.has(key) {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
                for (i, _) in text.match_indices("key: \"") {
                    let rest = &text[i + 6..];
                    let key = &rest[..rest.find('"').expect("closing quote")];
                    if !JA.has(key) {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "keys without text: {missing:#?}");
    }
}
