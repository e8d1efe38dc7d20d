//! Key and value layout inside one project's RocksDB.
//!
//! Column families:
//! * `default` — the catalog: format version, databases, collections, name lookups and
//!   per-collection counters.
//! * `records` — `coll(16) | label(4)` → id, document, uri, metadata.
//! * `vectors` — `coll(16) | label(4)` → the embedding as given (f32 little-endian).
//! * `ids`     — `coll(16) | id` → label.
//! * `mindex`  — `coll(16) | keylen(2) | key | tag(1) | value | label(4)` → empty: the
//!   metadata index that turns selective filters into range scans.
//!
//! A label is a collection-local u32 assigned when a record is first written; it never
//! changes, so records keep their order (Chroma's get order).

use uuid::Uuid;

use super::types::{MetaValue, Metadata, Scalar};

pub const CF_RECORDS: &str = "records";
pub const CF_VECTORS: &str = "vectors";
pub const CF_IDS: &str = "ids";
pub const CF_MINDEX: &str = "mindex";
pub const COLUMN_FAMILIES: [&str; 4] = [CF_RECORDS, CF_VECTORS, CF_IDS, CF_MINDEX];

pub const FORMAT_KEY: &[u8] = b"format";
pub const FORMAT_VERSION: &[u8] = b"1";
/// A random id written once when a project's store is created: a project deleted and
/// created again under the same name is another incarnation, whose sequence numbers
/// must never be replayed onto a copy of the first.
pub const INCARNATION_KEY: &[u8] = b"incarnation";

pub fn database_key(name: &str) -> Vec<u8> {
    [b"db/".as_slice(), name.as_bytes()].concat()
}
pub const DATABASE_PREFIX: &[u8] = b"db/";

pub fn collection_key(id: &Uuid) -> Vec<u8> {
    [b"col/".as_slice(), id.as_bytes()].concat()
}
pub const COLLECTION_PREFIX: &[u8] = b"col/";

pub fn counters_key(id: &Uuid) -> Vec<u8> {
    [b"ctr/".as_slice(), id.as_bytes()].concat()
}

pub fn label_key(coll: &Uuid, label: u32) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(coll.as_bytes());
    k[16..].copy_from_slice(&label.to_be_bytes());
    k
}

pub fn label_from_key(key: &[u8]) -> Option<u32> {
    let tail: [u8; 4] = key.get(key.len().checked_sub(4)?..)?.try_into().ok()?;
    Some(u32::from_be_bytes(tail))
}

pub fn id_key(coll: &Uuid, id: &str) -> Vec<u8> {
    [coll.as_bytes().as_slice(), id.as_bytes()].concat()
}

/// The smallest key after every key starting with `prefix` (for range deletes and bounds).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Per-collection counters, updated in the same write batch as the records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub next_label: u32,
    pub count: u64,
    /// Write batches that changed the collection's vectors or records so far. The saved
    /// index records the version it reflects, so that a reopen whose counters show the
    /// same version can serve from the files without reading RocksDB.
    pub version: u64,
}

impl Counters {
    pub fn encode(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&self.next_label.to_le_bytes());
        b[4..12].copy_from_slice(&self.count.to_le_bytes());
        b[12..].copy_from_slice(&self.version.to_le_bytes());
        b
    }

    /// Reads both forms: the 12-byte one of stores written before versions (version 0,
    /// which no saved index claims) and the 20-byte one.
    pub fn decode(b: &[u8]) -> Option<Counters> {
        let version = match b.len() {
            12 => 0,
            20 => u64::from_le_bytes(b.get(12..20)?.try_into().ok()?),
            _ => return None,
        };
        Some(Counters {
            next_label: u32::from_le_bytes(b.get(..4)?.try_into().ok()?),
            count: u64::from_le_bytes(b.get(4..12)?.try_into().ok()?),
            version,
        })
    }
}

// ---- metadata index ----

const TAG_BOOL: u8 = 1;
const TAG_NUM: u8 = 2;
const TAG_STR: u8 = 3;
/// Elements of list-valued metadata are indexed under their scalar tag with this bit set,
/// so `$eq` never matches a list and `$contains` only matches lists.
pub const TAG_LIST: u8 = 0x80;

