//! What a failed check reports, as fields a program can read: the check, the operation,
//! the key and value involved, what the rule expected and what the backend answered.
//!
//! Tools classify failures by these fields ([`Failure::operation`], [`Failure::expected`],
//! [`Failure::got`], …); the rendered text (`Display`) is for people and may change.

use std::fmt;

use cachekit_core::{Bytes, ErrorKind};

/// Environment variable: the seed for random cases, to replay a failure.
pub const SEED_ENV: &str = "CACHEKIT_SEED";

/// What a case returns: `Ok` if every check held.
pub type CaseResult = Result<(), Failure>;

/// Longest byte run shown in hex before it is elided.
const PREVIEW_BYTES: usize = 24;
/// Longest key shown before it is elided.
const PREVIEW_KEY_CHARS: usize = 96;

/// The backend operation a check was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `Backend::get`.
    Get,
    /// `Backend::set`.
    Set,
    /// `Backend::delete`.
    Delete,
    /// `Backend::exists`.
    Exists,
    /// `Backend::health_check`.
    HealthCheck,
    /// Building the backend or reading its capabilities.
    Setup,
}

impl Operation {
    /// The operation's name as written in failures and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Set => "set",
            Operation::Delete => "delete",
            Operation::Exists => "exists",
            Operation::HealthCheck => "health_check",
            Operation::Setup => "setup",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An answer: what a rule expects of an operation, or what the backend gave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// `get`'s answer: a value or none.
    Value(Option<Bytes>),
    /// `exists`' or `delete`'s answer.
    Bool(bool),
    /// How many of several operations gave a particular answer (e.g. deletes that said true).
    Count(usize),
    /// Success, with the returned value shown as debug text (`()` for a unit).
    Succeeded(String),
    /// Any error of this kind (what a rule expects).
    ErrorOfKind(ErrorKind),
    /// An error the backend returned.
    Error {
        /// Its kind.
        kind: ErrorKind,
        /// Its message, as the backend wrote it.
        message: String,
    },
    /// The case, or a task it spawned, panicked.
    Panicked(String),
    /// Anything the other forms cannot say, e.g. "one of the values written".
    Described(String),
}

impl Answer {
    /// Success with no value (`Ok(())`).
    pub fn unit() -> Self {
        Answer::Succeeded("()".to_owned())
    }

    /// The error kind, for [`Answer::Error`] and [`Answer::ErrorOfKind`].
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            Answer::Error { kind, .. } | Answer::ErrorOfKind(kind) => Some(*kind),
            _ => None,
        }
    }

    /// Whether this is a present value, for [`Answer::Value`].
    pub fn is_some_value(&self) -> bool {
        matches!(self, Answer::Value(Some(_)))
    }

    /// A short name of the form, for machine-readable exports.
    pub fn form(&self) -> &'static str {
        match self {
            Answer::Value(_) => "value",
            Answer::Bool(_) => "bool",
            Answer::Count(_) => "count",
            Answer::Succeeded(_) => "succeeded",
            Answer::ErrorOfKind(_) => "error_of_kind",
            Answer::Error { .. } => "error",
            Answer::Panicked(_) => "panicked",
            Answer::Described(_) => "described",
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Value(value) => f.write_str(&preview_option(value.as_deref())),
            Answer::Bool(value) => write!(f, "{value}"),
            Answer::Count(count) => write!(f, "{count}"),
            Answer::Succeeded(value) => write!(f, "Ok({value})"),
            Answer::ErrorOfKind(kind) => write!(f, "an error of kind `{kind}`"),
            Answer::Error { kind, message } => write!(f, "an error of kind `{kind}`: {message}"),
            Answer::Panicked(message) => write!(f, "a panic: {message}"),
            Answer::Described(text) => f.write_str(text),
        }
    }
}

impl From<String> for Answer {
    fn from(text: String) -> Self {
        Answer::Described(text)
    }
}

impl From<&str> for Answer {
    fn from(text: &str) -> Self {
        Answer::Described(text.to_owned())
    }
}

impl From<bool> for Answer {
    fn from(value: bool) -> Self {
        Answer::Bool(value)
    }
}

impl From<Option<Bytes>> for Answer {
    fn from(value: Option<Bytes>) -> Self {
        Answer::Value(value)
    }
}

/// A broken rule, as found by one check inside a case.
///
/// The runner keeps it in [`Outcome::Failed`](crate::Outcome::Failed) beside the case, so a
/// failure reads as "rule → check → operation → key/value → expected vs got".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(Box<Details>);

// Boxed so that `Result<_, Failure>` stays one pointer wide on the happy path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    check: String,
    operation: Option<Operation>,
    key: Option<String>,
    value: Option<Bytes>,
    expected: Option<Answer>,
    got: Option<Answer>,
    steps: Vec<String>,
    seed: Option<u64>,
    notes: Vec<String>,
}

impl Failure {
    /// A failure of the check described by `check`, e.g. "get after the ttl elapsed".
    pub fn new(check: impl Into<String>) -> Self {
        Failure(Box::new(Details {
            check: check.into(),
            operation: None,
            key: None,
            value: None,
            expected: None,
            got: None,
            steps: Vec::new(),
            seed: None,
            notes: Vec::new(),
        }))
    }

