//! What a failed check reports: the check, the key and value involved, expected and got.

use std::fmt;

/// Longest byte run shown in hex before it is elided.
const PREVIEW_BYTES: usize = 24;
/// Longest key shown before it is elided.
const PREVIEW_KEY_CHARS: usize = 96;

/// A broken rule, as found by one check inside a case.
///
/// The runner prefixes it with the case's rule, so a failure reads as
/// "rule → check → key/value → expected vs got".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(Box<Details>);

// Boxed so that `Result<_, Failure>` stays one pointer wide on the happy path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    check: String,
    key: Option<String>,
    value: Option<String>,
    expected: Option<String>,
    got: Option<String>,
    notes: Vec<String>,
}

impl Failure {
    /// A failure of the check described by `check`, e.g. "get after the ttl elapsed".
    pub fn new(check: impl Into<String>) -> Self {
        Failure(Box::new(Details {
            check: check.into(),
            key: None,
            value: None,
            expected: None,
            got: None,
            notes: Vec::new(),
        }))
    }

    /// The key involved, shown escaped and truncated.
    pub fn key(mut self, key: &str) -> Self {
        self.0.key = Some(preview_key(key));
        self
    }

    /// The value involved, shown as length plus truncated hex.
    pub fn value(mut self, value: &[u8]) -> Self {
        self.0.value = Some(preview_bytes(value));
        self
    }

    /// What the rule requires.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.0.expected = Some(expected.into());
        self
    }

    /// What the backend did instead.
    pub fn got(mut self, got: impl Into<String>) -> Self {
        self.0.got = Some(got.into());
        self
    }

    /// Any further line worth reading, e.g. a seed to replay.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.0.notes.push(note.into());
        self
    }

    /// The check that failed.
    pub fn check(&self) -> &str {
        &self.0.check
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let details = &self.0;
        write!(f, "  check:    {}", details.check)?;
        let fields = [
            ("key", &details.key),
            ("value", &details.value),
            ("expected", &details.expected),
            ("got", &details.got),
        ];
        for (label, field) in fields {
            if let Some(text) = field {
                write!(f, "\n  {:<9} {text}", format!("{label}:"))?;
            }
        }
        for note in &details.notes {
            write!(f, "\n  note:     {note}")?;
        }
        Ok(())
    }
}

/// `Some(bytes)` / `None` in the same compact form failures use.
pub fn preview_option(value: Option<&[u8]>) -> String {
    match value {
        Some(bytes) => format!("Some({})", preview_bytes(bytes)),
        None => "None".to_owned(),
    }
}

/// Length, a hex prefix, and the text if it is short printable UTF-8.
pub fn preview_bytes(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(PREVIEW_BYTES)];
    let mut hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
    if bytes.len() > shown.len() {
        hex.push('…');
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) if bytes.len() <= PREVIEW_BYTES && !text.chars().any(char::is_control) => {
            format!(" {text:?}")
        }
        _ => String::new(),
    };
    format!("{} bytes [{hex}]{text}", bytes.len())
}

/// The key escaped like a Rust string, elided in the middle when long.
pub fn preview_key(key: &str) -> String {
    let chars = key.chars().count();
    if chars <= PREVIEW_KEY_CHARS {
        return format!("{key:?}");
    }
    let head: String = key.chars().take(PREVIEW_KEY_CHARS / 2).collect();
    let tail: String = key.chars().skip(chars - PREVIEW_KEY_CHARS / 4).collect();
    format!("{head:?}…{tail:?} ({} bytes, {chars} chars)", key.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_preview_shows_length_hex_and_short_text() {
        assert_eq!(preview_bytes(b"hi"), "2 bytes [6869] \"hi\"");
        assert_eq!(preview_bytes(&[0xff, 0]), "2 bytes [ff00]");
        let long = vec![0xab; 100];
        assert!(preview_bytes(&long).starts_with("100 bytes [abab"));
        assert!(preview_bytes(&long).ends_with("…]"));
    }

    #[test]
    fn failure_lists_every_given_field() {
        let text = Failure::new("get after set")
            .key("k\n")
            .value(b"v")
            .expected("Some(v)")
            .got("None")
            .to_string();
        assert!(text.contains("check:    get after set"));
        assert!(text.contains("key:      \"k\\n\""));
        assert!(text.contains("expected: Some(v)"));
        assert!(text.contains("got:      None"));
    }
}
