//! Every operation agrees with every other, after every step: `exists` with `get`, and
//! `delete`'s answer with what was there before it — checked the way Go's `fstest.TestFS`
//! cross-checks a file system, reporting every disagreement seen, not only the first.

use std::collections::BTreeMap;
use std::time::Duration;

use cachekit_core::Bytes;
use tokio::time::Instant;

use crate::failure::{Answer, Operation};
use crate::{CaseResult, Ctx, Failure, OBSERVATION_ATTEMPTS};

#[derive(Debug, Clone, Copy)]
enum Step {
    Set(usize, &'static [u8]),
    SetWithTtl(usize, &'static [u8]),
    Delete(usize),
    /// Waits past every ttl set so far.
    WaitPastTtls,
}

const KEYS: [&str; 3] = ["a", "b", "c"];

struct Disagreement {
    failure: Failure,
    line: String,
}

/// What the model knows of one key.
#[derive(Clone)]
struct Entry {
    value: Vec<u8>,
    /// For an entry with a ttl: it must be present before the first instant and absent
    /// from the second; in between, either answer is legal.
    expiry: Option<(Instant, Instant)>,
}

/// What the model says of a key for an observation made between `sent` and `answered`.
enum Expected {
    Present(Vec<u8>),
    Absent,
    /// The observation straddles the entry's legal expiry window: nothing to judge.
    Either,
}

struct Observer<'a> {
    ctx: &'a Ctx,
    keys: Vec<String>,
    model: BTreeMap<usize, Entry>,
    seen: Vec<Disagreement>,
    /// Observations of an entry with a ttl that were judged "must be present": without
    /// one, a store that drops every write with a ttl would pass on a slow machine.
    judged_expiring: usize,
    /// How many times the backend's shortest ttl this run uses: doubled on each run of
    /// the script, so a loaded store whose answers all came too late gets more room, as far
    /// as the declared maximum ttl and the case's time allow.
    stretch: u32,
}

impl Observer<'_> {
    fn expected(&self, key: usize, sent: Instant, answered: Instant) -> Expected {
        match self.model.get(&key) {
            None => Expected::Absent,
            Some(Entry {
                value,
                expiry: None,
            }) => Expected::Present(value.clone()),
            Some(Entry {
                value,
                expiry: Some((present_before, absent_from)),
            }) => {
                if answered < *present_before {
                    Expected::Present(value.clone())
                } else if sent >= *absent_from {
                    Expected::Absent
                } else {
                    Expected::Either
                }
            }
        }
    }

    fn disagree(
        &mut self,
        step: &str,
        key: usize,
        operation: Operation,
        expected: Answer,
        got: Answer,
    ) {
        let line = format!(
            "after {step}: {}({:?}) -> {got}, expected {expected}",
            operation, KEYS[key]
        );
        let failure = Failure::new(format!("after {step}"))
            .operation(operation)
            .key(&self.keys[key])
            .expected(expected)
            .got(got);
        self.seen.push(Disagreement { failure, line });
    }

    /// get and exists of every key, against the model and against each other.
    async fn look(&mut self, step: &str) -> CaseResult {
        for key in 0..KEYS.len() {
            let sent = Instant::now();
            let got = self.ctx.get(&self.keys[key]).await?;
            let exists = self.ctx.exists(&self.keys[key]).await?;
            let answered = Instant::now();
            let expected = match self.expected(key, sent, answered) {
                Expected::Present(value) => {
                    if self
                        .model
                        .get(&key)
                        .is_some_and(|entry| entry.expiry.is_some())
                    {
                        self.judged_expiring += 1;
                    }
                    Some(value)
                }
                Expected::Absent => None,
                Expected::Either => continue,
            };
            if got.as_deref() != expected.as_deref() {
                let expected = Answer::Value(expected.map(Bytes::from));
                self.disagree(
                    step,
                    key,
                    Operation::Get,
                    expected,
                    Answer::Value(got.clone()),
                );
            }
            if exists != got.is_some() {
                let note = format!(
                    "exists must agree with get -> {}",
                    Answer::Value(got.clone())
                );
                self.disagree(
                    step,
                    key,
                    Operation::Exists,
                    Answer::Bool(got.is_some()),
                    Answer::Bool(exists),
                );
                if let Some(last) = self.seen.last_mut() {
                    last.failure = last.failure.clone().note(note);
                }
            }
        }
        Ok(())
    }

    /// The ttl this run sets, and how long after a set's acknowledgement its entry must be
    /// gone: the backend's window, with the ttl stretched.
    fn ttl_and_absent_by(&self) -> (Duration, Duration) {
        let window = self.ctx.ttl_window();
        let ttl = window.ttl * self.stretch;
        (ttl, window.absent_by + (ttl - window.ttl))
    }

    async fn set(&mut self, key: usize, value: &[u8], ttl: Option<Duration>) -> CaseResult {
        let (_, absent_by) = self.ttl_and_absent_by();
        let start = Instant::now();
        self.ctx.set(&self.keys[key], value, ttl).await?;
        let acknowledged = Instant::now();
        let expiry = ttl.map(|ttl| (start + ttl, acknowledged + absent_by));
        let value = value.to_vec();
        self.model.insert(key, Entry { value, expiry });
        Ok(())
    }

