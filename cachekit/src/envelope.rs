//! The bytes a cached result is stored as: a small versioned envelope around MessagePack.
//!
//! ```text
//! b"CK" | format version (1 byte, currently 1) | rmp-serde encoding of the value
//! ```
//!
//! MessagePack (rmp-serde) because it is compact, schema-less like the serde data model,
//! fast both ways, and readable from other languages. Bytes without the magic, of another
//! format version, or that do not decode as the expected type are *corrupt*: the caller
//! treats them as a miss, recomputes and overwrites them, and counts them.

use serde::de::DeserializeOwned;
use serde::Serialize;

use cachekit_core::{BackendError, Bytes};

const MAGIC: &[u8; 2] = b"CK";
/// The envelope format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = MAGIC.len() + 1;

/// Encodes `value` into an envelope.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, BackendError> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(MAGIC);
    bytes.push(FORMAT_VERSION);
    rmp_serde::encode::write(&mut bytes, value).map_err(|err| {
        BackendError::invalid_argument(format!("cannot serialise the result: {err}"))
    })?;
    Ok(Bytes::from(bytes))
}

/// Why stored bytes were not a value of the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Corrupt {
    /// Not an envelope at all.
    NoMagic,
    /// An envelope of a format this build does not read.
    Version(u8),
    /// The payload did not decode as the expected type.
    Payload(String),
}

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corrupt::NoMagic => f.write_str("not a cachekit envelope"),
            Corrupt::Version(version) => write!(
                f,
                "envelope format {version}, this build reads {FORMAT_VERSION}"
            ),
            Corrupt::Payload(err) => write!(f, "payload does not decode: {err}"),
        }
    }
}

/// Decodes an envelope written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Corrupt> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Corrupt::NoMagic);
    }
    let version = bytes[MAGIC.len()];
    if version != FORMAT_VERSION {
        return Err(Corrupt::Version(version));
    }
    let mut payload = &bytes[HEADER_LEN..];
    let value = rmp_serde::decode::from_read(&mut payload)
        .map_err(|err| Corrupt::Payload(err.to_string()))?;
    // Trailing bytes mean the payload is not what was written: never half-trust it.
    if !payload.is_empty() {
        return Err(Corrupt::Payload(format!(
            "{} unexpected trailing bytes",
            payload.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_and_rejects_what_it_did_not_write() {
        let bytes = encode(&("alice", 42u32)).expect("encode");
        assert_eq!(&bytes[..3], b"CK\x01");
        assert_eq!(
            decode::<(String, u32)>(&bytes),
            Ok(("alice".to_owned(), 42))
        );

        assert_eq!(decode::<u32>(b"garbage"), Err(Corrupt::NoMagic));
        assert_eq!(decode::<u32>(b""), Err(Corrupt::NoMagic));
        assert_eq!(decode::<u32>(b"CK\x07\x2a"), Err(Corrupt::Version(7)));
        assert!(matches!(
            decode::<u32>(b"CK\x01\xc1"),
            Err(Corrupt::Payload(_))
        ));
        // A value of another type is corrupt for this caller, not a wrong value.
        assert!(matches!(
            decode::<u32>(&encode("text").expect("encode")),
            Err(Corrupt::Payload(_))
        ));
        let mut extended = bytes.to_vec();
        extended.push(0);
        assert!(matches!(
            decode::<(String, u32)>(&extended),
            Err(Corrupt::Payload(_))
        ));
    }
}
