//! The bytes a cached result is stored as: a small versioned envelope around MessagePack.
//!
//! ```text
//! b"CK" | format version (1 byte, currently 2) | type fingerprint (8 bytes) | rmp-serde encoding of the value
//! ```
//!
//! MessagePack (rmp-serde) because it is compact, schema-less like the serde data model,
//! fast both ways, and readable from other languages.
//!
//! **The type fingerprint.** MessagePack writes a struct as the array of its fields, so the
//! bytes of a `User { id, name }` decode "successfully" as a `Team { id, name }`. The
//! fingerprint names the type that was written: the first 8 bytes (big-endian) of the
//! 64-bit FNV-1a hash of `std::any::type_name::<T>()` (see [`type_fingerprint`]), and a
//! reader of another type treats the bytes as a miss. It is per type *name*, which implies:
//! renaming or moving the type (or a compiler whose `type_name` text differs, which the
//! standard library permits) turns existing entries into misses, like a version bump;
//! two types of the same name (the same type from two versions of one crate in a build)
//! share a fingerprint; and the processes that share a namespace must name the result type
//! alike (defined in one crate they share, rather than one copy per binary). It guards
//! against accidents, not against a writer of the store, who can always write a
//! well-typed wrong value.
//!
//! **Unusable bytes.** Bytes over the cache's size limit (checked before anything else, so
//! they are never decoded), without the magic, of another format version, of another type,
//! or that are not exactly one well-formed value of the expected type are unusable: the
//! caller treats them as a miss, recomputes, overwrites and counts them.
//!
//! **Bounded decoding.** Before the payload reaches serde it is walked once, without
//! allocating: every string, binary and extension length, and every array and map element
//! count, must fit in the bytes that follow it (each element takes at least one byte). So
//! the preallocation serde does from a claimed length (up to 1 MiB per collection, at every
//! level of nesting) is bounded by the stored bytes themselves, and a few hundred bytes
//! cannot claim gigabytes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use cachekit_core::{BackendError, Bytes};

const MAGIC: &[u8; 2] = b"CK";
/// The envelope format this build writes and reads.
pub const FORMAT_VERSION: u8 = 2;
const FINGERPRINT_LEN: usize = 8;
const HEADER_LEN: usize = MAGIC.len() + 1 + FINGERPRINT_LEN;

/// The fingerprint of the result type `T` in the envelope: 64-bit FNV-1a of
/// `std::any::type_name::<T>()`, big-endian. FNV-1a because it is a few lines in any
/// language and needs no table; collisions between the few types a namespace ever holds
/// are negligible, and the fingerprint is no defence against a hostile writer anyway.
pub fn type_fingerprint<T: ?Sized>() -> [u8; FINGERPRINT_LEN] {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = std::any::type_name::<T>()
        .bytes()
        .fold(OFFSET_BASIS, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        });
    hash.to_be_bytes()
}

/// Encodes `value` into an envelope, in an allocation of exactly its length: the bytes are
/// kept (stored by in-process backends, handed to waiters), and a buffer grown by doubling
/// can be almost twice the value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes, BackendError> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(MAGIC);
    bytes.push(FORMAT_VERSION);
    bytes.extend_from_slice(&type_fingerprint::<T>());
    rmp_serde::encode::write(&mut bytes, value).map_err(|err| {
        BackendError::invalid_argument(format!("cannot serialise the result: {err}"))
    })?;
    Ok(Bytes::from(bytes.into_boxed_slice()))
}

/// Why stored bytes were not a value of the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Longer than the reader's limit; not decoded at all.
    Oversized { len: usize, limit: usize },
    /// Not an envelope at all.
    NoMagic,
    /// An envelope of a format this build does not read.
    Version(u8),
    /// A well-formed envelope of another result type.
    OtherType,
    /// The payload is not exactly one well-formed MessagePack value within its bytes.
    Malformed(String),
    /// The payload did not decode as the expected type.
    Payload(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Oversized { len, limit } => {
                write!(f, "{len} bytes, over the cache's limit of {limit}")
            }
            Unusable::NoMagic => f.write_str("not a cachekit envelope"),
            Unusable::Version(version) => write!(
                f,
                "envelope format {version}, this build reads {FORMAT_VERSION}"
            ),
            Unusable::OtherType => f.write_str("a value of another type"),
            Unusable::Malformed(why) => write!(f, "malformed payload: {why}"),
            Unusable::Payload(err) => write!(f, "payload does not decode: {err}"),
        }
    }
}

