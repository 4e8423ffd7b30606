//! Values are opaque bytes: never dropped, transcoded, truncated or padded.

use cachekit_core::{Bytes, ErrorKind};

use crate::failure::Operation;
use crate::{expect_error, CaseResult, Ctx, Failure};

/// A deterministic byte pattern that never repeats within a value, so truncation, shifts
/// and a chunk stored twice show. Eight bytes per step: the largest values are megabytes,
/// and the kit runs unoptimised in a backend's tests.
pub(crate) fn pattern(len: usize, salt: u8) -> Vec<u8> {
    let mut value = vec![0u8; len];
    // xorshift64 from a salted, non-zero seed.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (u64::from(salt) << 56);
    for chunk in value.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    value
}

async fn roundtrip(ctx: &Ctx, check: &str, name: &str, value: &[u8]) -> CaseResult {
    let key = ctx.key(name);
    ctx.set(&key, value, None).await?;
    ctx.expect_present(check, &key, value).await
}

/// An empty value reads back as Some(empty), never None.
pub async fn empty_value_is_some_empty(ctx: Ctx) -> CaseResult {
    roundtrip(&ctx, "get of an empty value", "empty", b"").await?;
    ctx.expect_delete("delete of an empty value", &ctx.key("empty"), true)
        .await?;
    // Stored with a ttl too: that path may write the item differently.
    if let Some(ttl) = ctx.valid_ttl() {
        let key = ctx.key("empty-with-ttl");
        ctx.set(&key, b"", Some(ttl)).await?;
        ctx.expect_present("get of an empty value set with a ttl", &key, b"")
            .await?;
    }
    Ok(())
}

/// All 256 byte values survive a round trip.
pub async fn all_byte_values_roundtrip(ctx: Ctx) -> CaseResult {
    let every_byte: Vec<u8> = (0..=255).collect();
    roundtrip(&ctx, "get of all 256 byte values", "ascending", &every_byte).await?;
    let descending: Vec<u8> = (0..=255).rev().collect();
    roundtrip(
        &ctx,
        "get of all 256 byte values, reversed",
        "descending",
        &descending,
    )
    .await
}

/// NUL bytes are data, not terminators.
pub async fn nul_bytes_roundtrip(ctx: Ctx) -> CaseResult {
    roundtrip(&ctx, "get of a lone NUL", "nul", b"\0").await?;
    roundtrip(&ctx, "get of a value with inner NUL", "inner-nul", b"a\0b").await?;
    roundtrip(&ctx, "get of trailing NULs", "trailing-nul", b"ab\0\0\0").await
}

/// Values are bytes, never transcoded as text.
pub async fn invalid_utf8_roundtrips(ctx: Ctx) -> CaseResult {
    let invalid = [0xff, 0xfe, 0xc3, 0x28, 0x80, 0xed, 0xa0, 0x80];
    roundtrip(&ctx, "get of invalid UTF-8", "invalid-utf8", &invalid).await?;
    roundtrip(&ctx, "get of CRLF bytes", "crlf", b"a\r\nb\n\r").await
}

/// A 1 MiB value survives a round trip.
pub async fn one_mib_value_roundtrips(ctx: Ctx) -> CaseResult {
    let value = pattern(1024 * 1024, 0x5a);
    roundtrip(&ctx, "get of a 1 MiB value", "mib", &value).await
}

/// A value of exactly the declared maximum size works.
pub async fn value_at_max_size_roundtrips(ctx: Ctx) -> CaseResult {
    let max = declared_max_value(&ctx)?;
    let value = pattern(max, 0x11);
    roundtrip(
        &ctx,
        "get of a value of exactly the maximum size",
        "max",
        &value,
    )
    .await?;
    // Overwriting it with another value of the maximum size works too: a store that holds
    // the old version beside the new one until the swap must not count both.
    let key = ctx.key("max");
    let other = pattern(max, 0x12);
    ctx.set(&key, &other, None).await?;
    ctx.expect_present(
        "get after overwriting a value of exactly the maximum size with another",
        &key,
        &other,
    )
    .await?;
    // Deleting it answers plainly, however long removing that much takes.
    ctx.expect_delete("delete of a value of exactly the maximum size", &key, true)
        .await?;
    ctx.expect_delete(
        "second delete of a value of exactly the maximum size",
        &key,
        false,
    )
    .await?;
    // A set with a ttl may go to another tier, with a smaller limit of its own.
    if let Some(ttl) = ctx.valid_ttl() {
        ctx.set(&key, &value, Some(ttl)).await?;
        ctx.expect_present(
            "get of a value of exactly the maximum size, set with a ttl",
            &key,
            &value,
        )
        .await?;
    }
    Ok(())
}

