//! The linearizability search: one key's sub-history at a time, Wing–Gong–Lowe style.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Answered, Call, Consistency, ExpiryTolerance, History, Op};

/// What checking a history concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every key's sub-history has a linearization.
    Linearizable(Stats),
    /// One key's sub-history has none.
    NotLinearizable(Violation),
    /// The check could not decide: it ran out of time, or there was nothing to judge.
    /// Never to be taken as a pass.
    Unknown {
        /// Why not.
        reason: String,
    },
}

/// Sizes and checking times of a history that passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Operations in the history.
    pub ops: usize,
    /// Of those, indeterminate ones.
    pub indeterminate: usize,
    /// Checking time of each key's sub-history.
    pub per_key: Vec<Duration>,
}

impl Stats {
    /// The median and the largest per-key checking time.
    pub fn p50_and_max(&self) -> (Duration, Duration) {
        let mut times = self.per_key.clone();
        times.sort();
        let p50 = times.get(times.len() / 2).copied().unwrap_or_default();
        (p50, times.last().copied().unwrap_or_default())
    }
}

/// A key whose sub-history no order explains, shrunk to the operations that still show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The key's index in the history.
    pub key: usize,
    /// The shrunk sub-history, in invocation order.
    pub ops: Vec<Op>,
    /// How many operations the unshrunk sub-history had.
    pub unshrunk_len: usize,
    /// Indices into `ops` of the longest sequence the search could explain, in that order:
    /// the operations after it are where every explanation broke down.
    pub explained: Vec<usize>,
    /// The first operation (index into `ops`) the longest explanation could not place, and
    /// the answer the model gives it right after that explanation, when that answer is
    /// certain (no expiry window open, a value some get returned).
    pub expected: Option<(usize, Answered)>,
}

/// One key's register as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Register {
    Absent,
    Present {
        value: u32,
        /// Earliest and latest instant the value may expire, when it has a ttl.
        expiry: Option<(u64, u64)>,
    },
}

/// The search state: the register and the earliest instant the last operation placed
/// can have taken effect (every later one takes effect no earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct State {
    now: u64,
    register: Register,
}

/// An operation as the search sees it.
#[derive(Debug, Clone, Copy)]
enum Step {
    Set {
        value: u32,
        ttl: Option<u64>,
    },
    /// A get, exists or delete that saw the key absent (`removes`: a delete).
    SawAbsent,
    /// A get that read `value`, or (`value: None`) an exists or delete that saw the key.
    SawPresent {
        value: Option<u32>,
        removes: bool,
    },
    /// A delete whose outcome is unknown.
    Removes,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    invoked: u64,
    /// `u64::MAX` for an indeterminate write: it may take effect at any later instant.
    returned: u64,
    step: Step,
    optional: bool,
    /// Index in the sub-history given to the search.
    index: usize,
}

/// A value no set in the sub-history wrote: reading it can never be explained.
const UNWRITTEN: u32 = u32::MAX;
/// Every written value no get returned.
const UNOBSERVED: u32 = u32::MAX - 1;

/// What the register model is checked against.
#[derive(Debug, Clone, Copy)]
struct Model {
    consistency: Consistency,
    expiry: Option<ExpiryTolerance>,
    may_evict: bool,
}

impl Model {
    fn of(history: &History) -> Self {
        Model {
            consistency: history.consistency,
            expiry: history.expiry,
            may_evict: history.may_evict,
        }
    }
}

enum Search {
    Explained,
    Unexplained { longest: Vec<usize> },
    OutOfTime,
}

