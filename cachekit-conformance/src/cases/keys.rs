//! Keys are exact strings: never folded, trimmed, normalised, decoded or truncated.

use cachekit_core::{Bytes, ErrorKind};

use crate::failure::Operation;
use crate::{expect_error, CaseResult, Ctx, Failure};

/// Sets every key to its own value, then reads each back. Two keys that the backend
/// conflates show up as one reading the other's value.
async fn each_key_keeps_its_own_value(ctx: &Ctx, check: &str, keys: &[String]) -> CaseResult {
    for (i, key) in keys.iter().enumerate() {
        ctx.set(key, format!("value #{i}").as_bytes(), None).await?;
    }
    for (i, key) in keys.iter().enumerate() {
        let expected = format!("value #{i}");
        ctx.expect_present(check, key, expected.as_bytes()).await?;
    }
    for key in keys {
        ctx.expect_delete(check, key, true).await?;
    }
    Ok(())
}

async fn prefixed_keys_roundtrip(ctx: Ctx, check: &str, names: &[&str]) -> CaseResult {
    let keys: Vec<String> = names.iter().map(|name| ctx.key(name)).collect();
    each_key_keeps_its_own_value(&ctx, check, &keys).await
}

/// Unicode and emoji keys store and read back exactly.
pub async fn unicode_keys_roundtrip(ctx: Ctx) -> CaseResult {
    let names = [
        "é",
        "日本語",
        "🦀🔑",
        "🔑🦀",
        "??",
        "Ελληνικά",
        "\u{200b}zero-width",
        "עברית",
    ];
    prefixed_keys_roundtrip(ctx, "unicode keys each read back their own value", &names).await
}

/// Keys with spaces, tabs and newlines store and read back.
pub async fn whitespace_and_control_keys_roundtrip(ctx: Ctx) -> CaseResult {
    let names = [" ", "a b", "tab\there", "new\nline", "cr\rlf", "del\u{7f}"];
    prefixed_keys_roundtrip(
        ctx,
        "keys with whitespace each read back their own value",
        &names,
    )
    .await
}

/// Keys that look like paths are plain keys.
pub async fn path_like_keys_roundtrip(ctx: Ctx) -> CaseResult {
    let names = [
        "/",
        "a/b",
        "/leading",
        "trailing/",
        "a//b",
        "../x",
        "a/../b",
        "./x",
        "...",
        "x/..",
    ];
    prefixed_keys_roundtrip(ctx, "path-like keys each read back their own value", &names).await
}

/// Keys with URL-special characters are plain keys.
pub async fn url_special_keys_roundtrip(ctx: Ctx) -> CaseResult {
    let names = [
        "?",
        "a?b=c",
        "#",
        "a#frag",
        "%",
        "%20",
        "%zz",
        "&",
        "+",
        "a+b",
        "=",
        ";",
        "\\",
        "*",
        "~",
        "'",
        "\"",
        "<>",
        "{}",
        "|",
        "^",
        "`",
        "[]",
        ":",
        "@",
        // Redis Cluster hash tags: a client routes these by the part in braces.
        "user:{42}:name",
        "{tag}",
        "a{b}c{d}",
    ];
    prefixed_keys_roundtrip(
        ctx,
        "URL-special keys each read back their own value",
        &names,
    )
    .await
}

/// `a/b`, `a%2Fb` and `a%252Fb` are different keys.
pub async fn slash_and_encoded_slash_are_distinct(ctx: Ctx) -> CaseResult {
    let names = ["a/b", "a%2Fb", "a%2fb", "a%252Fb"];
    prefixed_keys_roundtrip(ctx, "slash and percent-encoded slash stay distinct", &names).await
}

/// Keys differing only in case, or in what a case-insensitive collation also folds
/// (hiragana and katakana), are different keys.
pub async fn case_variants_are_distinct(ctx: Ctx) -> CaseResult {
    let names = [
        "key", "KEY", "Key", "straße", "STRASSE", "\u{3042}", "\u{30a2}", "\u{304b}", "\u{30ab}",
    ];
    prefixed_keys_roundtrip(ctx, "case variants stay distinct", &names).await
}

