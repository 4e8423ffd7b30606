//! Text a server sent, made safe to put in an error message, a log line or a terminal.

/// Most characters of server-supplied text kept in an error message or a health detail
/// (256), counted after escaping.
///
/// Server text (an HTTP error body's `error`, a Redis or memcached error line, health
/// fields) is escaped first: control characters
/// (C0, DEL, C1, so ANSI escape sequences, CR and LF too) and the Unicode bidi and line
/// separator controls become visible escapes like `\u{1b}`, `\r`, `\n`, so that it cannot
/// forge log lines or repaint a terminal. Text longer than this ends in [`ELISION_MARKER`].
pub const MAX_SERVER_TEXT_CHARS: usize = 256;

/// Appended where server text was cut, by [`MAX_SERVER_TEXT_CHARS`] or because what the
/// server sent was itself cut short (a byte cap, a read deadline, a broken connection), so
/// that nothing looks silently truncated.
pub const ELISION_MARKER: &str = "…[elided]";

/// Server text made safe to show: see [`MAX_SERVER_TEXT_CHARS`].
pub fn sanitize_server_text(text: &str) -> String {
    sanitize_server_text_part(text, true)
}

/// [`sanitize_server_text`] of text that may be only the start of what the server sent
/// (`whole` false), which then ends in [`ELISION_MARKER`] whatever its length.
pub fn sanitize_server_text_part(text: &str, whole: bool) -> String {
    let mut shown = String::new();
    let mut shown_chars = 0;
    let mut piece = String::new();
    for c in text.chars() {
        piece.clear();
        match c {
            '\t' | '\r' | '\n' => piece.extend(c.escape_default()),
            c if c.is_control() || is_layout_control(c) => piece.extend(c.escape_unicode()),
            c => piece.push(c),
        }
        // An escape is kept whole or not at all, so a cut never leaves half of one.
        let piece_chars = piece.chars().count();
        if shown_chars + piece_chars > MAX_SERVER_TEXT_CHARS {
            shown.push_str(ELISION_MARKER);
            return shown;
        }
        shown.push_str(&piece);
        shown_chars += piece_chars;
    }
    if !whole {
        shown.push_str(ELISION_MARKER);
    }
    shown
}

/// Invisible characters that reorder or break displayed text: the bidi controls (which can
/// make `exe.txt` read as `txt.exe`) and the Unicode line and paragraph separators.
fn is_layout_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::plain_text_is_unchanged("value too large", "value too large")]
    #[case::empty_stays_empty("", "")]
    #[case::unicode_is_kept("clé trop longue ✓", "clé trop longue ✓")]
    #[case::ansi_colour_is_escaped("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m")]
    #[case::cr_lf_are_escaped("line\r\nINFO forged", "line\\r\\nINFO forged")]
    #[case::tab_is_escaped("a\tb", "a\\tb")]
    #[case::nul_and_del_are_escaped("a\0b\u{7f}", "a\\u{0}b\\u{7f}")]
    #[case::c1_csi_is_escaped("\u{9b}31m", "\\u{9b}31m")]
    #[case::bidi_override_is_escaped("\u{202e}txt.exe", "\\u{202e}txt.exe")]
    #[case::line_separator_is_escaped("a\u{2028}b", "a\\u{2028}b")]
    #[case::at_the_limit_is_whole(&"x".repeat(MAX_SERVER_TEXT_CHARS), &"x".repeat(MAX_SERVER_TEXT_CHARS))]
    #[case::over_the_limit_is_marked(
        &"x".repeat(MAX_SERVER_TEXT_CHARS + 1),
        &format!("{}{ELISION_MARKER}", "x".repeat(MAX_SERVER_TEXT_CHARS))
    )]
    #[case::limit_counts_characters_not_bytes(
        &"é".repeat(MAX_SERVER_TEXT_CHARS),
        &"é".repeat(MAX_SERVER_TEXT_CHARS)
    )]
    #[case::an_escape_is_never_split(
        &format!("{}\n", "x".repeat(MAX_SERVER_TEXT_CHARS - 1)),
        &format!("{}{ELISION_MARKER}", "x".repeat(MAX_SERVER_TEXT_CHARS - 1))
    )]
    fn server_text_is_escaped_and_capped(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(sanitize_server_text(text), shown);
    }
}
