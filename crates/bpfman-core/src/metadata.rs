//! Metadata labels on programs and links, and selectors over them.

use std::collections::BTreeMap;

use crate::error::{CoreError, invalid};

/// Key/value labels stored with a program (ordered for stable output).
pub type Metadata = BTreeMap<String, String>;

use crate::limits::{
    MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES as MAX_KEY, MAX_METADATA_VALUE_BYTES as MAX_VALUE,
};

/// Checks a metadata key: non-empty, at most 253 bytes, letters, digits and `._-/`.
pub fn validate_key(key: &str) -> Result<(), CoreError> {
    if key.is_empty() {
        return Err(invalid("metadata key is empty"));
    }
    if key.len() > MAX_KEY {
        return Err(invalid(format!(
            "metadata key '{key}' is longer than {MAX_KEY} bytes"
        )));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(invalid(format!(
            "metadata key '{key}' contains '{c}': use letters, digits, '.', '_', '-' and '/'"
        )));
    }
    Ok(())
}

/// Checks a metadata value: at most 1024 bytes, no control characters.
pub fn validate_value(key: &str, value: &str) -> Result<(), CoreError> {
    if value.len() > MAX_VALUE {
        return Err(invalid(format!(
            "metadata value for '{key}' is longer than {MAX_VALUE} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "metadata value for '{key}' contains a control character"
        )));
    }
    Ok(())
}

/// Parses one `KEY=VALUE` pair (the value may be empty and may contain `=`).
pub fn parse_pair(s: &str) -> Result<(String, String), CoreError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| invalid(format!("'{s}' is not KEY=VALUE")))?;
    validate_key(k)?;
    validate_value(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// Validates every entry of a metadata map received from a client.
pub fn validate(md: &Metadata) -> Result<(), CoreError> {
    if md.len() > MAX_METADATA_ENTRIES {
        return Err(invalid(format!(
            "{} metadata entries: at most {MAX_METADATA_ENTRIES} are allowed",
            md.len()
        )));
    }
    for (k, v) in md {
        validate_key(k)?;
        validate_value(k, v)?;
    }
    Ok(())
}

/// A conjunction of `KEY=VALUE` requirements: all must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Metadata);

impl Selector {
    /// Builds a selector from `KEY=VALUE` strings.
    pub fn parse<I, S>(items: I) -> Result<Self, CoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut m = Metadata::new();
        for s in items {
            let (k, v) = parse_pair(s.as_ref())?;
            m.insert(k, v);
            if m.len() > MAX_METADATA_ENTRIES {
                return Err(invalid(format!(
                    "more than {MAX_METADATA_ENTRIES} selector entries"
                )));
            }
        }
        Ok(Selector(m))
    }

    /// True when there is nothing to match.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `md` carries every pair of the selector.
    pub fn matches(&self, md: &Metadata) -> bool {
        self.0.iter().all(|(k, v)| md.get(k) == Some(v))
    }

    /// `k=v,k2=v2` for messages.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_just_over_the_edge() {
        let key = "k".repeat(MAX_KEY);
        assert!(validate_key(&key).is_ok());
        assert!(
            validate_key(&format!("{key}k"))
                .unwrap_err()
                .to_string()
                .contains("longer than 253")
        );
        let v = "v".repeat(MAX_VALUE);
        assert!(validate_value("k", &v).is_ok());
        assert!(
            validate_value("k", &format!("{v}v"))
                .unwrap_err()
                .to_string()
                .contains("longer than 1024")
        );
        let mut md: Metadata = (0..MAX_METADATA_ENTRIES)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert!(validate(&md).is_ok());
        md.insert("one-more".into(), "v".into());
        let e = validate(&md).unwrap_err().to_string();
        assert!(e.contains("65 metadata entries: at most 64"), "{e}");
        let items: Vec<String> = (0..=MAX_METADATA_ENTRIES)
            .map(|i| format!("k{i}=v"))
            .collect();
        assert!(Selector::parse(&items[..MAX_METADATA_ENTRIES]).is_ok());
        assert!(
            Selector::parse(&items)
                .unwrap_err()
                .to_string()
                .contains("more than 64 selector entries")
        );
    }

    #[test]
    fn parses_pairs() {
        assert_eq!(
            parse_pair("bpfman.io/application=stats").unwrap(),
            ("bpfman.io/application".into(), "stats".into())
        );
        assert_eq!(parse_pair("a=b=c").unwrap().1, "b=c");
        assert!(parse_pair("novalue").is_err());
        assert!(parse_pair("=x").is_err());
        assert!(parse_pair("bad key=x").is_err());
        assert!(parse_pair("k=a\nb").is_err());
    }

    #[test]
    fn selector_requires_all() {
        let sel = Selector::parse(["a=1", "b=2"]).unwrap();
        let mut md = Metadata::new();
        md.insert("a".into(), "1".into());
        assert!(!sel.matches(&md));
        md.insert("b".into(), "2".into());
        assert!(sel.matches(&md));
        assert!(Selector::default().matches(&Metadata::new()));
    }
}
