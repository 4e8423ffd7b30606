//! Showing a violation: a text timeline per client, and a self-contained HTML page with
//! the same timeline drawn as SVG (the way porcupine shows a history).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::check::Violation;
use super::{History, Op};

/// Environment variable: where failing histories are saved (JSON and an HTML timeline);
/// the system temporary directory's `cachekit-histories` when unset.
pub const HISTORY_DIR_ENV: &str = "CACHEKIT_HISTORY_DIR";

/// Where an operation stands in the longest explanation the search found.
fn placement(violation: &Violation, index: usize) -> Option<usize> {
    violation
        .explained
        .iter()
        .position(|placed| *placed == index)
}

fn origin(ops: &[Op]) -> u64 {
    ops.iter().map(|op| op.invoked).min().unwrap_or(0)
}

fn millis(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// The violation as text: one block per client, each operation with its interval
/// (milliseconds from the first operation shown) and where the search placed it.
pub fn text_timeline(history: &History, violation: &Violation) -> String {
    let key = history.keys.get(violation.key).map_or("?", String::as_str);
    let origin = origin(&violation.ops);
    let mut text = format!(
        "key {key:?}: no order of these {} operation(s) (shrunk from {}) explains every answer; \
         the longest explanation found places {} of them, numbered below:\n",
        violation.ops.len(),
        violation.unshrunk_len,
        violation.explained.len()
    );
    let mut clients: Vec<usize> = violation.ops.iter().map(|op| op.client).collect();
    clients.sort_unstable();
    clients.dedup();
    for client in clients {
        let _ = writeln!(text, "  client {client}:");
        for (index, op) in violation.ops.iter().enumerate() {
            if op.client != client {
                continue;
            }
            let place = placement(violation, index)
                .map_or_else(|| "not placed".to_owned(), |n| format!("#{}", n + 1));
            let _ = writeln!(
                text,
                "    [{:>10.3} ms .. {:>10.3} ms] {:<12} {op}",
                millis(op.invoked - origin),
                millis(op.returned.saturating_sub(origin)),
                place
            );
        }
    }
    text
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained HTML page drawing the violation as one lane per client: a bar from
/// each operation's invocation to its answer, green when the longest explanation placed
/// it (with its number), red when it did not, grey when its outcome is unknown.
pub fn html_timeline(history: &History, violation: &Violation) -> String {
    const WIDTH: f64 = 1100.0;
    const LEFT: f64 = 90.0;
    const LANE: f64 = 56.0;
    let ops = &violation.ops;
    let origin = origin(ops);
    let end = ops
        .iter()
        .map(|op| op.returned)
        .max()
        .unwrap_or(origin)
        .max(origin + 1);
    // Labels start at their bar and run right: leave them room at the right edge.
    let scale = (WIDTH - LEFT - 240.0) / (end - origin) as f64;
    let mut clients: Vec<usize> = ops.iter().map(|op| op.client).collect();
    clients.sort_unstable();
    clients.dedup();
    let axis_y = 40.0 + LANE * clients.len() as f64;
    let height = axis_y + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"monospace\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (lane, client) in clients.iter().enumerate() {
        let y = 30.0 + LANE * lane as f64;
        let _ = writeln!(
            svg,
            "<text x=\"4\" y=\"{}\">client {client}</text>\
             <line x1=\"{LEFT}\" x2=\"{WIDTH}\" y1=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>",
            y + 22.0,
            y + 28.0,
            y + 28.0
        );
        for (index, op) in ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.client == *client)
        {
            let x = LEFT + (op.invoked - origin) as f64 * scale;
            let w = ((op.returned.saturating_sub(op.invoked)) as f64 * scale).max(3.0);
            let (fill, label) = match placement(violation, index) {
                _ if op.is_indeterminate() => ("#bbb", op.to_string()),
                Some(n) => ("#7c7", format!("#{} {op}", n + 1)),
                None => ("#e55", op.to_string()),
            };
            let _ = writeln!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"16\" fill=\"{fill}\" \
                 rx=\"3\"><title>{}</title></rect>\
                 <text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                y + 20.0,
                escape(&format!(
                    "{op}\ninvoked {:.3} ms, answered {:.3} ms",
                    millis(op.invoked - origin),
                    millis(op.returned.saturating_sub(origin))
                )),
                y + 15.0 - 12.0 * (index % 2) as f64,
                escape(&label)
            );
        }
    }
    // The time axis: milliseconds since the first invocation, at a round step.
    let span_ms = millis(end - origin);
    let step = axis_step(span_ms);
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{axis_y}\" y2=\"{axis_y}\" stroke=\"#888\"/>",
        LEFT + (end - origin) as f64 * scale
    );
    let mut tick = 0.0;
    while tick <= span_ms {
        let x = LEFT + tick * 1e6 * scale;
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{axis_y}\" y2=\"{:.1}\" stroke=\"#888\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} ms</text>",
            axis_y + 5.0,
            axis_y + 18.0,
            format_tick(tick)
        );
        tick += step;
    }
    svg.push_str("</svg>\n");
    let key = history.keys.get(violation.key).map_or("?", String::as_str);
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>cachekit: not \
         linearizable</title></head>\n<body style=\"font-family: sans-serif\">\n\
         <h2>{} history on key {}: not linearizable</h2>\n<p>{} operation(s), shrunk from {}; \
         seed {}; {} client(s); model {:?}. Green bars are the longest order the checker could \
         explain, numbered in that order; red ones are where every explanation broke down; \
         grey ones have an unknown outcome. Hover a bar for its instants.</p>\n{svg}\
         <pre>{}</pre>\n</body></html>\n",
        escape(&history.backend),
        escape(&format!("{key:?}")),
        ops.len(),
        violation.unshrunk_len,
        history.seed,
        history.clients,
        history.consistency,
        escape(&text_timeline(history, violation))
    )
}