/// Checks every key of `history`, each for at most `budget` (the whole check for at most
/// `budget` × keys), then shrinks a violation with the same per-check budget.
pub fn check_history(history: &History, budget: Duration) -> Verdict {
    let determinate = history.determinate_count();
    let reads = history
        .ops
        .iter()
        .filter(|op| !op.is_indeterminate() && !matches!(op.call, Call::Set { .. }))
        .count();
    if determinate == 0 || reads == 0 {
        return Verdict::Unknown {
            reason: format!(
                "nothing to judge: {} operation(s), {determinate} with a known outcome, \
                 {reads} of them observing the store",
                history.ops.len()
            ),
        };
    }
    let mut per_key = Vec::with_capacity(history.keys.len());
    for key in 0..history.keys.len() {
        let ops = history.ops_on(key);
        let started = Instant::now();
        match search(&ops, Model::of(history), budget) {
            Search::Explained => per_key.push(started.elapsed()),
            Search::OutOfTime => {
                return Verdict::Unknown {
                    reason: format!(
                        "checking key {:?} ({} operations) took longer than {budget:?}",
                        history.keys[key],
                        ops.len()
                    ),
                }
            }
            Search::Unexplained { .. } => {
                let unshrunk_len = ops.len();
                let ops = shrink(ops, history, budget);
                let explained = match search(&ops, Model::of(history), budget) {
                    Search::Unexplained { longest } => longest,
                    _ => Vec::new(),
                };
                let expected = expected_after(&ops, Model::of(history), &explained);
                return Verdict::NotLinearizable(Violation {
                    key,
                    ops,
                    unshrunk_len,
                    explained,
                    expected,
                });
            }
        }
    }
    Verdict::Linearizable(Stats {
        ops: history.ops.len(),
        indeterminate: history.ops.len() - determinate,
        per_key,
    })
}

/// Removes operations from a sub-history no order explains while it stays unexplained,
/// keeping only removals that cannot create a violation: first every operation after the
/// shortest unexplained prefix (one that ends before the rest begins, so nothing in it can
/// depend on them), then reads (they only add constraints), indeterminate operations (they
/// were optional) and any operation invoked after every other one returned.
/// `history` supplies the model; `ops` are one key's operations from it.
pub fn shrink(ops: Vec<Op>, history: &History, budget: Duration) -> Vec<Op> {
    let model = Model::of(history);
    let unexplained = |ops: &[Op]| matches!(search(ops, model, budget), Search::Unexplained { .. });
    let mut ops = shortest_unexplained_prefix(ops, &unexplained);
    let mut index = ops.len();
    while index > 0 {
        index -= 1;
        let last_of_all = ops
            .iter()
            .enumerate()
            .all(|(other, op)| other == index || op.returned < ops[index].invoked);
        let removable = !ops[index].is_write() || ops[index].is_indeterminate() || last_of_all;
        if !removable {
            continue;
        }
        let mut fewer = ops.clone();
        fewer.remove(index);
        if unexplained(&fewer) {
            ops = fewer;
            // A removal can make an earlier write the last of all: look again from the end.
            index = ops.len();
        }
    }
    ops
}

/// What the model answers for the first determinate operation left out of `explained`,
/// once the operations of `explained` have taken effect in that order.
fn expected_after(ops: &[Op], model: Model, explained: &[usize]) -> Option<(usize, Answered)> {
    let events = events(ops, model.consistency);
    let mut state = State {
        now: 0,
        register: Register::Absent,
    };
    // The value the register holds, as written by the last set placed.
    let mut held: Option<String> = None;
    for index in explained {
        let event = events.iter().find(|event| event.index == *index)?;
        state = apply(state, event, model)?;
        held = match (&ops.get(*index)?.call, state.register) {
            (_, Register::Absent) => None,
            (Call::Set { value, .. }, _) => Some(value.clone()),
            _ => held,
        };
    }
    let stuck = events
        .iter()
        .filter(|event| !event.optional && !explained.contains(&event.index))
        .min_by_key(|event| (event.invoked, event.index))?;
    let op = ops.get(stuck.index)?;
    // Inside an expiry window either answer is legal: only outside it is one certain.
    if let Register::Present {
        expiry: Some((soonest, latest)),
        ..
    } = state.register
    {
        if state.now.max(stuck.invoked) >= latest {
            held = None;
        } else if stuck.returned >= soonest {
            return None;
        }
    }
    let answer = match &op.call {
        Call::Get => Answered::Value(held),
        Call::Exists | Call::Delete => Answered::Bool(held.is_some()),
        Call::Set { .. } => return None,
    };
    Some((stuck.index, answer))
}