/// NFC and NFD spellings are different keys.
pub async fn unicode_normalisation_forms_are_distinct(ctx: Ctx) -> CaseResult {
    // é precomposed vs e + combining acute; Å as letter, as A + ring, as the Ångström sign.
    let names = ["\u{e9}", "e\u{301}", "\u{c5}", "A\u{30a}", "\u{212b}"];
    prefixed_keys_roundtrip(ctx, "Unicode normalisation forms stay distinct", &names).await
}

/// Keys are not trimmed.
pub async fn whitespace_variants_are_distinct(ctx: Ctx) -> CaseResult {
    let names = ["k", " k", "k ", "k\t", "k\n"];
    prefixed_keys_roundtrip(
        ctx,
        "keys differing only in surrounding whitespace stay distinct",
        &names,
    )
    .await
}

/// delete and exists respect case: they touch only the exact key.
pub async fn delete_and_exists_respect_case(ctx: Ctx) -> CaseResult {
    let lower = ctx.key("case");
    let upper = ctx.key("CASE");
    ctx.set(&lower, b"lower", None).await?;
    ctx.expect_exists("exists of the upper-case spelling", &upper, false)
        .await?;
    ctx.expect_delete("delete of the upper-case spelling", &upper, false)
        .await?;
    ctx.expect_present(
        "the lower-case key after the upper-case delete",
        &lower,
        b"lower",
    )
    .await
}

/// A key only matches itself, not its prefixes or extensions.
pub async fn key_prefix_is_not_a_match(ctx: Ctx) -> CaseResult {
    let key = ctx.key("abc");
    ctx.set(&key, b"v", None).await?;
    for other in [ctx.key("ab"), ctx.key("abcd"), ctx.key("abc/")] {
        ctx.expect_absent("a prefix or extension of a stored key", &other)
            .await?;
    }
    // A namespacing layer that skips its namespace when a key already starts with it
    // makes `{namespace}:{key}` another name for `key`.
    let namespaces = [
        ctx.caps.backend_type.clone(),
        "cache".to_owned(),
        "cachekit".to_owned(),
    ];
    for namespace in namespaces {
        let namespaced = format!("{namespace}:{key}");
        // A name the store declares it refuses (too long, say) cannot be asked about.
        if ctx.caps.check_key(&namespaced).is_err() {
            continue;
        }
        ctx.expect_absent(
            "a stored key with a namespace written in front of it",
            &namespaced,
        )
        .await?;
    }
    Ok(())
}

/// Keys whose 32-bit hashes are equal are still different keys: a store that keys entries
/// by a hash alone makes them one. Each pair keeps its collision under the case's prefix
/// (both hashes carry equal-length collisions through a common prefix).
pub async fn keys_with_colliding_hashes_are_distinct(ctx: Ctx) -> CaseResult {
    let names = [
        // Java's String.hashCode:
        "Aa", "BB", "AaAa", "BBBB", "AaBB", "BBAa", // and CRC-32:
        "plumless", "buckeroo",
    ];
    prefixed_keys_roundtrip(
        ctx.clone(),
        "keys with equal 32-bit hashes stay distinct",
        &names,
    )
    .await?;
    // FNV-1a-32 pairs, with the case's prefix as a suffix: FNV's collisions survive a shared
    // suffix but not a shared prefix, and an index keyed by the hash alone is a common
    // shortcut.
    let keys: Vec<String> = ["costarring", "liquid", "declinate", "macallums"]
        .iter()
        .map(|name| format!("{name}-{}", ctx.prefix()))
        .filter(|key| ctx.caps.check_key(key).is_ok())
        .collect();
    each_key_keeps_its_own_value(&ctx, "keys with equal FNV-1a hashes stay distinct", &keys).await
}

/// `.` and `..` are plain keys.
pub async fn dot_segment_keys_roundtrip(ctx: Ctx) -> CaseResult {
    // The exact keys, unprefixed: a prefix would hide what dot-segment handling does to them.
    let keys = [".".to_owned(), "..".to_owned(), ctx.key("."), ctx.key("..")];
    // Values carry the run's prefix so two runs against one shared store tell theirs apart.
    for (i, key) in keys.iter().enumerate() {
        let value = format!("{}#{i}", ctx.prefix());
        ctx.set(key, value.as_bytes(), None).await?;
        ctx.expect_present(
            "dot-segment keys read back their own value",
            key,
            value.as_bytes(),
        )
        .await?;
    }
    for key in &keys {
        ctx.delete(key).await?;
    }
    Ok(())
}

