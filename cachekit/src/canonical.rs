//! Canonical MessagePack for cache keys: equal arguments give equal bytes, whatever the
//! iteration order of the collections inside them.
//!
//! The encoding is rmp-serde's default (a struct is an array of its fields in declaration
//! order, an enum variant is its name, or `{name: content}`, an integer takes its smallest
//! encoding, `i128`/`u128` are 16 big-endian bytes of `bin`, …) with three differences:
//!
//! - **`Some(x)`** is the one-element array `[x]` (`None` stays nil), so `None`,
//!   `Some(None)` and `Some(Some(None))`, or `None` and `Some(())`, are different keys.
//!   rmp-serde writes `Some(x)` as `x` itself, which makes them all nil.
//! - **unordered maps** are written with their entries sorted by their encoded key bytes
//!   (then by their encoded value bytes), so a `HashMap`, whose order depends on its
//!   hasher's random seed, its capacity and its history, has one encoding per content. A
//!   map's order can be part of its value (`IndexMap`, a `preserve_order`
//!   `serde_json::Map`: a function may return their first entry), so only maps known to
//!   be unordered are sorted, recognised by the name of the collection serde is handed
//!   (`collect_map`): std's and hashbrown's `HashMap` and aliases of them (`FxHashMap`,
//!   `AHashMap`, …), and `BTreeMap`, whose order follows from its content anyway. Every
//!   other map is written in its iteration order, and so is one whose entries do not reach
//!   `collect_map` (a `HashMap` in a `#[serde(flatten)]` struct): a miss on every call
//!   when that order varies, never a wrong value.
//! - **unordered sets** are written with their elements sorted by their encoded bytes.
//!   serde gives a set and a list the same shape, so sets are recognised the same way, by
//!   the collection handed to `collect_seq`: std's and hashbrown's `HashSet`, their
//!   aliases (`FxHashSet`, `AHashSet`, …) and `BTreeSet`. Others (`IndexSet`, which keeps
//!   its insertion order) are keyed in their iteration order, like lists.
//!
//! Sequences, tuples and structs keep their order: there it is part of the value.

use std::fmt::{self, Display};

use serde::ser::{self, Serialize};

/// Containers nested deeper than this are refused rather than risk the stack.
const MAX_DEPTH: usize = 1024;

/// Last path segments of the set types whose order is not part of their value.
const UNORDERED_SETS: &[&str] = &["HashSet", "BTreeSet"];

/// Last path segments of the map types whose order is not part of their value.
const UNORDERED_MAPS: &[&str] = &["HashMap", "BTreeMap"];

/// Why a value has no canonical encoding.
#[derive(Debug)]
pub(crate) struct CanonicalError(String);

impl Display for CanonicalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CanonicalError {}

impl ser::Error for CanonicalError {
    fn custom<T: Display>(msg: T) -> Self {
        CanonicalError(msg.to_string())
    }
}

// Writing to a `Vec` cannot fail; these keep `?` honest without an `unwrap`.
impl From<rmp::encode::ValueWriteError> for CanonicalError {
    fn from(err: rmp::encode::ValueWriteError) -> Self {
        CanonicalError(err.to_string())
    }
}

impl From<std::io::Error> for CanonicalError {
    fn from(err: std::io::Error) -> Self {
        CanonicalError(err.to_string())
    }
}

type Result<T> = std::result::Result<T, CanonicalError>;

/// The canonical MessagePack encoding of `value`.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    value.serialize(Canonical {
        out: &mut out,
        depth: 0,
    })?;
    Ok(out)
}

/// Encodes one value into its own buffer: how map entries and set elements are collected.
fn encode_nested<T: Serialize + ?Sized>(value: &T, depth: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    value.serialize(Canonical {
        out: &mut out,
        depth,
    })?;
    Ok(out)
}

fn length(len: usize, what: &str) -> Result<u32> {
    u32::try_from(len)
        .map_err(|_| CanonicalError(format!("a {what} of {len} items is too long to encode")))
}

/// Whether `I`, a collection handed to `collect_seq` or `collect_map`, is (a reference to)
/// a type whose last path segment is one of `names`, whatever its type arguments.
fn is_one_of<I>(names: &[&str]) -> bool {
    let name = std::any::type_name::<I>();
    let path = name
        .trim_start_matches('&')
        .trim_start_matches("mut ")
        .split('<')
        .next()
        .unwrap_or(name);
    let last = path.rsplit("::").next().unwrap_or(path);
    names.contains(&last)
}

struct Canonical<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
}