    /// A case (or a task it spawned) that panicked.
    pub fn panicked(check: impl Into<String>, message: impl Into<String>) -> Self {
        Failure::new(check).got(Answer::Panicked(message.into()))
    }

    /// The operation the check was about.
    pub fn operation(mut self, operation: Operation) -> Self {
        self.0.operation = Some(operation);
        self
    }

    /// The key involved; shown escaped and elided, kept whole.
    pub fn key(mut self, key: &str) -> Self {
        self.0.key = Some(key.to_owned());
        self
    }

    /// The value involved; shown as length plus elided hex, kept whole.
    pub fn value(mut self, value: &[u8]) -> Self {
        self.0.value = Some(Bytes::copy_from_slice(value));
        self
    }

    /// What the rule requires.
    pub fn expected(mut self, expected: impl Into<Answer>) -> Self {
        self.0.expected = Some(expected.into());
        self
    }

    /// What the backend did instead.
    pub fn got(mut self, got: impl Into<Answer>) -> Self {
        self.0.got = Some(got.into());
        self
    }

    /// The operations that led to the failure, in order (e.g. a shrunk random sequence).
    pub fn steps(mut self, steps: Vec<String>) -> Self {
        self.0.steps = steps;
        self
    }

    /// The seed that replays the failure.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = Some(seed);
        self
    }

    /// Any further line worth reading.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.0.notes.push(note.into());
        self
    }

    /// The check that failed.
    pub fn check(&self) -> &str {
        &self.0.check
    }

    /// The operation the check was about, if it was about one.
    pub fn operation_checked(&self) -> Option<Operation> {
        self.0.operation
    }

    /// The key involved, whole.
    pub fn key_involved(&self) -> Option<&str> {
        self.0.key.as_deref()
    }

    /// The value involved, whole.
    pub fn value_involved(&self) -> Option<&Bytes> {
        self.0.value.as_ref()
    }

    /// What the rule required.
    pub fn expected_answer(&self) -> Option<&Answer> {
        self.0.expected.as_ref()
    }

    /// What the backend answered.
    pub fn got_answer(&self) -> Option<&Answer> {
        self.0.got.as_ref()
    }

    /// The operations that led to the failure.
    pub fn steps_taken(&self) -> &[String] {
        &self.0.steps
    }

    /// The seed that replays it, for random cases.
    pub fn replay_seed(&self) -> Option<u64> {
        self.0.seed
    }

    /// Further notes.
    pub fn notes(&self) -> &[String] {
        &self.0.notes
    }

    /// Whether the case panicked rather than observing a wrong answer.
    pub fn is_panic(&self) -> bool {
        matches!(self.0.got, Some(Answer::Panicked(_)))
    }

    fn answer_text(&self, answer: &Answer) -> String {
        match (self.0.operation, answer) {
            (_, Answer::Described(_) | Answer::Panicked(_)) | (None, _) => answer.to_string(),
            (Some(operation), answer) => format!("{operation} -> {answer}"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let details = &self.0;
        write!(f, "  check:    {}", details.check)?;
        let fields = [
            ("key", details.key.as_deref().map(preview_key)),
            ("value", details.value.as_deref().map(preview_bytes)),
            (
                "expected",
                details.expected.as_ref().map(|a| self.answer_text(a)),
            ),
            ("got", details.got.as_ref().map(|a| self.answer_text(a))),
        ];
        for (label, field) in fields {
            if let Some(text) = field {
                write!(f, "\n  {:<9} {text}", format!("{label}:"))?;
            }
        }
        if !details.steps.is_empty() {
            write!(f, "\n  steps:")?;
            for (index, step) in details.steps.iter().enumerate() {
                write!(f, "\n  {:>5}. {step}", index + 1)?;
            }
        }
        for note in &details.notes {
            write!(f, "\n  note:     {note}")?;
        }
        if let Some(seed) = details.seed {
            write!(f, "\n  replay:   {}={seed}", SEED_ENV)?;
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
    fn failure_renders_every_given_field_with_its_operation() {
        let text = Failure::new("get after set")
            .operation(Operation::Get)
            .key("k\n")
            .value(b"v")
            .expected(Answer::Value(Some(Bytes::from_static(b"v"))))
            .got(Answer::Value(None))
            .to_string();
        assert_eq!(
            text,
            "  check:    get after set\n  key:      \"k\\n\"\n  value:    1 bytes [76] \"v\"\n  \
             expected: get -> Some(1 bytes [76] \"v\")\n  got:      get -> None"
        );
    }

    #[test]
    fn fields_are_kept_whole_while_the_text_elides() {
        let key = "k".repeat(500);
        let value = vec![1u8; 1000];
        let failure = Failure::new("c").key(&key).value(&value);
        assert_eq!(failure.key_involved(), Some(key.as_str()));
        assert_eq!(failure.value_involved().map(|v| v.len()), Some(1000));
        assert!(failure.to_string().len() < 400);
    }
}