/// A value over the declared maximum fails with ValueTooLarge and stores nothing.
pub async fn value_over_max_size_is_value_too_large(ctx: Ctx) -> CaseResult {
    let max = declared_max_value(&ctx)?;
    let fresh = ctx.key("fresh");
    let too_large = Bytes::from(pattern(max + 1, 0x22));
    let set = ctx.backend.set(&fresh, too_large.clone(), None).await;
    expect_error(
        "set of a value one byte over the maximum",
        Operation::Set,
        &fresh,
        set,
        ErrorKind::ValueTooLarge,
    )?;
    ctx.expect_absent("a key whose only set was too large", &fresh)
        .await?;
    // A set with a ttl often takes another path (SETEX, a separate statement).
    if let Some(ttl) = ctx.valid_ttl() {
        let set = ctx.backend.set(&fresh, too_large.clone(), Some(ttl)).await;
        expect_error(
            "set with a ttl of a value one byte over the maximum",
            Operation::Set,
            &fresh,
            set,
            ErrorKind::ValueTooLarge,
        )?;
        ctx.expect_absent("a key whose only sets were too large", &fresh)
            .await?;
    }

    let existing = ctx.key("existing");
    ctx.set(&existing, b"old", None).await?;
    let set = ctx.backend.set(&existing, too_large, None).await;
    expect_error(
        "overwrite with a value one byte over the maximum",
        Operation::Set,
        &existing,
        set,
        ErrorKind::ValueTooLarge,
    )?;
    ctx.expect_present(
        "a key after a rejected, too-large overwrite",
        &existing,
        b"old",
    )
    .await?;

    // Zeros compress to almost nothing: a limit checked after compression lets them in.
    let compressible = ctx.key("compressible");
    let set = ctx
        .backend
        .set(&compressible, Bytes::from(vec![0u8; max + 1]), None)
        .await;
    expect_error(
        "set of a value of zeros one byte over the maximum",
        Operation::Set,
        &compressible,
        set,
        ErrorKind::ValueTooLarge,
    )?;
    ctx.expect_absent("a key whose only set was too large", &compressible)
        .await
}

/// A large value lives under its own key only: a store that splits it into chunks kept
/// as ordinary keys (`{key}:chunk:1`, `{key}:1`) shows them to callers, and a caller's
/// write to such a key corrupts the value.
pub async fn a_large_value_occupies_only_its_own_key(ctx: Ctx) -> CaseResult {
    let key = ctx.key("large");
    let value = pattern(ctx.value_len(3 * 512 * 1024), 0x4c);
    ctx.set(&key, &value, None).await?;
    let neighbours: Vec<String> = ["chunk:0", "chunk:1", "0", "1"]
        .iter()
        .flat_map(|suffix| [format!("{key}:{suffix}"), format!("{key}#{suffix}")])
        .chain(
            ["_1", ".1", "/1"]
                .iter()
                .map(|suffix| format!("{key}{suffix}")),
        )
        .collect();
    for neighbour in &neighbours {
        ctx.expect_absent("a key named like a chunk of a large value", neighbour)
            .await?;
    }
    for neighbour in &neighbours {
        ctx.set(neighbour, b"a caller's own value", None).await?;
    }
    ctx.expect_get(
        "get of a large value after writes to keys named like its chunks",
        &key,
        Some(value.as_slice()),
    )
    .await
}