impl<'a> Canonical<'a> {
    /// The depth of the containers inside the one about to be opened.
    fn deeper(&self) -> Result<usize> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(CanonicalError(format!(
                "containers are nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(depth)
    }

    fn seq(self, announced: Option<usize>) -> Result<Seq<'a>> {
        let depth = self.deeper()?;
        let header = match announced {
            Some(len) => {
                rmp::encode::write_array_len(self.out, length(len, "sequence")?)?;
                Header::Written(len)
            }
            None => Header::Deferred(self.out.len()),
        };
        Ok(Seq {
            out: self.out,
            depth,
            header,
            count: 0,
        })
    }

    /// `{variant: ...}`: how rmp-serde writes a variant with content.
    fn variant_map(&mut self, variant: &str) -> Result<()> {
        rmp::encode::write_map_len(self.out, 1)?;
        rmp::encode::write_str(self.out, variant)?;
        Ok(())
    }
}

/// An array's length: written up front when announced, else inserted when it is known.
enum Header {
    Written(usize),
    Deferred(usize),
}

struct Seq<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
    header: Header,
    count: usize,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.count += 1;
        value.serialize(Canonical {
            out: self.out,
            depth: self.depth,
        })
    }

    fn finish(self) -> Result<()> {
        match self.header {
            Header::Written(announced) if announced == self.count => Ok(()),
            Header::Written(announced) => Err(CanonicalError(format!(
                "a Serialize impl announced {announced} elements and wrote {}",
                self.count
            ))),
            Header::Deferred(start) => {
                let mut header = Vec::with_capacity(5);
                rmp::encode::write_array_len(&mut header, length(self.count, "sequence")?)?;
                self.out.splice(start..start, header);
                Ok(())
            }
        }
    }
}

/// Map entries or set elements, written when complete (a map's length need not be
/// announced): sorted by their bytes if the collection is unordered, else as they came.
struct Collected<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
    unordered: bool,
    /// Each item's encoding; a map entry is its key's bytes followed by its value's.
    items: Vec<(Vec<u8>, Vec<u8>)>,
    pending_key: Option<Vec<u8>>,
}

impl<'a> Collected<'a> {
    fn new(out: &'a mut Vec<u8>, depth: usize, capacity: usize, unordered: bool) -> Self {
        Collected {
            out,
            depth,
            unordered,
            // Bounded: a hint is not a promise.
            items: Vec::with_capacity(capacity.min(1024)),
            pending_key: None,
        }
    }

    fn write_map(mut self) -> Result<()> {
        if self.pending_key.is_some() {
            return Err(CanonicalError("a map key without a value".to_owned()));
        }
        if self.unordered {
            self.items.sort_unstable();
        }
        rmp::encode::write_map_len(self.out, length(self.items.len(), "map")?)?;
        for (key, value) in &self.items {
            self.out.extend_from_slice(key);
            self.out.extend_from_slice(value);
        }
        Ok(())
    }

    /// Only for unordered sets: a sequence that keeps its order is a [`Seq`].
    fn write_set(mut self) -> Result<()> {
        self.items.sort_unstable();
        rmp::encode::write_array_len(self.out, length(self.items.len(), "set")?)?;
        for (element, _) in &self.items {
            self.out.extend_from_slice(element);
        }
        Ok(())
    }
}

impl<'a> ser::Serializer for Canonical<'a> {
    type Ok = ();
    type Error = CanonicalError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Collected<'a>;
    type SerializeStruct = Seq<'a>;
    type SerializeStructVariant = Seq<'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<()> {
        Ok(rmp::encode::write_bool(self.out, v)?)
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result<()> {
        rmp::encode::write_sint(self.out, v)?;
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<()> {
        self.serialize_bytes(&v.to_be_bytes())
    }

    fn serialize_u8(self, v: u8) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<()> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result<()> {
        rmp::encode::write_uint(self.out, v)?;
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<()> {
        self.serialize_bytes(&v.to_be_bytes())
    }

    fn serialize_f32(self, v: f32) -> Result<()> {
        Ok(rmp::encode::write_f32(self.out, v)?)
    }

    fn serialize_f64(self, v: f64) -> Result<()> {
        Ok(rmp::encode::write_f64(self.out, v)?)
    }

    fn serialize_char(self, v: char) -> Result<()> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        length(v.len(), "string")?;
        Ok(rmp::encode::write_str(self.out, v)?)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        length(v.len(), "byte string")?;
        Ok(rmp::encode::write_bin(self.out, v)?)
    }

    fn serialize_none(self) -> Result<()> {
        self.serialize_unit()
    }

    /// `[value]`: apart from `None` (nil), and from `Some(None)` (`[nil]`).
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        let mut seq = self.seq(Some(1))?;
        seq.element(value)?;
        seq.finish()
    }