/// The shortest prefix (in invocation order) that no order explains, among those whose
/// operations all returned before the first operation after them was invoked.
fn shortest_unexplained_prefix(mut ops: Vec<Op>, unexplained: &impl Fn(&[Op]) -> bool) -> Vec<Op> {
    ops.sort_by_key(|op| op.invoked);
    let mut latest_return = 0;
    for cut in 1..ops.len() {
        latest_return = latest_return.max(ops[cut - 1].returned);
        if latest_return < ops[cut].invoked && unexplained(&ops[..cut]) {
            ops.truncate(cut);
            return ops;
        }
    }
    ops
}

fn events(ops: &[Op], consistency: Consistency) -> Vec<Event> {
    // Values no get returned are interchangeable: they share one id, so states that differ
    // only in which of them is held are one state to the memo.
    let mut values: HashMap<&str, u32> = HashMap::new();
    for op in ops {
        if let (Call::Get, Answered::Value(Some(value))) = (&op.call, &op.answered) {
            let next = u32::try_from(values.len()).unwrap_or(UNOBSERVED - 1);
            values.entry(value.as_str()).or_insert(next);
        }
    }
    for op in ops {
        if let Call::Set { value, .. } = &op.call {
            values.entry(value.as_str()).or_insert(UNOBSERVED);
        }
    }
    let stale_by = match consistency {
        Consistency::Linearizable => 0,
        Consistency::Eventual { staleness_nanos } => staleness_nanos,
    };
    let mut events = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let indeterminate = op.is_indeterminate();
        let step = match (&op.call, &op.answered) {
            // A read that failed tells nothing.
            (Call::Get | Call::Exists, Answered::Indeterminate { .. }) => continue,
            (Call::Set { value, ttl_nanos }, _) => Step::Set {
                value: values.get(value.as_str()).copied().unwrap_or(UNWRITTEN),
                ttl: *ttl_nanos,
            },
            (Call::Delete, Answered::Indeterminate { .. }) => Step::Removes,
            (Call::Get, Answered::Value(None))
            | (Call::Exists | Call::Delete, Answered::Bool(false)) => Step::SawAbsent,
            (Call::Get, Answered::Value(Some(value))) => Step::SawPresent {
                value: Some(values.get(value.as_str()).copied().unwrap_or(UNWRITTEN)),
                removes: false,
            },
            (Call::Exists, Answered::Bool(true)) => Step::SawPresent {
                value: None,
                removes: false,
            },
            (Call::Delete, Answered::Bool(true)) => Step::SawPresent {
                value: None,
                removes: true,
            },
            // An answer of the wrong shape (a set answering a value) is recorded as such by
            // the recorder only on a bug of ours; it explains nothing.
            (Call::Get, _) | (Call::Exists | Call::Delete, _) => Step::SawPresent {
                value: Some(UNWRITTEN),
                removes: false,
            },
        };
        let is_read = matches!(op.call, Call::Get | Call::Exists);
        events.push(Event {
            invoked: if is_read {
                op.invoked.saturating_sub(stale_by)
            } else {
                op.invoked
            },
            returned: if indeterminate { u64::MAX } else { op.returned },
            step,
            optional: indeterminate,
            index,
        });
    }
    events.sort_by_key(|event| (event.invoked, event.index));
    events
}

