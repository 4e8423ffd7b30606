//! The meta text protocol as bytes: keys, expiry numbers, command lines, and what reply
//! lines mean. No I/O here, so every rule is a table-driven unit test.

use std::time::Duration;

use cachekit_core::{sanitize_server_text, BackendError, ErrorKind, TtlSupport};

/// Memcached's limit on the key token of a command (`KEY_MAX_LENGTH`). With the meta `b`
/// flag it applies to the base64 text, before decoding.
pub const MAX_ENCODED_KEY_BYTES: usize = 250;

/// The longest raw key (prefix included) whose padded base64 form fits in
/// [`MAX_ENCODED_KEY_BYTES`]: 62 groups of 3 bytes become 248 characters; 187 bytes would
/// need 252. Memcached 1.6.18 refuses unpadded base64 (`CLIENT_ERROR error decoding key`),
/// so the padding cannot be dropped to win a byte or two.
pub const MAX_RAW_KEY_BYTES: usize = MAX_ENCODED_KEY_BYTES / 4 * 3;

/// The largest exptime memcached reads as "seconds from now" (`REALTIME_MAXDELTA`, 30
/// days); a larger number is an absolute Unix time on the server's clock.
pub const RELATIVE_EXPTIME_MAX: u64 = 30 * 24 * 60 * 60;

/// The ttl precision this backend declares.
///
/// Memcached's clock is a whole-second counter ticked by a timer whose phase is set by
/// when the process started, so an exptime of N seconds ends the entry somewhere between
/// N-1 and N seconds after the set, and the client cannot tell where. That timer runs on
/// the server's event loop, and on a busy host it fires late: the counter then lags by a
/// further second, and an entry set meanwhile ends a second sooner still. Never expiring
/// early takes N = ceil(ttl) + [`EXPTIME_MARGIN_SECS`], which for a fractional ttl ends
/// the entry up to (not including) three seconds after the ttl.
pub const TTL_PRECISION: Duration = Duration::from_secs(3);

/// The whole seconds added to a ttl rounded up: one for the second already under way when
/// the set lands, one for a clock tick the server's timer fires late (see
/// [`TTL_PRECISION`]).
pub const EXPTIME_MARGIN_SECS: u64 = 2;

/// `sizeof(item)` of a 64-bit memcached 1.6 build: the per-item header every stored
/// value pays, measured against 1.6.18 (see [`value_limit`]).
pub const ITEM_HEADER_BYTES: usize = 48;

/// What an item stores besides header, key and value: the key's terminating NUL and the
/// value's trailing `\r\n`, which memcached keeps with the data.
pub const ITEM_TERMINATOR_BYTES: usize = 3;

/// The CAS number stored in every item unless the server runs with `-C`.
pub const CAS_BYTES: usize = 8;

/// The longest reply line read. Every line this client asks for (`VA <size>`, `HD`,
/// `STAT <name> <value>`, `SERVER_ERROR <text>`) is far shorter; a longer one means the
/// stream is not what it should be, and it is not buffered without bound.
pub const MAX_REPLY_LINE_BYTES: usize = 4096;

/// The most `STAT` lines read from one `stats` reply (1.6.18 sends about 90).
pub const MAX_STATS_LINES: usize = 1024;

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard, padded base64 (RFC 4648 §4), the form memcached's `b` flag decodes.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n].map(|s| char::from(BASE64[(s & 63) as usize]));
        let kept = group.len() + 1;
        for (i, c) in sextets.into_iter().enumerate() {
            out.push(if i < kept { c } else { '=' });
        }
    }
    out
}

/// The key token of a command: `prefix + key`, base64-encoded. The caller has checked the
/// length against [`MAX_RAW_KEY_BYTES`] minus the prefix.
pub fn wire_key(prefix: &str, key: &str) -> String {
    let mut raw = Vec::with_capacity(prefix.len() + key.len());
    raw.extend_from_slice(prefix.as_bytes());
    raw.extend_from_slice(key.as_bytes());
    base64(&raw)
}