/// Keys that spell the same number differently are different keys.
pub async fn numeric_spellings_are_distinct_keys(ctx: Ctx) -> CaseResult {
    // Whole keys, unprefixed: a store that turns a key into the number it reads as (a key
    // column with numeric affinity, a JSON or Lua layer parsing numbers) does so only when
    // the whole key reads as one. The number comes from the case's private prefix, so runs
    // sharing a store use different numbers.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(ctx.prefix(), &mut hasher);
    let n = 100_000_000 + std::hash::Hasher::finish(&hasher) % 800_000_000;
    let keys = [
        format!("{n}"),
        format!("0{n}"),
        format!("+{n}"),
        format!("{n}.0"),
        format!("{n}e0"),
        format!("{n}.00e0"),
        format!("0x{n:x}"),
    ];
    each_key_keeps_its_own_value(&ctx, "keys spelling one number", &keys).await
}

/// Names that a map built on a language's objects treats specially (inherited members,
/// `__proto__`) are plain keys: a set stores them, and once deleted they are absent.
pub async fn object_member_names_are_plain_keys(ctx: Ctx) -> CaseResult {
    // Whole keys, unprefixed: only the exact name is special to such a map. Nothing is
    // assumed about them before the set (a shared store may hold them), and the values
    // carry the run's prefix so two runs sharing a store tell theirs apart.
    const NAMES: [&str; 8] = [
        "__proto__",
        "constructor",
        "prototype",
        "toString",
        "hasOwnProperty",
        "valueOf",
        "__class__",
        "__dict__",
    ];
    for (i, name) in NAMES.iter().enumerate() {
        whole_key_round_trip(&ctx, name, i, "a key named like an object member").await?;
    }
    Ok(())
}

/// Sets the whole, unprefixed key `name` to a value carrying the case's prefix (so that a
/// run sharing the store sees whose it is), reads it back, deletes it and finds it gone.
async fn whole_key_round_trip(ctx: &Ctx, name: &str, i: usize, what: &str) -> CaseResult {
    let value = format!("{}#{i}", ctx.prefix());
    ctx.set(name, value.as_bytes(), None).await?;
    ctx.expect_present(
        &format!("{what} reads back its own value"),
        name,
        value.as_bytes(),
    )
    .await?;
    ctx.expect_delete(&format!("delete of {what}"), name, true)
        .await?;
    ctx.expect_absent(&format!("{what}, after its delete"), name)
        .await
}

/// Whole keys that some layer takes for something else are plain keys: PHP's `empty("0")`,
/// a `*` a purge front reads as "everything", a blank key a `isBlank` check refuses, a
/// language's null spelled out. Deleting one leaves the case's own keys alone.
pub async fn special_words_are_plain_keys(ctx: Ctx) -> CaseResult {
    // Whole keys, unprefixed, as in `object_member_names_are_plain_keys`: values carry the
    // run's prefix, and names the store declares it refuses are skipped.
    const NAMES: [&str; 9] = [
        "0",
        "*",
        " ",
        "\t",
        "null",
        "nil",
        "None",
        "undefined",
        "false",
    ];
    let own = ctx.key("own");
    ctx.set(&own, b"kept", None).await?;
    for (i, name) in NAMES.iter().enumerate() {
        if ctx.caps.check_key(name).is_err() {
            continue;
        }
        whole_key_round_trip(&ctx, name, i, "a whole key that is a special word").await?;
        ctx.expect_present(
            &format!("a key of the case's own, after a delete of the key {name:?}"),
            &own,
            b"kept",
        )
        .await?;
    }
    Ok(())
}

/// A key's first characters are kept, whatever they are.
pub async fn leading_characters_are_kept(ctx: Ctx) -> CaseResult {
    // The case's private prefix comes after the characters under test, so that they open
    // the key the kit passes to the backend.
    let rest = ctx.key("k");
    let keys: Vec<String> = ["", "/", "//", " ", "\t", ".", "./", "-", "#", ":", "_"]
        .iter()
        .map(|lead| format!("{lead}{rest}"))
        .collect();
    each_key_keeps_its_own_value(
        &ctx,
        "keys that differ only in their first characters",
        &keys,
    )
    .await
}