/// Overwriting with a shorter value leaves no bytes of the old one, nor anything the old
/// one was stored with: a value a layer compressed, overwritten by one it did not, must not
/// be read through the decompressor.
pub async fn shorter_overwrite_leaves_no_tail(ctx: Ctx) -> CaseResult {
    let len = ctx.value_len(4096);
    let olds = [
        ("a 4 KiB pattern", pattern(len, 0x33)),
        ("4 KiB of zeros", vec![0u8; len]),
    ];
    for (i, (old, value)) in olds.iter().enumerate() {
        let key = ctx.key(&format!("shrinks-{i}"));
        ctx.set(&key, value, None).await?;
        ctx.set(&key, b"short", None).await?;
        ctx.expect_get(
            &format!("get after overwriting {old} with a shorter value"),
            &key,
            Some(b"short"),
        )
        .await?;
    }
    Ok(())
}

fn declared_max_value(ctx: &Ctx) -> Result<usize, Failure> {
    ctx.caps
        .max_value_bytes
        .ok_or_else(|| Failure::new("the case needs a declared maximum value size"))
}

/// A value one byte under the declared maximum works.
pub async fn value_just_under_max_size_roundtrips(ctx: Ctx) -> CaseResult {
    let max = declared_max_value(&ctx)?;
    let value = pattern(max.saturating_sub(1), 0x47);
    roundtrip(
        &ctx,
        "get of a value one byte under the maximum",
        "under-max",
        &value,
    )
    .await
}

/// Highly compressible values survive a round trip: all zeros, a repeated pattern, and
/// values made of whole 4 KiB blocks of zeros (a store that writes sparsely skips zero
/// blocks, and without a truncate to the full length it loses the trailing ones).
pub async fn compressible_value_roundtrips(ctx: Ctx) -> CaseResult {
    let len = ctx.value_len(200_003);
    roundtrip(&ctx, "get of 200,003 zero bytes", "zeros", &vec![0u8; len]).await?;
    let repeated: Vec<u8> = b"abc".iter().copied().cycle().take(len).collect();
    roundtrip(&ctx, "get of a repeated 3-byte pattern", "abc", &repeated).await?;
    const BLOCK: usize = 4096;
    if ctx.value_len(2 * BLOCK) == 2 * BLOCK {
        roundtrip(
            &ctx,
            "get of two 4 KiB blocks of zeros",
            "zero-blocks",
            &[0u8; 2 * BLOCK],
        )
        .await?;
    }
    if ctx.value_len(3 * BLOCK) < 3 * BLOCK {
        return Ok(());
    }
    let mut data_then_zeros = pattern(BLOCK, 0x5a);
    data_then_zeros.resize(3 * BLOCK, 0);
    roundtrip(
        &ctx,
        "get of a 4 KiB block of data followed by two 4 KiB blocks of zeros",
        "trailing-zero-blocks",
        &data_then_zeros,
    )
    .await
}