/// Decodes an envelope written by [`encode`] for the same `T`, if it is at most
/// `max_len` bytes long.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, Unusable> {
    if bytes.len() > max_len {
        return Err(Unusable::Oversized {
            len: bytes.len(),
            limit: max_len,
        });
    }
    let (Some(magic), Some(&version)) = (bytes.get(..MAGIC.len()), bytes.get(MAGIC.len())) else {
        return Err(Unusable::NoMagic);
    };
    if magic != MAGIC {
        return Err(Unusable::NoMagic);
    }
    if version != FORMAT_VERSION {
        return Err(Unusable::Version(version));
    }
    if bytes.len() < HEADER_LEN {
        return Err(Unusable::Malformed(
            "cut short inside the header".to_owned(),
        ));
    }
    if bytes[MAGIC.len() + 1..HEADER_LEN] != type_fingerprint::<T>() {
        return Err(Unusable::OtherType);
    }
    let payload = &bytes[HEADER_LEN..];
    check_lengths(payload).map_err(Unusable::Malformed)?;
    let mut rest = payload;
    let value =
        rmp_serde::from_read(&mut rest).map_err(|err| Unusable::Payload(err.to_string()))?;
    // Every value was checked to end where the payload does; a decoder that stopped
    // short read a different shape than was written: never half-trust it.
    if !rest.is_empty() {
        return Err(Unusable::Payload(format!(
            "{} bytes left after the value",
            rest.len()
        )));
    }
    Ok(value)
}