/// Keys declared unrepresentable fail with InvalidKey on every operation and break nothing.
pub async fn declared_unrepresentable_keys_are_rejected_cleanly(ctx: Ctx) -> CaseResult {
    for key in ctx.caps.rejected_keys.clone() {
        expect_invalid_key_everywhere(&ctx, "a key declared unrepresentable", &key).await?;
    }
    let key = ctx.key("after-rejections");
    ctx.set(&key, b"still works", None).await?;
    ctx.expect_present("a normal key after rejected keys", &key, b"still works")
        .await
}

/// The empty key fails with InvalidKey.
pub async fn empty_key_is_invalid_key(ctx: Ctx) -> CaseResult {
    expect_invalid_key_everywhere(&ctx, "the empty key", "").await
}

/// A key of exactly the declared maximum length works, whatever it is made of: the limit
/// is on the key's UTF-8 bytes, not on an escaped, encoded or re-encoded form of it.
pub async fn key_at_max_length_roundtrips(ctx: Ctx) -> CaseResult {
    let max = declared_max_key(&ctx)?;
    // One key at a time: a store may declare a very large maximum.
    for (i, (material, filler)) in MAXIMUM_KEY_MATERIALS.iter().enumerate() {
        let key = key_of_exact_length_from(&ctx, max, filler)?;
        let check = format!("a key of exactly the maximum length, made of {material}");
        let value = format!("longest #{i}");
        ctx.set(&key, value.as_bytes(), None).await?;
        ctx.expect_present(&check, &key, value.as_bytes()).await?;
        ctx.expect_delete(&check, &key, true).await?;
        // A set with a ttl may write the key somewhere else, with a limit of its own.
        if let Some(ttl) = ctx.valid_ttl() {
            ctx.set(&key, value.as_bytes(), Some(ttl)).await?;
            ctx.expect_present(&format!("{check}, set with a ttl"), &key, value.as_bytes())
                .await?;
            ctx.expect_delete(&check, &key, true).await?;
        }
    }
    // Two maximum-length keys that differ only in their last byte, one stored at a time (a
    // store may declare a very large maximum): a store that cuts keys a byte short of the
    // maximum it declares reads the first under the second.
    let mut key = key_of_exact_length_from(&ctx, max, &['k'])?;
    key.pop();
    key.push('a');
    ctx.set(&key, b"twin a", None).await?;
    let stored = key.clone();
    key.pop();
    key.push('b');
    ctx.expect_absent(
        "a maximum-length key differing only in its last byte from a stored one",
        &key,
    )
    .await?;
    ctx.expect_delete("the stored maximum-length key", &stored, true)
        .await
}

/// What the maximum-length keys are padded with: two-byte `é`; characters an escaping
/// layer lengthens (a space, a tab, `%`, a control); four-byte characters (six bytes in
/// Java's modified UTF-8); NUL (two bytes there).
const MAXIMUM_KEY_MATERIALS: [(&str, &[char]); 4] = [
    ("two-byte characters", &['é']),
    (
        "characters an escaping layer lengthens",
        &[' ', '\t', '%', '\u{1}'],
    ),
    ("four-byte characters", &['\u{1F980}']),
    ("NULs between letters", &['\0', 'n']),
];

/// A key and a value both at their declared maxima work together: the limits are separate.
pub async fn key_and_value_at_their_maxima_work_together(ctx: Ctx) -> CaseResult {
    let max_key = declared_max_key(&ctx)?;
    let max_value = ctx
        .caps
        .max_value_bytes
        .ok_or_else(|| Failure::new("the case needs a declared maximum value size"))?;
    let key = key_of_exact_length(&ctx, max_key)?;
    let value = super::values::pattern(max_value, 0x6b);
    ctx.set(&key, &value, None).await?;
    ctx.expect_present("a maximum key holding a maximum value", &key, &value)
        .await
}