/// Places `event` right after the state `state`; `None` when its answer cannot be explained.
fn apply(state: State, event: &Event, model: Model) -> Option<State> {
    let expiry = model.expiry;
    let earliest = state.now.max(event.invoked);
    let latest = event.returned;
    match event.step {
        Step::Set { value, ttl } => {
            // The ttl counts from some instant between invocation and return, not from the
            // instant the write took effect: a client that turns the ttl into a deadline
            // before it sends (DynamoDB's `expires_at`) starts it at the invocation, however
            // late a queue applies the write.
            let expiry = ttl.map(|ttl| {
                let window = expiry.map_or((ttl, ttl), |tolerance| tolerance.window(ttl));
                (
                    event.invoked.saturating_add(window.0),
                    latest.saturating_add(window.1),
                )
            });
            Some(State {
                now: earliest,
                register: Register::Present { value, expiry },
            })
        }
        Step::Removes => Some(State {
            now: earliest,
            register: Register::Absent,
        }),
        Step::SawAbsent => match state.register {
            Register::Absent => Some(State {
                now: earliest,
                register: Register::Absent,
            }),
            // Evicted: legal at any instant for a store that may evict.
            Register::Present { .. } if model.may_evict => Some(State {
                now: earliest,
                register: Register::Absent,
            }),
            Register::Present { expiry: None, .. } => None,
            // Seen gone: it expired no later than this answer, and this read took effect
            // no earlier than the expiry.
            Register::Present {
                expiry: Some((soonest, _)),
                ..
            } => (soonest <= latest).then_some(State {
                now: earliest.max(soonest),
                register: Register::Absent,
            }),
        },
        Step::SawPresent { value, removes } => match state.register {
            Register::Absent => None,
            Register::Present {
                value: held,
                expiry,
            } => {
                if value.is_some_and(|read| read != held) {
                    return None;
                }
                let expiry = match expiry {
                    None => None,
                    // Seen present: it had not expired at this read's instant.
                    Some((soonest, latest_expiry)) => {
                        if earliest >= latest_expiry {
                            return None;
                        }
                        Some((soonest.max(earliest.saturating_add(1)), latest_expiry))
                    }
                };
                let register = if removes {
                    Register::Absent
                } else {
                    Register::Present {
                        value: held,
                        expiry,
                    }
                };
                Some(State {
                    now: earliest,
                    register,
                })
            }
        },
    }
}

struct Searcher<'a> {
    events: &'a [Event],
    model: Model,
    required: usize,
    placed: Vec<bool>,
    order: Vec<usize>,
    longest: Vec<usize>,
    longest_required: usize,
    /// Positions found unexplainable: for each placed-required set, state and whether an
    /// optional event was just placed, the optional sets they were reached with.
    failed: HashMap<(Vec<u64>, State, bool), Vec<Vec<u64>>>,
    deadline: Instant,
    steps: u64,
    out_of_time: bool,
}

impl Searcher<'_> {
    /// The placed events, split into required and optional ones, as bitsets.
    fn placed_bits(&self) -> (Vec<u64>, Vec<u64>) {
        let words = self.placed.len().div_ceil(64);
        let (mut required, mut optional) = (vec![0u64; words], vec![0u64; words]);
        for (index, placed) in self.placed.iter().enumerate() {
            if *placed {
                let bits = if self.events[index].optional {
                    &mut optional
                } else {
                    &mut required
                };
                bits[index / 64] |= 1 << (index % 64);
            }
        }
        (required, optional)
    }

    /// Depth-first: true when the remaining required events can all be placed after `state`.
    ///
    /// Three reductions keep indeterminate (optional) events from multiplying the orders:
    /// at most one goes between two required events (of several in a row only the last
    /// one's effect survives, and leaving the others out never removes an explanation),
    /// and a position is pruned when it was already unexplainable with the same required
    /// events placed, the same state, and a subset of the optional ones placed; and of
    /// optional events leading to the same state only one is tried.
    fn explore(&mut self, state: State, required_placed: usize, after_optional: bool) -> bool {
        if required_placed == self.required {
            return true;
        }
        self.steps += 1;
        if self.steps % 512 == 0 && Instant::now() > self.deadline {
            self.out_of_time = true;
        }
        if self.out_of_time {
            return false;
        }
        let (required_bits, optional_bits) = self.placed_bits();
        let position = (required_bits, state, after_optional);
        let subset = |failed: &Vec<u64>| {
            failed
                .iter()
                .zip(&optional_bits)
                .all(|(failed, placed)| failed & !placed == 0)
        };
        if self
            .failed
            .get(&position)
            .is_some_and(|failures| failures.iter().any(subset))
        {
            return false;
        }
        // Wing and Gong: only an event invoked before every unplaced event's answer can go next.
        let first_answer = self
            .events
            .iter()
            .zip(&self.placed)
            .filter(|(_, placed)| !**placed)
            .map(|(event, _)| event.returned)
            .min()
            .unwrap_or(u64::MAX);
        // Optional events that lead to the same state are interchangeable from here on (both
        // were invoked before that state's instant, both may take effect at any later one):
        // one of them is tried.
        let mut optional_tried: Vec<State> = Vec::new();
        for candidate in 0..self.events.len() {
            if self.placed[candidate] {
                continue;
            }
            let event = self.events[candidate];
            if event.invoked > first_answer {
                break;
            }
            if event.optional && after_optional {
                continue;
            }
            let Some(next) = apply(state, &event, self.model) else {
                continue;
            };
            if event.optional {
                if optional_tried.contains(&next) {
                    continue;
                }
                optional_tried.push(next);
            }
            self.placed[candidate] = true;
            self.order.push(event.index);
            let placed_now = required_placed + usize::from(!event.optional);
            if placed_now > self.longest_required {
                self.longest_required = placed_now;
                self.longest = self.order.clone();
            }
            let done = self.explore(next, placed_now, event.optional);
            self.order.pop();
            self.placed[candidate] = false;
            if done {
                return true;
            }
            if self.out_of_time {
                return false;
            }
        }
        self.failed.entry(position).or_default().push(optional_bits);
        false
    }
}