/// The expiry sent with a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No `T` flag: the entry does not expire.
    Never,
    /// `T<n>`, n ≤ [`RELATIVE_EXPTIME_MAX`]: n seconds from now on the server's clock.
    Relative(u64),
    /// n seconds from now, more than memcached takes as relative: sent as the server's
    /// current time (from `stats`) plus n, which memcached turns back into exactly the
    /// relative n. The server's clock, not ours, so a skewed client clock cannot shift it.
    AfterServerNow(u64),
}

/// The expiry for a validated ttl: the whole seconds memcached needs so that the entry
/// lives at least `ttl` (and at least [`TTL_PRECISION`]) and is gone before
/// `ttl + TTL_PRECISION`.
pub fn expiry_for(ttl: Option<Duration>) -> Expiry {
    let Some(ttl) = ttl else {
        return Expiry::Never;
    };
    let ttl = ttl.max(TTL_PRECISION);
    let whole = TtlSupport::SECONDS.round_up(ttl).as_secs() + EXPTIME_MARGIN_SECS;
    if whole <= RELATIVE_EXPTIME_MAX {
        Expiry::Relative(whole)
    } else {
        Expiry::AfterServerNow(whole)
    }
}

/// `ms <key> <len> b [T<exptime>]\r\n`, given the server's current time for an
/// [`Expiry::AfterServerNow`].
pub fn set_header(wire_key: &str, len: usize, expiry: Expiry, server_now: u64) -> Vec<u8> {
    let exptime = match expiry {
        Expiry::Never => None,
        Expiry::Relative(seconds) => Some(seconds),
        Expiry::AfterServerNow(seconds) => Some(server_now.saturating_add(seconds)),
    };
    let line = match exptime {
        None => format!("ms {wire_key} {len} b\r\n"),
        Some(exptime) => format!("ms {wire_key} {len} b T{exptime}\r\n"),
    };
    line.into_bytes()
}

/// `mg <key> b v\r\n`: the value of a live entry.
pub fn get_command(wire_key: &str) -> Vec<u8> {
    format!("mg {wire_key} b v\r\n").into_bytes()
}

/// `mg <key> b\r\n`: whether a live entry exists, without sending its value.
pub fn exists_command(wire_key: &str) -> Vec<u8> {
    format!("mg {wire_key} b\r\n").into_bytes()
}

/// `md <key> b\r\n`.
pub fn delete_command(wire_key: &str) -> Vec<u8> {
    format!("md {wire_key} b\r\n").into_bytes()
}

/// One reply line, by its first token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `HD`: success, no value.
    Hd,
    /// `NF`: nothing to delete.
    Nf,
    /// `EN`: no live entry.
    En,
    /// `VA <size>`: a value of that many bytes follows.
    Va(usize),
    /// `STAT <name> <value>`.
    Stat(String, String),
    /// `END` of a `stats` reply.
    End,
    /// `VERSION <text>`.
    Version(String),
    /// Anything else: an error reply or a line this client never asks for.
    Other,
}

/// Reads the first token(s) of a reply line. `max_value` bounds a `VA` size: a larger one
/// is a protocol error, never an allocation.
pub fn parse_line(line: &[u8], max_value: usize) -> Result<Line, BackendError> {
    let mut tokens = line.split(|&b| b == b' ');
    let first = tokens.next().unwrap_or_default();
    Ok(match first {
        b"HD" => Line::Hd,
        b"NF" => Line::Nf,
        b"EN" if line == b"EN" => Line::En,
        b"END" if line == b"END" => Line::End,
        b"VA" => {
            let size = tokens.next().unwrap_or_default();
            let size = parse_decimal(size).ok_or_else(|| {
                BackendError::protocol(format!("malformed value header {}", quote(line)))
            })?;
            if size > max_value {
                return Err(BackendError::protocol(format!(
                    "the server announced a value of {size} bytes, more than the {max_value} \
                     it can store ({})",
                    quote(line)
                )));
            }
            Line::Va(size)
        }
        b"STAT" => {
            let name = tokens.next().unwrap_or_default();
            let value = line.get(5 + name.len() + 1..).unwrap_or_default();
            Line::Stat(
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )
        }
        b"VERSION" => {
            Line::Version(String::from_utf8_lossy(line.get(8..).unwrap_or_default()).into_owned())
        }
        _ => Line::Other,
    })
}