/// A key over the declared maximum fails with InvalidKey and is not truncated.
pub async fn key_over_max_length_is_invalid_key(ctx: Ctx) -> CaseResult {
    let max = declared_max_key(&ctx)?;
    let key = key_of_exact_length(&ctx, max + 1)?;
    expect_invalid_key_everywhere(&ctx, "a key one byte over the maximum", &key).await?;
    // A backend that truncates would have stored the value under a shorter key.
    let mut cut = max;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    ctx.expect_absent("the truncated form of an over-long key", &key[..cut])
        .await
}

/// Rejections in a row are the caller's mistakes, not the store's failures: a circuit
/// breaker that counts them opens and refuses good requests.
pub async fn many_rejected_keys_leave_the_store_usable(ctx: Ctx) -> CaseResult {
    for attempt in 1..=REJECTIONS_IN_A_ROW {
        let set = ctx.backend.set("", Bytes::from_static(b"v"), None).await;
        expect_error(
            &format!("set of the empty key, rejection #{attempt} of {REJECTIONS_IN_A_ROW}"),
            Operation::Set,
            "",
            set,
            ErrorKind::InvalidKey,
        )?;
    }
    let key = ctx.key("after-many-rejections");
    ctx.set(&key, b"still works", None).await?;
    ctx.expect_present(
        &format!("a normal key after {REJECTIONS_IN_A_ROW} rejected sets in a row"),
        &key,
        b"still works",
    )
    .await
}

/// More rejections in a row than a breaker's usual threshold (5, 10) needs to open.
const REJECTIONS_IN_A_ROW: usize = 12;

async fn expect_invalid_key_everywhere(ctx: &Ctx, what: &str, key: &str) -> CaseResult {
    let backend = &ctx.backend;
    let set = backend.set(key, Bytes::from_static(b"v"), None).await;
    expect_error(
        &format!("set of {what}"),
        Operation::Set,
        key,
        set,
        ErrorKind::InvalidKey,
    )?;
    // A set with a ttl often takes another path (SETEX, a separate statement).
    if let Some(ttl) = ctx.valid_ttl() {
        let set = backend.set(key, Bytes::from_static(b"v"), Some(ttl)).await;
        expect_error(
            &format!("set of {what} with a ttl"),
            Operation::Set,
            key,
            set,
            ErrorKind::InvalidKey,
        )?;
    }
    expect_error(
        &format!("get of {what}"),
        Operation::Get,
        key,
        backend.get(key).await,
        ErrorKind::InvalidKey,
    )?;
    let exists = backend.exists(key).await;
    expect_error(
        &format!("exists of {what}"),
        Operation::Exists,
        key,
        exists,
        ErrorKind::InvalidKey,
    )?;
    let delete = backend.delete(key).await;
    expect_error(
        &format!("delete of {what}"),
        Operation::Delete,
        key,
        delete,
        ErrorKind::InvalidKey,
    )
}

fn declared_max_key(ctx: &Ctx) -> Result<usize, Failure> {
    ctx.caps
        .max_key_bytes
        .ok_or_else(|| Failure::new("the case needs a declared maximum key length"))
}

/// The case's prefix padded to exactly `len` bytes, mostly with two-byte `é`, so a backend
/// that counts characters instead of bytes is caught as well.
fn key_of_exact_length(ctx: &Ctx, len: usize) -> Result<String, Failure> {
    key_of_exact_length_from(ctx, len, MAXIMUM_KEY_MATERIALS[0].1)
}

/// The case's prefix padded to exactly `len` bytes with `filler`'s characters in turn, and
/// `x` where the next one no longer fits.
fn key_of_exact_length_from(ctx: &Ctx, len: usize, filler: &[char]) -> Result<String, Failure> {
    let prefix = ctx.prefix();
    if len < prefix.len() {
        return Err(Failure::new("build a key of the declared maximum length")
            .expected(format!("a maximum of at least {} bytes", prefix.len()))
            .got(format!("a declared maximum of {len} bytes")));
    }
    let unit: String = filler.iter().collect();
    let mut key = String::with_capacity(len);
    key.push_str(prefix);
    key.push_str(&unit.repeat((len - prefix.len()) / unit.len().max(1)));
    // What is left is shorter than one unit: its characters while they fit, then `x`.
    for c in filler {
        if key.len() + c.len_utf8() > len {
            break;
        }
        key.push(*c);
    }
    while key.len() < len {
        key.push('x');
    }
    Ok(key)
}