    async fn run(&mut self, step: Step) -> CaseResult {
        let (ttl, _) = self.ttl_and_absent_by();
        let shown = match step {
            Step::Set(key, value) => {
                self.set(key, value, None).await?;
                format!("set({:?}, {} bytes)", KEYS[key], value.len())
            }
            Step::SetWithTtl(key, value) => {
                self.set(key, value, Some(ttl)).await?;
                format!("set({:?}, {} bytes, ttl {ttl:?})", KEYS[key], value.len())
            }
            Step::Delete(key) => {
                let sent = Instant::now();
                let existed = self.ctx.delete(&self.keys[key]).await?;
                let expected = match self.expected(key, sent, Instant::now()) {
                    Expected::Present(_) => Some(true),
                    Expected::Absent => Some(false),
                    Expected::Either => None,
                };
                self.model.remove(&key);
                let shown = format!("delete({:?})", KEYS[key]);
                if let Some(expected) = expected.filter(|expected| *expected != existed) {
                    let (expected, got) = (Answer::Bool(expected), Answer::Bool(existed));
                    self.disagree(&shown, key, Operation::Delete, expected, got);
                }
                shown
            }
            Step::WaitPastTtls => {
                let until = self
                    .model
                    .values()
                    .filter_map(|entry| entry.expiry)
                    .map(|(_, absent)| absent)
                    .max();
                if let Some(until) = until {
                    tokio::time::sleep_until(until).await;
                }
                "a wait past every ttl".to_owned()
            }
        };
        self.look(&shown).await
    }
}

/// The value the scripts set with a ttl.
const EXPIRING: &[u8] = b"expiring";

async fn cross_check(ctx: Ctx, script: &[Step]) -> CaseResult {
    let sets_ttl = script
        .iter()
        .any(|step| matches!(step, Step::SetWithTtl(..)));
    let max_ttl = ctx.caps.ttl.map_or(Duration::MAX, |support| support.max);
    for attempt in 0..OBSERVATION_ATTEMPTS {
        let keys = KEYS
            .iter()
            .map(|name| ctx.key(&format!("{name}#{attempt}")))
            .collect();
        let mut observer = Observer {
            ctx: &ctx,
            keys,
            model: BTreeMap::new(),
            seen: Vec::new(),
            judged_expiring: 0,
            stretch: super::ttl::affordable_stretch(ctx.ttl_window().ttl, max_ttl, attempt),
        };
        observer.look("the start").await?;
        for step in script {
            observer.run(*step).await?;
        }
        if !observer.seen.is_empty() {
            return Err(report(observer.seen));
        }
        if !sets_ttl || observer.judged_expiring > 0 {
            return Ok(());
        }
    }
    Err(
        Failure::new("observe an entry with a ttl before it may expire")
            .expected(
                "at least one answer about an entry with a ttl that arrives before its ttl elapses",
            )
            .got(format!(
                "{OBSERVATION_ATTEMPTS} runs of the script, every such answer too late to judge"
            )),
    )
}

fn report(seen: Vec<Disagreement>) -> Failure {
    let mut seen = seen.into_iter();
    let Some(first) = seen.next() else {
        return Failure::new("cross-check").got("no disagreement recorded");
    };
    let rest: Vec<String> = seen.map(|d| d.line).collect();
    let mut failure = first
        .failure
        .note(format!("{} disagreement(s) in all", rest.len() + 1));
    for line in rest {
        failure = failure.note(line);
    }
    failure
}

/// get, exists and delete agree after every step of plain writes and deletes.
pub async fn operations_agree_after_every_write_and_delete(ctx: Ctx) -> CaseResult {
    use Step::*;
    cross_check(
        ctx,
        &[
            Set(0, b"one"),
            Set(1, b"two"),
            Set(0, b"three"),
            Delete(1),
            Delete(1),
            Set(2, b"four"),
            Delete(0),
            Set(0, b"five"),
            Delete(2),
            Delete(0),
        ],
    )
    .await
}

/// get, exists and delete agree about empty values after every step.
pub async fn operations_agree_about_empty_values(ctx: Ctx) -> CaseResult {
    use Step::*;
    cross_check(
        ctx,
        &[
            Set(0, b""),
            Set(1, b"x"),
            Set(1, b""),
            Delete(0),
            Set(0, b""),
            Delete(1),
            Delete(0),
        ],
    )
    .await
}

/// get, exists and delete agree about entries with and without ttl, before and after expiry.
pub async fn operations_agree_across_expiry(ctx: Ctx) -> CaseResult {
    use Step::*;
    cross_check(
        ctx,
        &[
            SetWithTtl(0, EXPIRING),
            Set(1, b"persistent"),
            SetWithTtl(2, EXPIRING),
            Set(2, b"made persistent"),
            WaitPastTtls,
            Delete(0),
            SetWithTtl(0, EXPIRING),
            Delete(0),
            Delete(1),
            Delete(2),
        ],
    )
    .await
}