/// An incompressible value (pseudo-random bytes) survives a round trip.
pub async fn incompressible_value_roundtrips(ctx: Ctx) -> CaseResult {
    let len = ctx.value_len(200_003);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ ctx.seed;
    let value: Vec<u8> = (0..len)
        .map(|_| {
            // xorshift64*: cheap, and nothing a compressor can shrink.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect();
    roundtrip(&ctx, "get of 200,003 pseudo-random bytes", "random", &value).await
}

/// Values whose text looks like something else (JSON, numbers, whitespace) stay bytes.
pub async fn text_like_values_are_not_interpreted(ctx: Ctx) -> CaseResult {
    let values: [&[u8]; 18] = [
        b" padded ",
        b"{\"json\": true}",
        b"null",
        b"0042",
        b"1e3",
        b"\xef\xbb\xbfbom",
        b"line\n",
        b"\t",
        // A text protocol's own terminator, at the end and alone.
        b"line\r\n",
        b"\r\n",
        // Valid UTF-8 with a 4-byte character: a 3-byte-UTF-8 text column cuts it there.
        "ok \u{1F980} crab".as_bytes(),
        // PHP's falsy "0" and a language's null written out: a client that maps them back
        // to a miss loses the value.
        b"0",
        b"nil",
        b"(nil)",
        b"None",
        b"undefined",
        // An error reply's shape, and a text protocol's end-of-values line inside a value.
        b"-ERR not an error",
        b"before\r\nEND\r\nafter",
    ];
    for (i, value) in values.iter().enumerate() {
        roundtrip(
            &ctx,
            "get of a text-like value",
            &format!("text-{i}"),
            value,
        )
        .await?;
    }
    Ok(())
}

/// Values that begin like a compressed or serialised format are stored bytes, never
/// decoded: a layer that sniffs magic numbers (gzip, zlib, zstd, snappy, pickle, PHP's
/// serialize, a flags byte) turns them into something else or into an error. PHP's
/// serialised `false` and `null` are here too: a client that unserialises reads them as a
/// miss. So are values whose first bytes give the length of the rest, as an older framed
/// format beside raw values would.
pub async fn values_that_start_like_an_encoding_are_not_decoded(ctx: Ctx) -> CaseResult {
    let values: [&[u8]; 20] = [
        b"\x1f\x8b\x08\x00not gzip",
        b"\x78\x9cnot zlib",
        b"\x28\xb5\x2f\xfdnot zstd",
        b"\xff\x06\x00\x00sNaPpYnot snappy",
        b"\x04\x22\x4d\x18not an lz4 frame",
        b"\x02\x21\x4c\x18not legacy lz4",
        b"BZh9not bzip2",
        b"\xfd7zXZ\x00not xz",
        b"\xac\xed\x00\x05not Java serialization",
        b"\x93\x01\x02\x03",
        b"\x82\xa1a\x01\xa1b\x02",
        b"\x80\x04\x95not a pickle",
        b"s:5:\"hello\";",
        b"b:0;",
        b"N;",
        b"\x00flags byte",
        b"\x01flags byte",
        // A 4-byte and a 2-byte big-endian length, and a one-byte varint, each exactly the
        // length of what follows.
        b"\x00\x00\x00\x03abc",
        b"\x00\x03abc",
        b"\x03abc",
    ];
    for (i, value) in values.iter().enumerate() {
        roundtrip(
            &ctx,
            "get of a value that starts like an encoding",
            &format!("magic-{i}"),
            value,
        )
        .await?;
    }
    Ok(())
}

macro_rules! lengths {
    ($($name:ident => $len:literal;)*) => {
        $(
            #[doc = concat!("A value of ", stringify!($len), " bytes survives a round trip.")]
            pub async fn $name(ctx: Ctx) -> CaseResult {
                let value = pattern($len, ($len % 251) as u8);
                let check = concat!("get of a ", stringify!($len), "-byte value");
                roundtrip(&ctx, check, "sized", &value).await
            }
        )*

        /// One case per length, for the registry.
        pub(crate) fn length_cases() -> Vec<crate::case::Case> {
            use crate::case::{Case, CaseFn, Family, Need, Timing};
            vec![$(
                Case {
                    family: Family::Values,
                    name: stringify!($name),
                    rule: concat!("a value of ", stringify!($len), " bytes reads back exactly, not padded or cut at a block boundary"),
                    needs: &[Need::ValuesOfAtLeast($len)],
                    timing: Timing::Instant,
                    run: CaseFn::Backend(|ctx| Box::pin($name(ctx))),
                },
            )*]
        }
    };
}

lengths! {
    value_of_1_byte_roundtrips => 1;
    value_of_3_bytes_roundtrips => 3;
    value_of_127_bytes_roundtrips => 127;
    value_of_128_bytes_roundtrips => 128;
    value_of_129_bytes_roundtrips => 129;
    value_of_255_bytes_roundtrips => 255;
    value_of_256_bytes_roundtrips => 256;
    value_of_257_bytes_roundtrips => 257;
    value_of_512_bytes_roundtrips => 512;
    value_of_1000_bytes_roundtrips => 1000;
    value_of_1023_bytes_roundtrips => 1023;
    value_of_1024_bytes_roundtrips => 1024;
    value_of_1025_bytes_roundtrips => 1025;
    value_of_2048_bytes_roundtrips => 2048;
    value_of_4095_bytes_roundtrips => 4095;
    value_of_4096_bytes_roundtrips => 4096;
    value_of_4097_bytes_roundtrips => 4097;
    value_of_8191_bytes_roundtrips => 8191;
    value_of_8192_bytes_roundtrips => 8192;
    value_of_65535_bytes_roundtrips => 65535;
    value_of_65536_bytes_roundtrips => 65536;
    value_of_65537_bytes_roundtrips => 65537;
    value_of_100003_bytes_roundtrips => 100003;
    value_of_409600_bytes_roundtrips => 409600;
}
