//! Every character that some layer treats specially — a URL, a shell, a file system, a
//! protocol's delimiter, a text normaliser — is an ordinary part of a key, each on its own.
//!
//! For a character `c`, the keys `a{c}b`, `ab`, `a{c}{c}b`, `{c}ab`, `ab{c}`, `a_b`, `a%XXb`
//! (`c` percent-encoded), the four Unicode normal forms of `a{c}b`, and `a{p}b` for each
//! character `p` some layer is known to turn `c` into (`+` into a space, `\` into `/`) must
//! all be different keys: a store that drops, doubles, collapses, replaces, normalises or
//! decodes `c` makes two of them one. For a control character, the backslash escapes a
//! sanitiser writes for it (`a\nb` with a real backslash, `a\x1bb`) are other keys too.

use unicode_normalization::UnicodeNormalization;

use crate::case::{Case, CaseFn, Family, Timing};
use crate::{CaseResult, Ctx};

fn percent_encoded(c: char) -> String {
    let mut utf8 = [0u8; 4];
    c.encode_utf8(&mut utf8)
        .bytes()
        .map(|byte| format!("%{byte:02X}"))
        .collect()
}

/// The spellings around `c`, without duplicates (for `_`, `a_b` is `a{c}b`).
fn spellings(c: char, partners: &[char]) -> Vec<String> {
    let with_c = format!("a{c}b");
    let mut names = vec![
        format!("a{c}b"),
        "ab".to_owned(),
        format!("a{c}{c}b"),
        format!("{c}ab"),
        format!("ab{c}"),
        "a_b".to_owned(),
        format!("a{}b", percent_encoded(c)),
        with_c.nfc().collect(),
        with_c.nfd().collect(),
        with_c.nfkc().collect(),
        with_c.nfkd().collect(),
    ];
    names.extend(partners.iter().map(|p| format!("a{p}b")));
    // How a layer that escapes control characters writes `c`: a key already holding
    // those characters literally must stay another key.
    names.extend(
        escape_spellings(c)
            .into_iter()
            .map(|escape| format!("a{escape}b")),
    );
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

/// The backslash escapes a line protocol or a hand-written sanitiser writes for a
/// control character `c` (`\n`, `\0`, `\x1b`, `\u001b`).
fn escape_spellings(c: char) -> Vec<String> {
    if !c.is_control() {
        return Vec::new();
    }
    let code = u32::from(c);
    let mut escapes = vec![format!("\\u{code:04x}"), c.escape_default().to_string()];
    if code < 0x100 {
        escapes.push(format!("\\x{code:02x}"));
    }
    let short = match c {
        '\0' => Some("\\0"),
        '\u{7}' => Some("\\a"),
        '\u{8}' => Some("\\b"),
        '\u{b}' => Some("\\v"),
        '\u{c}' => Some("\\f"),
        '\u{1b}' => Some("\\e"),
        _ => None,
    };
    escapes.extend(short.map(str::to_owned));
    escapes
}

async fn character_is_plain(ctx: Ctx, c: char, partners: &[char]) -> CaseResult {
    let keys: Vec<String> = spellings(c, partners)
        .iter()
        .map(|name| ctx.key(name))
        .collect();
    let value = |i: usize| format!("spelling #{i} of {c:?}");
    for (i, key) in keys.iter().enumerate() {
        ctx.set(key, value(i).as_bytes(), None).await?;
    }
    let check = format!("each spelling around {c:?} reads back its own value");
    for (i, key) in keys.iter().enumerate() {
        ctx.expect_get(&check, key, Some(value(i).as_bytes()))
            .await?;
    }
    ctx.expect_exists(&check, &keys[0], true).await?;
    // Deleting the spelling with `c` must leave every other one alone.
    ctx.expect_delete(&check, &keys[0], true).await?;
    let check = format!("the other spellings after deleting the one with {c:?}");
    for (i, key) in keys.iter().enumerate().skip(1) {
        ctx.expect_get(&check, key, Some(value(i).as_bytes()))
            .await?;
    }
    ctx.expect_absent(&check, &keys[0]).await
}

macro_rules! characters {
    ($($name:ident => $c:literal, $shown:literal $(, like [$($partner:literal),*])?;)*) => {
        $(
            #[doc = concat!("The character ", $shown, " is an ordinary part of a key.")]
            pub async fn $name(ctx: Ctx) -> CaseResult {
                character_is_plain(ctx, $c, &[$($($partner),*)?]).await
            }
        )*

        /// One case per character, for the registry.
        pub(crate) fn cases() -> Vec<Case> {
            vec![$(
                Case {
                    family: Family::KeyCharacters,
                    name: stringify!($name),
                    rule: concat!(
                        $shown,
                        " is an ordinary key character: never dropped, doubled, replaced or decoded"
                    ),
                    needs: &[],
                    timing: Timing::Instant,
                    run: CaseFn::Backend(|ctx| Box::pin($name(ctx))),
                },
            )*]
        }
    };
}

characters! {
    slash => '/', "`/`", like ['\\'];
    backslash => '\\', "`\\`", like ['/'];
    percent => '%', "`%`";
    plus => '+', "`+`", like [' ', '-'];
    space => ' ', "a space", like ['+', '\u{a0}'];
    question_mark => '?', "`?`";
    hash => '#', "`#`";
    ampersand => '&', "`&`";
    equals => '=', "`=`";
    semicolon => ';', "`;`";
    colon => ':', "`:`";
    at_sign => '@', "`@`";
    tilde => '~', "`~`";
    asterisk => '*', "`*`";
    single_quote => '\'', "`'`", like ['\u{2019}'];
    double_quote => '"', "`\"`", like ['\u{201d}'];
    less_than => '<', "`<`";
    greater_than => '>', "`>`";
    pipe => '|', "`|`";
    caret => '^', "`^`";
    backtick => '`', "a backtick";
    braces => '{', "`{`";
    brackets => '[', "`[`";
    comma => ',', "`,`";
    dollar => '$', "`$`";
    exclamation_mark => '!', "`!`";
    dot => '.', "`.`", like ['\u{3002}'];
    dash => '-', "`-`", like ['\u{2010}'];
    underscore => '_', "`_`";
    tab => '\t', "a tab", like [' '];
    line_feed => '\n', "a line feed", like ['\r'];
    carriage_return => '\r', "a carriage return", like ['\n'];
    vertical_tab => '\u{b}', "a vertical tab", like ['\n'];
    form_feed => '\u{c}', "a form feed", like ['\n'];
    file_separator => '\u{1c}', "a file separator (U+001C)";
    group_separator => '\u{1d}', "a group separator (U+001D)";
    record_separator => '\u{1e}', "a record separator (U+001E)";
    unit_separator => '\u{1f}', "a unit separator (U+001F)";
    next_line => '\u{85}', "a next-line control (U+0085)", like ['\n'];
    line_separator => '\u{2028}', "a line separator (U+2028)", like ['\n'];
    paragraph_separator => '\u{2029}', "a paragraph separator (U+2029)", like ['\n'];
    nul => '\0', "NUL";
    escape => '\u{1b}', "ESC";
    delete_control => '\u{7f}', "DEL";
    no_break_space => '\u{a0}', "a no-break space", like [' '];
    byte_order_mark => '\u{feff}', "a byte-order mark";
    zero_width_space => '\u{200b}', "a zero-width space";
    right_to_left_override => '\u{202e}', "a right-to-left override";
    fullwidth_slash => '\u{ff0f}', "a fullwidth solidus", like ['/'];
    combining_acute => '\u{301}', "a combining acute accent";
    four_byte_emoji => '\u{1f980}', "a four-byte emoji";
    emoji_variation_selector => '\u{fe0f}', "an emoji variation selector (U+FE0F)", like ['\u{fe0e}'];
    zero_width_joiner => '\u{200d}', "a zero-width joiner";
    replacement_character => '\u{fffd}', "U+FFFD";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_distinct_and_include_the_encoded_form() {
        assert_eq!(
            spellings('/', &['\\']),
            ["a/b", "ab", "a//b", "/ab", "ab/", "a_b", "a%2Fb", "a\\b"]
        );
        assert_eq!(spellings('_', &[]).len(), 6);
        assert!(spellings('\u{301}', &[]).contains(&"\u{e1}b".to_owned()));
        assert_eq!(percent_encoded('\u{1f980}'), "%F0%9F%A6%80");
    }
}