/// Digits only, no sign or spaces, no overflow.
fn parse_decimal(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// The error a reply line stands for when it is not the success `operation` expects.
pub fn error_for(operation: &str, line: &[u8]) -> BackendError {
    let (kind, what) = if line.starts_with(b"SERVER_ERROR object too large") {
        (ErrorKind::ValueTooLarge, "the server refused the value")
    } else if line.starts_with(b"SERVER_ERROR") {
        // "out of memory storing object" and friends: the server is in trouble, the
        // request was fine, and the same request may work later.
        (ErrorKind::Unavailable, "the server failed")
    } else if line.starts_with(b"CLIENT_ERROR") || line == b"ERROR" {
        (ErrorKind::Protocol, "the server refused the command")
    } else {
        (ErrorKind::Protocol, "unexpected reply")
    };
    BackendError::new(kind, format!("{operation}: {what}: {}", quote(line)))
}

/// Server text for an error message, in quotes: escaped and capped by the sanitiser every
/// backend shares, with non-UTF-8 bytes shown as U+FFFD.
pub fn quote(line: &[u8]) -> String {
    format!(
        "\"{}\"",
        sanitize_server_text(&String::from_utf8_lossy(line))
    )
}

/// The bytes one item costs beyond its key and value.
pub fn item_overhead(cas_enabled: bool) -> usize {
    ITEM_HEADER_BYTES + ITEM_TERMINATOR_BYTES + if cas_enabled { CAS_BYTES } else { 0 }
}

/// The largest value memcached stores under a key of `key_bytes` raw bytes: its item
/// (header + key + NUL + value + CRLF + CAS) must fit in `item_size_max`.
///
/// Measured against memcached 1.6.18 by bisection (`-I 1m`: 1 048 331 bytes under a
/// 186-byte key, 1 048 516 under a 1-byte key; `-I 1k -o slab_chunk_max=1024`: 779;
/// `-I 4k`: 3 851; with `-C` 8 bytes more each), one byte more answers
/// `SERVER_ERROR object too large for cache`.
pub fn value_limit(item_size_max: usize, cas_enabled: bool, key_bytes: usize) -> usize {
    item_size_max.saturating_sub(item_overhead(cas_enabled) + key_bytes)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use cachekit_core::{ELISION_MARKER, MAX_SERVER_TEXT_CHARS};

    #[rstest]
    #[case::empty(b"", "")]
    #[case::one(b"f", "Zg==")]
    #[case::two(b"fo", "Zm8=")]
    #[case::three(b"foo", "Zm9v")]
    #[case::six(b"foobar", "Zm9vYmFy")]
    #[case::high_bytes(b"\xff\xfe\xfd", "//79")]
    #[case::space_and_newline(b"a b\n", "YSBiCg==")]
    #[case::nul(b"\0", "AA==")]
    fn base64_matches_rfc_4648(#[case] raw: &[u8], #[case] encoded: &str) {
        assert_eq!(base64(raw), encoded);
    }

    #[rstest]
    #[case::prefix_and_key("p:", "k", "cDpr")]
    #[case::no_prefix("", "日本", "5pel5pys")]
    #[case::control_characters("", "tab\there\r\n", "dGFiCWhlcmUNCg==")]
    fn wire_keys_encode_prefix_and_key_together(
        #[case] prefix: &str,
        #[case] key: &str,
        #[case] wire: &str,
    ) {
        assert_eq!(wire_key(prefix, key), wire);
    }

    #[rstest]
    #[case::longest(MAX_RAW_KEY_BYTES, 248)]
    #[case::one_more(MAX_RAW_KEY_BYTES + 1, 252)]
    fn the_raw_key_limit_is_the_last_that_fits_250_base64_characters(
        #[case] raw: usize,
        #[case] encoded: usize,
    ) {
        let len = base64(&vec![b'k'; raw]).len();
        assert_eq!(len, encoded);
        assert_eq!(len <= MAX_ENCODED_KEY_BYTES, raw <= MAX_RAW_KEY_BYTES);
    }

    const DAY: u64 = 24 * 3600;

    #[rstest]
    #[case::no_ttl(None, Expiry::Never)]
    #[case::one_nanosecond(Some(Duration::from_nanos(1)), Expiry::Relative(5))]
    #[case::one_second(Some(Duration::from_secs(1)), Expiry::Relative(5))]
    #[case::the_precision(Some(Duration::from_secs(3)), Expiry::Relative(5))]
    #[case::just_over_the_precision(Some(Duration::from_millis(3001)), Expiry::Relative(6))]
    #[case::fractional(Some(Duration::from_millis(3600)), Expiry::Relative(6))]
    #[case::whole(Some(Duration::from_secs(60)), Expiry::Relative(62))]
    #[case::thirty_days_minus_three(Some(Duration::from_secs(30 * DAY - 3)), Expiry::Relative(30 * DAY - 1))]
    #[case::thirty_days_minus_two(Some(Duration::from_secs(30 * DAY - 2)), Expiry::Relative(30 * DAY))]
    #[case::thirty_days_minus_one(Some(Duration::from_secs(30 * DAY - 1)), Expiry::AfterServerNow(30 * DAY + 1))]
    #[case::thirty_days_minus_a_fraction(Some(Duration::from_secs(30 * DAY) - Duration::from_millis(700)), Expiry::AfterServerNow(30 * DAY + 2))]
    #[case::thirty_days(Some(Duration::from_secs(30 * DAY)), Expiry::AfterServerNow(30 * DAY + 2))]
    #[case::thirty_days_and_a_fraction(Some(Duration::from_secs(30 * DAY) + Duration::from_millis(300)), Expiry::AfterServerNow(30 * DAY + 3))]
    fn ttls_become_whole_seconds_that_never_expire_early(
        #[case] ttl: Option<Duration>,
        #[case] expiry: Expiry,
    ) {
        assert_eq!(expiry_for(ttl), expiry);
    }

    #[rstest]
    #[case::never(Expiry::Never, "ms a2V5 3 b\r\n")]
    #[case::relative(Expiry::Relative(61), "ms a2V5 3 b T61\r\n")]
    #[case::relative_maximum(Expiry::Relative(RELATIVE_EXPTIME_MAX), "ms a2V5 3 b T2592000\r\n")]
    #[case::absolute(Expiry::AfterServerNow(RELATIVE_EXPTIME_MAX + 1), "ms a2V5 3 b T1802592001\r\n")]
    fn set_headers_carry_the_exptime_memcached_reads(#[case] expiry: Expiry, #[case] line: &str) {
        let header = set_header("a2V5", 3, expiry, 1_800_000_000);
        assert_eq!(String::from_utf8_lossy(&header), line);
    }

    #[rstest]
    #[case::stored(b"HD", Line::Hd)]
    #[case::stored_with_flags(b"HD t12", Line::Hd)]
    #[case::not_found(b"NF", Line::Nf)]
    #[case::miss(b"EN", Line::En)]
    #[case::value(b"VA 3", Line::Va(3))]
    #[case::empty_value(b"VA 0", Line::Va(0))]
    #[case::value_with_flags(b"VA 10 t5 f0", Line::Va(10))]
    #[case::value_at_the_cap(b"VA 1000", Line::Va(1000))]
    #[case::stat(b"STAT item_size_max 1048576", Line::Stat("item_size_max".into(), "1048576".into()))]
    #[case::stat_with_spaces(b"STAT x a b", Line::Stat("x".into(), "a b".into()))]
    #[case::stat_without_value(b"STAT", Line::Stat(String::new(), String::new()))]
    #[case::end(b"END", Line::End)]
    #[case::version(b"VERSION 1.6.18", Line::Version("1.6.18".into()))]
    #[case::server_error(b"SERVER_ERROR out of memory storing object", Line::Other)]
    #[case::en_with_junk(b"ENX", Line::Other)]
    #[case::empty(b"", Line::Other)]
    #[case::binary(b"\xff\x00\x01", Line::Other)]
    fn reply_lines_are_read_by_their_first_token(#[case] line: &[u8], #[case] expected: Line) {
        assert_eq!(parse_line(line, 1000).ok(), Some(expected));
    }

    #[rstest]
    #[case::over_the_cap(b"VA 1001")]
    #[case::huge(b"VA 99999999999999999999999999")]
    #[case::negative(b"VA -1")]
    #[case::signed(b"VA +1")]
    #[case::not_a_number(b"VA abc")]
    #[case::missing(b"VA")]
    #[case::double_space(b"VA  3")]
    fn bad_value_headers_are_protocol_errors(#[case] line: &[u8]) {
        let err = parse_line(line, 1000).expect_err("must be refused");
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    }

    #[rstest]
    #[case::too_large(b"SERVER_ERROR object too large for cache", ErrorKind::ValueTooLarge)]
    #[case::out_of_memory(b"SERVER_ERROR out of memory storing object", ErrorKind::Unavailable)]
    #[case::other_server_error(b"SERVER_ERROR temporary failure", ErrorKind::Unavailable)]
    #[case::client_error(b"CLIENT_ERROR bad command line format", ErrorKind::Protocol)]
    #[case::error(b"ERROR", ErrorKind::Protocol)]
    #[case::not_stored(b"NS", ErrorKind::Protocol)]
    #[case::garbage(b"\x1b[31mred", ErrorKind::Protocol)]
    fn error_replies_map_to_kinds(#[case] line: &[u8], #[case] kind: ErrorKind) {
        assert_eq!(error_for("set", line).kind(), kind);
    }

    #[test]
    fn out_of_memory_keeps_the_servers_words() {
        let err = error_for("set", b"SERVER_ERROR out of memory storing object");
        assert!(
            err.message().contains("out of memory storing object"),
            "{err}"
        );
    }

    #[test]
    fn quoted_server_text_is_escaped_and_capped() {
        assert_eq!(quote(b"a\nb\x1b"), "\"a\\nb\\u{1b}\"");
        let long = vec![b'x'; 10_000];
        let quoted = quote(&long);
        assert!(
            quoted.chars().count() < MAX_SERVER_TEXT_CHARS + 20,
            "{quoted}"
        );
        assert!(quoted.ends_with(&format!("{ELISION_MARKER}\"")), "{quoted}");
    }

    #[rstest]
    #[case::default_1m_longest_key(1 << 20, true, 186, 1_048_331)]
    #[case::default_1m_shortest_key(1 << 20, true, 1, 1_048_516)]
    #[case::without_cas(1 << 20, false, 186, 1_048_339)]
    #[case::one_kilobyte(1024, true, 186, 779)]
    #[case::four_kilobytes(4096, true, 186, 3851)]
    #[case::nonsense(10, true, 186, 0)]
    fn value_limits_match_what_memcached_1_6_18_stored(
        #[case] item_size_max: usize,
        #[case] cas: bool,
        #[case] key: usize,
        #[case] limit: usize,
    ) {
        assert_eq!(value_limit(item_size_max, cas, key), limit);
    }
}