    fn serialize_unit(self) -> Result<()> {
        Ok(rmp::encode::write_nil(self.out)?)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        rmp::encode::write_array_len(self.out, 0)?;
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.variant_map(variant)?;
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a>> {
        self.seq(len)
    }

    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>> {
        self.seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'a>> {
        self.seq(Some(len))
    }

    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq<'a>> {
        self.variant_map(variant)?;
        self.seq(Some(len))
    }

    /// A map of unknown type (a hand-written impl, a `#[serde(flatten)]` struct, a
    /// `serde_json::Map`): its order may be part of its value, so it is kept.
    fn serialize_map(self, len: Option<usize>) -> Result<Collected<'a>> {
        let depth = self.deeper()?;
        Ok(Collected::new(self.out, depth, len.unwrap_or(0), false))
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Seq<'a>> {
        self.seq(Some(len))
    }

    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq<'a>> {
        self.variant_map(variant)?;
        self.seq(Some(len))
    }

    fn collect_seq<I>(self, iter: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let unordered = is_one_of::<I>(UNORDERED_SETS);
        let iter = iter.into_iter();
        if unordered {
            let depth = self.deeper()?;
            let mut set = Collected::new(self.out, depth, iter.size_hint().0, true);
            for element in iter {
                set.items
                    .push((encode_nested(&element, depth)?, Vec::new()));
            }
            return set.write_set();
        }
        let announced = match iter.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let mut seq = self.seq(announced)?;
        for element in iter {
            seq.element(&element)?;
        }
        seq.finish()
    }

    /// `I` is what the map's `Serialize` impl hands over: `&HashMap<K, V, S>` for std's
    /// (and for its aliases), so its name says whether the order is part of the value.
    fn collect_map<K, V, I>(self, iter: I) -> Result<()>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (K, V)>,
    {
        let unordered = is_one_of::<I>(UNORDERED_MAPS);
        let iter = iter.into_iter();
        let depth = self.deeper()?;
        let mut map = Collected::new(self.out, depth, iter.size_hint().0, unordered);
        for (key, value) in iter {
            map.items
                .push((encode_nested(&key, depth)?, encode_nested(&value, depth)?));
        }
        map.write_map()
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = CanonicalError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = CanonicalError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = CanonicalError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Seq<'_> {
    type Ok = ();
    type Error = CanonicalError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeStruct for Seq<'_> {
    type Ok = ();
    type Error = CanonicalError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Seq<'_> {
    type Ok = ();
    type Error = CanonicalError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeMap for Collected<'_> {
    type Ok = ();
    type Error = CanonicalError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        if self.pending_key.is_some() {
            return Err(CanonicalError("two map keys in a row".to_owned()));
        }
        self.pending_key = Some(encode_nested(key, self.depth)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| CanonicalError("a map value without a key".to_owned()))?;
        self.items.push((key, encode_nested(value, self.depth)?));
        Ok(())
    }

    fn end(self) -> Result<()> {
        self.write_map()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use rstest::rstest;
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Meters(f64);

    #[derive(Serialize)]
    struct Pair(u8, String);

    #[derive(Serialize)]
    enum Shape {
        Empty,
        Circle(u32),
        Rect(u32, u32),
        Named { name: String, sides: u8 },
    }

    #[derive(Serialize)]
    struct Optional {
        #[serde(skip_serializing_if = "Option::is_none")]
        maybe: Option<u8>,
        always: u8,
    }

    fn rmp_serde_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        rmp_serde::to_vec(value).expect("rmp-serde encodes it")
    }

    /// Without maps, sets or `Some`, the canonical encoding is rmp-serde's default, byte
    /// for byte.
    #[rstest]
    #[case::integers(&(0u8, 127u8, 128u8, 255u16, 65_536u32, u64::MAX, -1i8, -33i16, i64::MIN))]
    #[case::wide_integers(&(u128::MAX, i128::MIN))]
    #[case::floats(&(1.5f32, -0.0f64, f64::INFINITY))]
    #[case::text(&("", "é", 'x', "a".repeat(40), "b".repeat(300), "c".repeat(70_000)))]
    #[case::bytes(&serde_bytes_like())]
    #[case::options(&(None::<u8>, None::<Option<()>>))]
    #[case::structs(&(Point { x: 1, y: -2 }, Unit, Meters(2.5), Pair(3, "p".to_owned())))]
    #[case::enums(&(
        Shape::Empty,
        Shape::Circle(3),
        Shape::Rect(1, 2),
        Shape::Named { name: "tri".to_owned(), sides: 3 },
    ))]
    #[case::skipped_fields(&(Optional { maybe: None, always: 1 }, Optional { maybe: None, always: 3 }))]
    #[case::sequences(&(vec![1u32; 20], [7u8; 3], Vec::<String>::new(), vec![vec![(); 2]; 17]))]
    fn without_maps_it_is_rmp_serde(#[case] value: &dyn erased::Value) {
        assert_eq!(
            value.canonical().expect("canonical"),
            value.rmp_serde(),
            "canonical and rmp-serde encodings differ"
        );
    }

    fn serde_bytes_like() -> (Vec<u8>, BytesOf) {
        (vec![1, 2, 255], BytesOf(vec![0; 300]))
    }

    /// A type that serialises as a MessagePack `bin`, like `serde_bytes::ByteBuf`.
    struct BytesOf(Vec<u8>);

    impl Serialize for BytesOf {
        fn serialize<S: serde::Serializer>(
            &self,
            serializer: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            serializer.serialize_bytes(&self.0)
        }
    }

    /// Lets one table hold values of different types.
    mod erased {
        pub trait Value {
            fn canonical(&self) -> super::Result<Vec<u8>>;
            fn rmp_serde(&self) -> Vec<u8>;
        }

        impl<T: serde::Serialize> Value for T {
            fn canonical(&self) -> super::Result<Vec<u8>> {
                super::to_vec(self)
            }
            fn rmp_serde(&self) -> Vec<u8> {
                super::rmp_serde_bytes(self)
            }
        }
    }

    #[test]
    fn some_is_an_array_of_one() {
        assert_eq!(to_vec(&None::<Option<u8>>).expect("canonical"), [0xc0]);
        assert_eq!(to_vec(&Some(None::<u8>)).expect("canonical"), [0x91, 0xc0]);
        assert_eq!(
            to_vec(&Some(Some(None::<u8>))).expect("canonical"),
            [0x91, 0x91, 0xc0]
        );
        assert_eq!(to_vec(&Some(())).expect("canonical"), [0x91, 0xc0]);
        assert_eq!(to_vec(&None::<()>).expect("canonical"), [0xc0]);
        assert_eq!(
            to_vec(&Optional {
                maybe: Some(2),
                always: 3
            })
            .expect("canonical"),
            [0x92, 0x91, 0x02, 0x03]
        );
        // Nested `Some`s are containers like any other: their depth is bounded.
        let deep = (0..MAX_DEPTH).fold(Nest(vec![]), |inner, _| Nest(vec![inner]));
        assert!(to_vec(&Some(deep)).is_err());
    }

    #[test]
    fn maps_are_sorted_by_encoded_key() {
        // The keys encode as 05 (5) and cd 01 2c (300): sorted by those bytes.
        let map: HashMap<u32, bool> = [(300, true), (5, false)].into();
        assert_eq!(
            to_vec(&map).expect("canonical"),
            [0x82, 0x05, 0xc2, 0xcd, 0x01, 0x2c, 0xc3]
        );
        let btree: BTreeMap<u32, bool> = map.clone().into_iter().collect();
        assert_eq!(
            to_vec(&btree).expect("canonical"),
            to_vec(&map).expect("canonical")
        );
    }

    #[test]
    fn sets_are_sorted_by_encoded_element_and_lists_are_not() {
        let set: HashSet<&str> = ["b", "a"].into();
        assert_eq!(
            to_vec(&set).expect("canonical"),
            [0x92, 0xa1, b'a', 0xa1, b'b']
        );
        let btree: BTreeSet<&str> = ["b", "a"].into();
        assert_eq!(
            to_vec(&btree).expect("canonical"),
            to_vec(&set).expect("canonical")
        );
        assert_eq!(
            to_vec(&vec!["b", "a"]).expect("canonical"),
            [0x92, 0xa1, b'b', 0xa1, b'a']
        );
    }

    /// A map serialised without a length hint, the way `#[serde(flatten)]` structs and
    /// some hand-written impls do.
    struct UnsizedMap(Vec<(u8, u8)>);

    impl Serialize for UnsizedMap {
        fn serialize<S: serde::Serializer>(
            &self,
            serializer: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(None)?;
            for (key, value) in &self.0 {
                map.serialize_entry(key, value)?;
            }
            map.end()
        }
    }

    /// A sequence serialised without a length hint.
    struct UnsizedSeq(u32);

    impl Serialize for UnsizedSeq {
        fn serialize<S: serde::Serializer>(
            &self,
            serializer: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            serializer.collect_seq((0..self.0).filter(|_| true))
        }
    }

    #[test]
    fn unannounced_lengths_are_counted() {
        // A map of unknown type keeps its order.
        assert_eq!(
            to_vec(&UnsizedMap(vec![(2, 0), (1, 0)])).expect("canonical"),
            [0x82, 0x02, 0x00, 0x01, 0x00]
        );
        let long = to_vec(&UnsizedSeq(20)).expect("canonical");
        assert_eq!(long[..3], [0xdc, 0x00, 20]);
        assert_eq!(long, rmp_serde_bytes(&(0..20u32).collect::<Vec<_>>()));
    }

    /// A map that keeps its insertion order (like `IndexMap`), through `collect_map`.
    struct InsertionOrdered(Vec<(u32, bool)>);

    impl Serialize for InsertionOrdered {
        fn serialize<S: serde::Serializer>(
            &self,
            serializer: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
        }
    }

    #[test]
    fn ordered_maps_keep_their_order() {
        assert_eq!(
            to_vec(&InsertionOrdered(vec![(300, true), (5, false)])).expect("canonical"),
            [0x82, 0xcd, 0x01, 0x2c, 0xc3, 0x05, 0xc2]
        );
        assert_eq!(
            to_vec(&InsertionOrdered(vec![(5, false), (300, true)])).expect("canonical"),
            [0x82, 0x05, 0xc2, 0xcd, 0x01, 0x2c, 0xc3]
        );
    }

    /// Stand-ins for other crates' collections: only their paths matter here.
    #[allow(dead_code)]
    mod hashbrown {
        pub struct HashMap<K, V, S>(pub std::marker::PhantomData<(K, V, S)>);
        pub struct HashSet<T, S>(pub std::marker::PhantomData<(T, S)>);
    }

    #[allow(dead_code)]
    mod indexmap {
        pub struct IndexMap<K, V>(pub std::marker::PhantomData<(K, V)>);
        pub struct IndexSet<T>(pub std::marker::PhantomData<T>);
    }

    struct FxBuildHasher;

    #[test]
    fn unordered_collections_are_known_by_name() {
        type FxHashMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxBuildHasher>>;
        assert!(is_one_of::<&HashMap<String, Vec<u8>>>(UNORDERED_MAPS));
        assert!(is_one_of::<&FxHashMap<u8, u8>>(UNORDERED_MAPS));
        assert!(is_one_of::<&hashbrown::HashMap<u8, u8, FxBuildHasher>>(
            UNORDERED_MAPS
        ));
        assert!(is_one_of::<&BTreeMap<u8, u8>>(UNORDERED_MAPS));
        assert!(is_one_of::<&HashSet<HashMap<u8, u8>>>(UNORDERED_SETS));
        assert!(is_one_of::<&hashbrown::HashSet<u8, FxBuildHasher>>(
            UNORDERED_SETS
        ));
        assert!(is_one_of::<&BTreeSet<u8>>(UNORDERED_SETS));

        assert!(!is_one_of::<&indexmap::IndexMap<u8, u8>>(UNORDERED_MAPS));
        assert!(!is_one_of::<&indexmap::IndexSet<u8>>(UNORDERED_SETS));
        // What a map's entries look like through an adapter is not its type.
        assert!(!is_one_of::<
            std::iter::Map<std::vec::IntoIter<HashMap<u8, u8>>, fn(HashMap<u8, u8>) -> u8>,
        >(UNORDERED_MAPS));
        assert!(!is_one_of::<&Vec<HashSet<u8>>>(UNORDERED_SETS));
    }

    /// Announces one length and writes another.
    struct LyingSeq;

    impl Serialize for LyingSeq {
        fn serialize<S: serde::Serializer>(
            &self,
            serializer: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = serializer.serialize_seq(Some(3))?;
            seq.serialize_element(&1u8)?;
            seq.end()
        }
    }

    #[test]
    fn an_impl_that_lies_about_its_length_is_an_error_not_a_key() {
        let err = to_vec(&LyingSeq).expect_err("a lie");
        assert!(err.to_string().contains("announced 3"), "{err}");
    }

    #[derive(Serialize)]
    struct Nest(Vec<Nest>);

    #[test]
    fn nesting_is_bounded() {
        let nest = |levels: usize| (0..levels).fold(Nest(vec![]), |inner, _| Nest(vec![inner]));
        assert!(to_vec(&nest(MAX_DEPTH - 1)).is_ok());
        assert!(to_vec(&nest(MAX_DEPTH)).is_err());
    }
}