/// A round step (1, 2 or 5 times a power of ten, in milliseconds) that puts between four
/// and ten ticks on an axis `span_ms` long.
fn axis_step(span_ms: f64) -> f64 {
    if span_ms <= 0.0 || !span_ms.is_finite() {
        return 1.0;
    }
    let rough = span_ms / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * power)
        .find(|step| span_ms / step <= 10.0)
        .unwrap_or(10.0 * power)
}

/// A tick's label: whole milliseconds when the step is, else up to three decimals.
fn format_tick(ms: f64) -> String {
    let text = format!("{ms:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Saves the history as JSON (and the violation as an HTML timeline) in
/// [`HISTORY_DIR_ENV`]'s directory, named after its backend, `name` and seed; says where.
pub fn save(history: &History, violation: Option<&Violation>, name: &str) -> String {
    let dir = std::env::var_os(HISTORY_DIR_ENV).map_or_else(
        || std::env::temp_dir().join("cachekit-histories"),
        PathBuf::from,
    );
    let stem = format!("{}-{name}-{}", history.backend, history.seed);
    let json = dir.join(format!("{stem}.json"));
    let shrunk_json = dir.join(format!("{stem}.shrunk.json"));
    let html = dir.join(format!("{stem}.html"));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&json, history.to_json()))
        .and_then(|()| match violation {
            Some(violation) => {
                // The shrunk sub-history as a history of its own, loadable and checkable
                // like the whole one.
                let shrunk = History {
                    ops: violation.ops.clone(),
                    ..history.clone()
                };
                std::fs::write(&shrunk_json, shrunk.to_json())
                    .and_then(|()| std::fs::write(&html, html_timeline(history, violation)))
            }
            None => Ok(()),
        });
    match (written, violation) {
        (Err(err), _) => format!("the history could not be saved in {}: {err}", dir.display()),
        (Ok(()), Some(_)) => format!(
            "history saved: {} (shrunk: {}; timeline: {})",
            json.display(),
            shrunk_json.display(),
            html.display()
        ),
        (Ok(()), None) => format!("history saved: {}", json.display()),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::{axis_step, format_tick};

    #[rstest]
    #[case::a_second(1000.0, 100.0)]
    #[case::a_few_milliseconds(7.0, 1.0)]
    #[case::under_a_millisecond(0.3, 0.05)]
    #[case::seconds_that_need_a_coarse_step(4300.0, 500.0)]
    #[case::nothing_to_span(0.0, 1.0)]
    fn the_axis_takes_a_round_step_with_four_to_ten_of_them(
        #[case] span_ms: f64,
        #[case] step: f64,
    ) {
        let chosen = axis_step(span_ms);
        assert!((chosen - step).abs() < 1e-9, "{chosen} for {span_ms}");
        if span_ms > 0.0 {
            let steps = span_ms / chosen;
            assert!((4.0..=10.0).contains(&steps), "{steps} steps");
        }
    }

    #[rstest]
    #[case::whole(100.0, "100")]
    #[case::zero(0.0, "0")]
    #[case::a_fraction(0.05, "0.05")]
    #[case::accumulated_float_noise(0.15000000000000002, "0.15")]
    fn ticks_are_labelled_without_trailing_zeros(#[case] ms: f64, #[case] label: &str) {
        assert_eq!(format_tick(ms), label);
    }
}
