//! The `cachekit` command, as a library the binaries (`cachekit`, `cachekit-server`) and
//! tests share:
//!
//! - [`check`]: run the conformance rules against the embedded defaults, an HTTP service
//!   or a DynamoDB table, with JSON / JUnit / Markdown reports and an expected-failure
//!   baseline;
//! - [`rules`]: list every rule with its family, sentence and the capabilities it needs;
//! - [`serve`]: the reference server (the memory backend behind `cachekit-server`).
//!
//! Exit codes are in [`exit`].

pub mod check;
pub mod rules;
pub mod serve;

/// The exit codes of `cachekit check` (and of the other subcommands where they apply).
pub mod exit {
    /// Every claimed rule held (or failed exactly as the baseline expects).
    pub const PASSED: u8 = 0;
    /// A rule was violated: a new failure, or a pass the baseline did not expect.
    pub const RULES_VIOLATED: u8 = 1;
    /// Nothing could be judged: a usage error, a target that cannot be reached or refuses
    /// the credentials, an unreadable baseline, or a selection in which no case runs.
    pub const UNUSABLE: u8 = 2;
}