/// Checks that `payload` is exactly one MessagePack value whose every length prefix fits
/// in the bytes after it. Linear and allocation-free: it counts the values still to read
/// instead of recursing.
fn check_lengths(payload: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    let mut values_to_read = 1usize;
    // Reads an `n`-byte big-endian length at `at`.
    let read_len = |at: &mut usize, n: usize| -> Result<usize, String> {
        let field = payload
            .get(*at..*at + n)
            .ok_or_else(|| format!("ends inside a {n}-byte length at byte {at}"))?;
        *at += n;
        let len = field
            .iter()
            .fold(0u64, |len, byte| (len << 8) | u64::from(*byte));
        usize::try_from(len).map_err(|_| format!("a length of {len} at byte {at}"))
    };
    while values_to_read > 0 {
        let marker = *payload
            .get(at)
            .ok_or_else(|| format!("ends at byte {at}, {values_to_read} values short"))?;
        at += 1;
        values_to_read -= 1;
        // (bytes of data that follow, elements that follow)
        let (data_len, elements) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc1 => {
                return Err(format!(
                    "0xc1, never a MessagePack marker, at byte {}",
                    at - 1
                ))
            }
            0xc4 | 0xd9 => (read_len(&mut at, 1)?, 0),
            0xc5 | 0xda => (read_len(&mut at, 2)?, 0),
            0xc6 | 0xdb => (read_len(&mut at, 4)?, 0),
            // ext: the length, then a type byte, then the data
            0xc7 => (read_len(&mut at, 1)? + 1, 0),
            0xc8 => (read_len(&mut at, 2)? + 1, 0),
            0xc9 => (read_len(&mut at, 4)?.saturating_add(1), 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            // fixext 1, 2, 4, 8, 16: a type byte, then the data
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, read_len(&mut at, 2)?),
            0xdd => (0, read_len(&mut at, 4)?),
            0xde => (0, read_len(&mut at, 2)?.saturating_mul(2)),
            0xdf => (0, read_len(&mut at, 4)?.saturating_mul(2)),
        };
        let left = payload.len() - at;
        if data_len > left {
            return Err(format!(
                "claims {data_len} bytes at byte {at}, {left} are left"
            ));
        }
        at += data_len;
        let left = payload.len() - at;
        // Each value takes at least one byte.
        values_to_read = values_to_read.saturating_add(elements);
        if values_to_read > left {
            return Err(format!(
                "claims {elements} elements at byte {at}, {left} bytes are left"
            ));
        }
    }
    if at != payload.len() {
        return Err(format!("{} unexpected trailing bytes", payload.len() - at));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde::Deserialize;

    use super::*;

    const NO_LIMIT: usize = usize::MAX;

    fn header_for<T>() -> Vec<u8> {
        let mut header = b"CK\x02".to_vec();
        header.extend_from_slice(&type_fingerprint::<T>());
        header
    }

    fn with_header<T>(payload: &[u8]) -> Vec<u8> {
        let mut bytes = header_for::<T>();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn roundtrips_and_rejects_what_it_did_not_write() {
        let bytes = encode(&("alice".to_owned(), 42u32)).expect("encode");
        assert_eq!(&bytes[..3], b"CK\x02");
        assert_eq!(
            decode::<(String, u32)>(&bytes, NO_LIMIT),
            Ok(("alice".to_owned(), 42))
        );

        assert_eq!(decode::<u32>(b"garbage", NO_LIMIT), Err(Unusable::NoMagic));
        assert_eq!(decode::<u32>(b"", NO_LIMIT), Err(Unusable::NoMagic));
        let mut other_version = with_header::<u32>(&[0x2a]);
        other_version[2] = 7;
        assert_eq!(
            decode::<u32>(&other_version, NO_LIMIT),
            Err(Unusable::Version(7))
        );
        // Format 1, which had no fingerprint, is another version.
        assert_eq!(
            decode::<u32>(b"CK\x01\x2a", NO_LIMIT),
            Err(Unusable::Version(1))
        );
        assert!(matches!(
            decode::<u32>(b"CK\x02\x00", NO_LIMIT),
            Err(Unusable::Malformed(_))
        ));
        let mut extended = bytes.to_vec();
        extended.push(0);
        assert!(matches!(
            decode::<(String, u32)>(&extended, NO_LIMIT),
            Err(Unusable::Malformed(_))
        ));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u64,
        name: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Team {
        id: u64,
        name: String,
    }

    #[test]
    fn a_value_of_another_type_is_unusable_even_when_its_shape_fits() {
        let user = encode(&User {
            id: 1,
            name: "ada".to_owned(),
        })
        .expect("encode");
        assert_eq!(decode::<Team>(&user, NO_LIMIT), Err(Unusable::OtherType));
        assert_eq!(
            decode::<u32>(&encode(&"text").expect("encode"), NO_LIMIT),
            Err(Unusable::OtherType)
        );
        // The same payload under the right fingerprint decodes: it was the type that differed.
        let payload = &user[HEADER_LEN..];
        assert_eq!(
            decode::<Team>(&with_header::<Team>(payload), NO_LIMIT),
            Ok(Team {
                id: 1,
                name: "ada".to_owned()
            })
        );
    }

    #[test]
    fn the_fingerprint_is_fnv1a_of_the_type_name() {
        // FNV-1a 64 of "u32", computed by hand from the published constants (in Python:
        // h = 0xcbf29ce484222325; for b in b"u32": h = ((h ^ b) * 0x100000001b3) % 2**64).
        assert_eq!(
            type_fingerprint::<u32>(),
            0x4d2b_df19_3e85_26d1u64.to_be_bytes()
        );
    }

    #[test]
    fn an_encoded_value_holds_no_more_memory_than_its_length() {
        // 100 000 one-byte elements are written one by one, so the buffer grows by
        // doubling past its length. `Vec::from(Bytes)` hands back the allocation `Bytes`
        // kept, capacity included: it must be the length, not the growth's last step.
        let bytes = encode(&vec![7u8; 100_000]).expect("encode");
        let len = bytes.len();
        assert_eq!(
            len,
            HEADER_LEN + 5 + 100_000,
            "CK header, array32 header, elements"
        );
        let held = Vec::<u8>::from(bytes);
        assert_eq!(held.capacity(), len);
    }

    #[test]
    fn bytes_over_the_limit_are_not_decoded() {
        let bytes = encode(&"x".repeat(100)).expect("encode");
        assert_eq!(
            decode::<String>(&bytes, 50),
            Err(Unusable::Oversized {
                len: bytes.len(),
                limit: 50
            })
        );
        assert_eq!(decode::<String>(&bytes, bytes.len()), Ok("x".repeat(100)));
    }

    #[rstest]
    #[case::array_of_4g_elements(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x00])]
    #[case::array_longer_than_its_bytes(&[0x93, 0x01, 0x02])]
    #[case::map_of_4g_entries(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00])]
    #[case::map_value_missing(&[0x81, 0x01])]
    #[case::string_of_4g_bytes(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'x'])]
    #[case::string_cut_short(&[0xa5, b'a', b'b'])]
    #[case::binary_cut_short(&[0xc4, 0x10, 0x00])]
    #[case::ext_of_4g_bytes(&[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00])]
    #[case::length_cut_short(&[0xdb, 0x00, 0x01])]
    #[case::integer_cut_short(&[0xcf, 0x00, 0x00])]
    #[case::never_used_marker(&[0xc1])]
    #[case::nothing(&[])]
    #[case::two_values(&[0x01, 0x02])]
    #[case::nested_claims(&[0x91, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x91, 0xdd, 0xff, 0xff, 0xff, 0xff])]
    fn lengths_that_do_not_fit_their_bytes_are_malformed(#[case] payload: &[u8]) {
        assert!(
            matches!(
                decode::<Vec<Vec<u8>>>(&with_header::<Vec<Vec<u8>>>(payload), NO_LIMIT),
                Err(Unusable::Malformed(_))
            ),
            "{payload:02x?}"
        );
    }

    #[rstest]
    #[case::nil(&[0xc0])]
    #[case::fixints(&[0x92, 0x7f, 0xe0])]
    #[case::every_width(&[0x98, 0xcc, 1, 0xcd, 0, 1, 0xce, 0, 0, 0, 1, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0xd0, 0xff, 0xd1, 0xff, 0xff, 0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0])]
    #[case::strings(&[0x93, 0xa1, b'a', 0xd9, 1, b'b', 0xda, 0, 1, b'c'])]
    #[case::binaries(&[0x92, 0xc4, 1, 9, 0xc6, 0, 0, 0, 1, 9])]
    #[case::exts(&[0x93, 0xd4, 1, 9, 0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc7, 1, 5, 9])]
    #[case::nested(&[0x81, 0xa1, b'k', 0xdc, 0, 2, 0x80, 0x90])]
    fn well_formed_values_pass_the_length_check(#[case] payload: &[u8]) {
        assert_eq!(check_lengths(payload), Ok(()));
    }
}