fn search(ops: &[Op], model: Model, budget: Duration) -> Search {
    let events = events(ops, model.consistency);
    let required = events.iter().filter(|event| !event.optional).count();
    let mut searcher = Searcher {
        events: &events,
        model,
        required,
        placed: vec![false; events.len()],
        order: Vec::new(),
        longest: Vec::new(),
        longest_required: 0,
        failed: HashMap::new(),
        deadline: Instant::now() + budget,
        steps: 0,
        out_of_time: false,
    };
    let initial = State {
        now: 0,
        register: Register::Absent,
    };
    if searcher.explore(initial, 0, false) {
        Search::Explained
    } else if searcher.out_of_time {
        Search::OutOfTime
    } else {
        Search::Unexplained {
            longest: searcher.longest,
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const MS: u64 = 1_000_000;

    /// An operation on key 0 from `client`, invoked and answered at whole milliseconds.
    fn op(client: usize, invoked_ms: u64, returned_ms: u64, call: Call, answered: Answered) -> Op {
        Op {
            client,
            key: 0,
            call,
            invoked: invoked_ms * MS,
            returned: returned_ms * MS,
            answered,
        }
    }

    fn set(client: usize, at: (u64, u64), value: &str) -> Op {
        let call = Call::Set {
            value: value.to_owned(),
            ttl_nanos: None,
        };
        op(client, at.0, at.1, call, Answered::Stored)
    }

    fn set_ttl(client: usize, at: (u64, u64), value: &str, ttl_ms: u64) -> Op {
        let call = Call::Set {
            value: value.to_owned(),
            ttl_nanos: Some(ttl_ms * MS),
        };
        op(client, at.0, at.1, call, Answered::Stored)
    }

    fn get(client: usize, at: (u64, u64), value: Option<&str>) -> Op {
        let answered = Answered::Value(value.map(str::to_owned));
        op(client, at.0, at.1, Call::Get, answered)
    }

    fn exists(client: usize, at: (u64, u64), answer: bool) -> Op {
        op(client, at.0, at.1, Call::Exists, Answered::Bool(answer))
    }

    fn delete(client: usize, at: (u64, u64), answer: bool) -> Op {
        op(client, at.0, at.1, Call::Delete, Answered::Bool(answer))
    }

    fn lost(mut op: Op) -> Op {
        op.answered = Answered::Indeterminate {
            kind: "timeout".to_owned(),
            message: "no answer".to_owned(),
        };
        op
    }

    /// Precision 10 ms, no slack: an entry with ttl T set at s expires in [s + T, s + T + 10 ms].
    const TEN_MS: ExpiryTolerance = ExpiryTolerance {
        precision_nanos: 10 * MS,
        early_nanos: 0,
        late_nanos: 0,
    };

    fn history(ops: Vec<Op>, consistency: Consistency) -> History {
        History {
            backend: "hand-written".to_owned(),
            seed: 0,
            keys: vec!["k".to_owned()],
            clients: 3,
            consistency,
            expiry: Some(TEN_MS),
            may_evict: false,
            ops,
        }
    }

    fn verdict(ops: Vec<Op>, consistency: Consistency) -> Verdict {
        check_history(&history(ops, consistency), Duration::from_secs(5))
    }

    const LINEARIZABLE: Consistency = Consistency::Linearizable;

    #[rstest]
    #[case::read_after_write(vec![set(0, (0, 1), "a"), get(1, (2, 3), Some("a"))])]
    #[case::overlapping_read_sees_the_old_state(vec![set(0, (0, 10), "a"), get(1, (2, 3), None)])]
    #[case::overlapping_read_sees_the_new_value(vec![set(0, (0, 10), "a"), get(1, (2, 3), Some("a"))])]
    #[case::overlapping_writes_in_the_order_opposite_to_their_invocation(vec![
        set(0, (0, 10), "a"), set(1, (1, 9), "b"), get(2, (11, 12), Some("a")),
    ])]
    #[case::overlapping_writes_in_invocation_order(vec![
        set(0, (0, 10), "a"), set(1, (1, 9), "b"), get(2, (11, 12), Some("b")),
    ])]
    #[case::read_inside_the_expiry_window_sees_it(vec![
        set_ttl(0, (0, 1), "a", 100), get(1, (105, 106), Some("a")),
    ])]
    #[case::read_inside_the_expiry_window_sees_it_gone(vec![
        set_ttl(0, (0, 1), "a", 100), get(1, (105, 106), None),
    ])]
    #[case::expired_after_the_window(vec![
        set_ttl(0, (0, 1), "a", 100), get(1, (50, 51), Some("a")), exists(1, (120, 121), false),
    ])]
    #[case::lost_write_that_took_effect(vec![lost(set(0, (0, 5), "a")), get(1, (50, 51), Some("a"))])]
    #[case::lost_write_that_never_took_effect(vec![lost(set(0, (0, 5), "a")), get(1, (50, 51), None)])]
    #[case::lost_write_that_took_effect_late(vec![
        lost(set(0, (0, 5), "a")), get(1, (50, 51), None), get(1, (60, 61), Some("a")),
    ])]
    #[case::delete_answers_what_was_there(vec![
        set(0, (0, 1), "a"), delete(1, (2, 3), true), delete(2, (4, 5), false), get(0, (6, 7), None),
    ])]
    #[case::lost_delete_either_way(vec![
        set(0, (0, 1), "a"), lost(delete(1, (2, 3), true)), get(2, (4, 5), Some("a")), get(2, (6, 7), None),
    ])]
    #[case::concurrent_delete_and_read(vec![
        set(0, (0, 1), "a"), delete(1, (2, 10), true), get(2, (3, 4), Some("a")), get(2, (5, 6), None),
    ])]
    #[case::ttl_counts_from_the_invocation_of_a_write_applied_late(vec![
        set(1, (0, 1), "old"), set_ttl(0, (10, 60), "a", 100), get(2, (40, 41), Some("old")),
        get(2, (115, 116), None),
    ])]
    fn legal_histories_are_accepted(#[case] ops: Vec<Op>) {
        let verdict = verdict(ops, LINEARIZABLE);
        assert!(matches!(verdict, Verdict::Linearizable(_)), "{verdict:?}");
    }

    #[rstest]
    #[case::stale_read(vec![set(0, (0, 1), "a"), set(1, (2, 3), "b"), get(2, (4, 5), Some("a"))])]
    #[case::lost_update(vec![set(0, (0, 1), "a"), get(1, (2, 3), None)])]
    #[case::read_of_a_deleted_value(vec![
        set(0, (0, 1), "a"), delete(1, (2, 3), true), get(2, (4, 5), Some("a")),
    ])]
    #[case::read_that_goes_back_in_time(vec![
        set(0, (0, 1), "a"), set(1, (2, 20), "b"), get(2, (3, 4), Some("b")), get(2, (5, 6), Some("a")),
    ])]
    #[case::expired_entry_comes_back(vec![
        set_ttl(0, (0, 1), "a", 100), get(1, (105, 106), None), get(1, (107, 108), Some("a")),
    ])]
    #[case::entry_dies_early(vec![set_ttl(0, (0, 1), "a", 100), get(1, (50, 51), None)])]
    #[case::entry_of_a_write_applied_late_dies_before_its_ttl_from_invocation(vec![
        set(1, (0, 1), "old"), set_ttl(0, (10, 60), "a", 100), get(2, (40, 41), Some("old")),
        get(2, (100, 101), None),
    ])]
    #[case::entry_outlives_its_window(vec![set_ttl(0, (0, 1), "a", 100), get(1, (200, 201), Some("a"))])]
    #[case::delete_of_nothing_says_true(vec![delete(0, (0, 1), true), get(0, (2, 3), None)])]
    #[case::read_of_a_value_never_written(vec![set(0, (0, 1), "a"), get(1, (2, 3), Some("z"))])]
    #[case::exists_disagrees_with_the_write(vec![set(0, (0, 1), "a"), exists(1, (2, 3), false)])]
    #[case::lost_delete_cannot_take_effect_twice(vec![
        set(0, (0, 1), "a"), lost(delete(1, (2, 3), true)), get(2, (4, 5), None), get(2, (6, 7), Some("a")),
    ])]
    #[case::a_newer_write_overwritten_by_a_late_older_one(vec![
        set(0, (0, 1), "a"), set(1, (2, 3), "b"), get(2, (4, 5), Some("b")), get(2, (6, 7), Some("a")),
    ])]
    fn violations_are_rejected(#[case] ops: Vec<Op>) {
        let verdict = verdict(ops, LINEARIZABLE);
        assert!(
            matches!(verdict, Verdict::NotLinearizable(_)),
            "{verdict:?}"
        );
    }

    #[rstest]
    #[case::within_the_bound(10, true)]
    #[case::beyond_the_bound(1, false)]
    fn a_stale_read_is_judged_by_the_declared_staleness(
        #[case] bound_ms: u64,
        #[case] legal: bool,
    ) {
        let ops = vec![
            set(0, (0, 1), "a"),
            set(1, (2, 3), "b"),
            get(2, (5, 6), Some("a")),
        ];
        let eventual = Consistency::Eventual {
            staleness_nanos: bound_ms * MS,
        };
        let verdict = verdict(ops, eventual);
        assert_eq!(
            matches!(verdict, Verdict::Linearizable(_)),
            legal,
            "{verdict:?}"
        );
    }

    #[rstest]
    #[case::empty(vec![])]
    #[case::only_failed_operations(vec![lost(set(0, (0, 1), "a")), lost(get(1, (0, 1), None))])]
    #[case::only_writes(vec![set(0, (0, 1), "a"), set(1, (0, 1), "b")])]
    fn a_history_with_nothing_to_judge_is_unknown(#[case] ops: Vec<Op>) {
        let verdict = verdict(ops, LINEARIZABLE);
        assert!(matches!(verdict, Verdict::Unknown { .. }), "{verdict:?}");
    }

    #[rstest]
    #[case::an_entry_gone_early(vec![set(0, (0, 1), "a"), get(1, (2, 3), None)], true)]
    #[case::an_evicted_entry_back_again(vec![
        set(0, (0, 1), "a"), get(1, (2, 3), None), get(1, (4, 5), Some("a")),
    ], false)]
    #[case::a_stale_read(vec![set(0, (0, 1), "a"), set(1, (2, 3), "b"), get(2, (4, 5), Some("a"))], false)]
    fn a_store_that_may_evict_may_lose_entries_but_never_bring_them_back(
        #[case] ops: Vec<Op>,
        #[case] legal: bool,
    ) {
        let mut evicting = history(ops, LINEARIZABLE);
        evicting.may_evict = true;
        let verdict = check_history(&evicting, Duration::from_secs(5));
        assert_eq!(
            matches!(verdict, Verdict::Linearizable(_)),
            legal,
            "{verdict:?}"
        );
    }

    #[rstest]
    #[case::stale_read(
        vec![set(0, (0, 1), "a"), set(1, (2, 3), "b"), get(2, (4, 5), Some("a")), get(2, (6, 7), Some("b"))],
        Answered::Value(Some("b".to_owned()))
    )]
    #[case::delete_that_missed_its_entry(vec![set(0, (0, 1), "a"), delete(1, (2, 3), false)], Answered::Bool(true))]
    #[case::lost_write(vec![set(0, (0, 1), "a"), exists(1, (2, 3), false)], Answered::Bool(true))]
    #[case::read_of_a_deleted_value(
        vec![set(0, (0, 1), "a"), delete(1, (2, 3), true), get(2, (4, 5), Some("a"))],
        Answered::Value(None)
    )]
    #[case::read_past_the_expiry_window(
        vec![set_ttl(0, (0, 1), "a", 100), get(1, (200, 201), Some("a"))],
        Answered::Value(None)
    )]
    #[case::read_before_the_expiry_window(
        vec![set_ttl(0, (0, 1), "a", 100), exists(1, (50, 51), false)],
        Answered::Bool(true)
    )]
    fn a_violation_names_the_answer_the_model_expected(
        #[case] ops: Vec<Op>,
        #[case] answer: Answered,
    ) {
        let Verdict::NotLinearizable(violation) = verdict(ops, LINEARIZABLE) else {
            panic!("must be rejected");
        };
        let (index, expected) = violation.expected.expect("a certain answer");
        assert_eq!(expected, answer);
        assert!(!violation.explained.contains(&index));
    }

    #[test]
    fn running_out_of_time_is_unknown_never_a_pass() {
        // Twenty overlapping writes and a read no order explains: the search must try many
        // orders before it can say so, and a zero budget stops it first.
        let mut ops: Vec<Op> = (0..20)
            .map(|n| set(n, (0, 1000), &format!("v{n}")))
            .collect();
        ops.push(get(20, (2000, 2001), Some("never")));
        let verdict = check_history(&history(ops, LINEARIZABLE), Duration::ZERO);
        assert!(matches!(verdict, Verdict::Unknown { .. }), "{verdict:?}");
    }

    #[test]
    fn a_violation_is_shrunk_to_the_operations_that_show_it() {
        let mut ops = vec![set(0, (0, 1), "a")];
        // Noise: reads that agree with the model, before the stale read.
        ops.extend((0..10).map(|n| get(1, (2 + 2 * n, 3 + 2 * n), Some("a"))));
        ops.push(set(0, (30, 31), "b"));
        ops.push(get(2, (32, 33), Some("a")));
        ops.push(get(1, (40, 41), Some("b")));
        let Verdict::NotLinearizable(violation) = verdict(ops, LINEARIZABLE) else {
            panic!("a stale read must be rejected");
        };
        assert_eq!(violation.unshrunk_len, 14);
        let shown: Vec<String> = violation.ops.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["set(a)", "set(b)", "get -> a"]);
        // The longest explanation places both writes, never the stale read.
        assert_eq!(violation.explained, vec![0, 1]);
    }

    #[rstest]
    #[case::exact(100, (100, 110))]
    #[case::rounded_up(95, (95, 110))]
    #[case::below_the_precision(3, (3, 20))]
    fn the_expiry_window_spans_the_ttl_to_its_rounded_up_value_plus_the_precision(
        #[case] ttl_ms: u64,
        #[case] window_ms: (u64, u64),
    ) {
        assert_eq!(
            TEN_MS.window(ttl_ms * MS),
            (window_ms.0 * MS, window_ms.1 * MS)
        );
    }
}