/// Ints and floats share one order-preserving 16-byte encoding so range scans compare them
/// numerically: the value as f64, then, to keep ints beyond ±2^53 exact, as i64 (a float's
/// i64 part is its truncation: ints and floats that share an f64 still order correctly).
pub fn sortable_number(s: &Scalar) -> Option<[u8; 16]> {
    let (f, i) = match s {
        Scalar::Int(i) => (*i as f64, *i),
        Scalar::Float(f) => (*f, *f as i64),
        _ => return None,
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&sortable_f64(f));
    out[8..].copy_from_slice(&((i as u64) ^ (1 << 63)).to_be_bytes());
    Some(out)
}

pub const NUMBER_BYTES: usize = 16;

pub fn sortable_f64(v: f64) -> [u8; 8] {
    let v = if v == 0.0 { 0.0 } else { v };
    let bits = v.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    ordered.to_be_bytes()
}

/// The index key for `key`'s value, without the trailing label: `coll | keylen | key | tag | value`.
pub fn mindex_value_prefix(coll: &Uuid, key: &str, scalar: &Scalar, list: bool) -> Vec<u8> {
    let mut out = mindex_key_prefix(coll, key);
    let flag = if list { TAG_LIST } else { 0 };
    match scalar {
        Scalar::Bool(b) => {
            out.push(TAG_BOOL | flag);
            out.push(u8::from(*b));
        }
        Scalar::Int(_) | Scalar::Float(_) => {
            out.push(TAG_NUM | flag);
            out.extend_from_slice(&sortable_number(scalar).unwrap_or_default());
        }
        Scalar::Str(s) => {
            out.push(TAG_STR | flag);
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// `coll | keylen | key`: every index entry of one metadata key.
pub fn mindex_key_prefix(coll: &Uuid, key: &str) -> Vec<u8> {
    let kb = key.as_bytes();
    let len = u16::try_from(kb.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(16 + 2 + kb.len() + 10);
    out.extend_from_slice(coll.as_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&kb[..usize::from(len)]);
    out
}

/// `coll | keylen | key | TAG_NUM`: the numeric range of one key (scalars only).
pub fn mindex_numeric_prefix(coll: &Uuid, key: &str) -> Vec<u8> {
    let mut out = mindex_key_prefix(coll, key);
    out.push(TAG_NUM);
    out
}

/// Every index key a record's metadata produces.
pub fn mindex_entries(coll: &Uuid, label: u32, md: &Metadata) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for (k, v) in md {
        match v {
            MetaValue::Scalar(s) => {
                keys.push(with_label(mindex_value_prefix(coll, k, s, false), label))
            }
            MetaValue::List(items) => {
                for s in items {
                    keys.push(with_label(mindex_value_prefix(coll, k, s, true), label));
                }
            }
        }
    }
    keys
}

fn with_label(mut prefix: Vec<u8>, label: u32) -> Vec<u8> {
    prefix.extend_from_slice(&label.to_be_bytes());
    prefix
}

// ---- record values ----

/// The non-vector part of a stored record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredRecord {
    pub id: String,
    pub document: Option<String>,
    pub uri: Option<String>,
    pub metadata: Option<Metadata>,
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn take_opt_str(buf: &mut &[u8]) -> Option<Option<String>> {
    let (&flag, rest) = buf.split_first()?;
    *buf = rest;
    if flag == 0 {
        return Some(None);
    }
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(buf.get(4..4 + len)?).ok()?.to_string();
    *buf = &buf[4 + len..];
    Some(Some(s))
}

impl StoredRecord {
    /// `id | document | uri | metadata-json` with length-prefixed strings.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(32 + self.id.len() + self.document.as_ref().map_or(0, |d| d.len()));
        put_opt_str(&mut out, Some(&self.id));
        put_opt_str(&mut out, self.document.as_deref());
        put_opt_str(&mut out, self.uri.as_deref());
        if let Some(md) = &self.metadata {
            // serializing a map of plain values cannot fail
            if let Ok(json) = serde_json::to_vec(md) {
                out.extend_from_slice(&json);
            }
        }
        out
    }

    pub fn decode(mut buf: &[u8]) -> Option<StoredRecord> {
        let id = take_opt_str(&mut buf)??;
        let document = take_opt_str(&mut buf)?;
        let uri = take_opt_str(&mut buf)?;
        let metadata = if buf.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(buf).ok()?)
        };
        Some(StoredRecord {
            id,
            document,
            uri,
            metadata,
        })
    }

    /// Only the document, without decoding metadata (document filters scan many records).
    pub fn decode_document(mut buf: &[u8]) -> Option<Option<String>> {
        take_opt_str(&mut buf)?;
        take_opt_str(&mut buf)
    }
}

/// A stored embedding: `reserved(4) | f32...`, all little-endian. The first word once
/// counted re-embeddings for the old graph's point ids; it is written as 0 and ignored.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + v.len() * 4);
    out.extend_from_slice(&0u32.to_le_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

pub fn decode_vector(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) || b.len() < 4 {
        return None;
    }
    Some(
        b[4..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_f64_preserves_order() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            1.0,
            2.0,
            7.5,
            1e300,
        ];
        for w in vals.windows(2) {
            assert!(
                sortable_f64(w[0]) <= sortable_f64(w[1]),
                "{} {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(sortable_f64(-0.0), sortable_f64(0.0));
        assert_eq!(sortable_f64(5.0), sortable_f64(5_f64));
    }

    #[test]
    fn sortable_number_orders_ints_and_floats_exactly() {
        let big = 1i64 << 53;
        let vals = [
            Scalar::Int(i64::MIN),
            Scalar::Float(-1e10),
            Scalar::Int(-3),
            Scalar::Float(-2.5),
            Scalar::Int(0),
            Scalar::Float(0.5),
            Scalar::Int(1),
            Scalar::Float(1.5),
            Scalar::Int(big),
            Scalar::Int(big + 1),
            Scalar::Int(i64::MAX),
        ];
        for w in vals.windows(2) {
            assert!(
                sortable_number(&w[0]) < sortable_number(&w[1]),
                "{:?} {:?}",
                w[0],
                w[1]
            );
        }
        assert_eq!(
            sortable_number(&Scalar::Float(5.0)),
            sortable_number(&Scalar::Int(5))
        );
        assert_eq!(sortable_number(&Scalar::Str("x".into())), None);
    }

    #[test]
    fn record_roundtrip() {
        let mut md = Metadata::new();
        md.insert("a".into(), MetaValue::Scalar(Scalar::Int(3)));
        md.insert("f".into(), MetaValue::Scalar(Scalar::Float(2.5)));
        md.insert(
            "t".into(),
            MetaValue::List(vec![Scalar::Str("x".into()), Scalar::Str("y".into())]),
        );
        let r = StoredRecord {
            id: "id-1".into(),
            document: Some("hello".into()),
            uri: None,
            metadata: Some(md),
        };
        let enc = r.encode();
        assert_eq!(StoredRecord::decode(&enc), Some(r.clone()));
        assert_eq!(
            StoredRecord::decode_document(&enc),
            Some(Some("hello".into()))
        );
        let bare = StoredRecord {
            id: "x".into(),
            ..Default::default()
        };
        assert_eq!(StoredRecord::decode(&bare.encode()), Some(bare));
        assert_eq!(StoredRecord::decode(&[1, 200, 0]), None);
    }

    #[test]
    fn float_metadata_stays_float() {
        // 2.0 must come back as a float, not the int 2
        let mut md = Metadata::new();
        md.insert("f".into(), MetaValue::Scalar(Scalar::Float(2.0)));
        let r = StoredRecord {
            id: "x".into(),
            metadata: Some(md.clone()),
            ..Default::default()
        };
        let back = StoredRecord::decode(&r.encode()).unwrap();
        assert_eq!(back.metadata, Some(md));
    }

    #[test]
    fn prefix_end_bounds() {
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert!(prefix_end(&[0xff, 0xff]) > vec![0xff, 0xff]);
    }

    #[test]
    fn vector_roundtrip() {
        let v = vec![1.0, -2.5, f32::MIN_POSITIVE];
        assert_eq!(decode_vector(&encode_vector(&v)), Some(v));
        // values written with a re-embedding count in the first word still read
        let mut old = 7u32.to_le_bytes().to_vec();
        old.extend_from_slice(&1.5f32.to_le_bytes());
        assert_eq!(decode_vector(&old), Some(vec![1.5]));
        assert_eq!(decode_vector(&[0, 0, 0]), None);
    }
}
