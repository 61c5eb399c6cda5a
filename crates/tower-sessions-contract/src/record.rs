//! How a tower-sessions [`Record`] is kept in the `data` column.
//!
//! The row's token is already the session id (or, when the backend hashes
//! tokens, an HMAC of it), so the id is not stored again:
//! with hashing on, a copy of the file would otherwise hand out every
//! cookie. The id comes back from the token the caller looks the row up by.
//!
//! Layout (version 1):
//!
//! | bytes | content |
//! |---|---|
//! | 0 | [`MARKER`], `0xc1`: MessagePack's never-used byte, so no MessagePack value starts with it |
//! | 1 | [`VERSION`] |
//! | 2.. | MessagePack array `[data, expiry_date]`, as `rmp-serde` writes the tuple |
//!
//! The data map is written with its keys in sorted order (nested objects
//! are `serde_json` maps, sorted already), so equal data always encodes to
//! equal bytes: the store compares those bytes, by digest, to tell a save
//! that changes nothing. Any key order decodes; rows written in another
//! order only compare unequal once, until their next write.
//!
//! Rows written before this layout hold the whole `Record`, id included, as
//! a MessagePack map (`rmp_serde::to_vec_named`); they still load, and are
//! rewritten in this layout at their next save.

use std::collections::HashMap;
use std::io::Cursor;
use std::ops::Range;

use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store;

/// First byte of every record in this layout.
const MARKER: u8 = 0xc1;
/// The layout's version, second byte.
const VERSION: u8 = 1;
/// MessagePack's marker of a two-element array (`fixarray` of 2): the
/// `[data, expiry_date]` pair.
const PAIR: u8 = 0x92;

/// A record in the `data` column's layout.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// The whole value to store.
    pub(crate) bytes: Vec<u8>,
    /// Where the record's data (without the expiry) is in `bytes`.
    data: Range<usize>,
}

impl Encoded {
    /// The record's data as encoded: equal data, equal bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.bytes[self.data.clone()]
    }
}

/// A stored record, decoded.
#[derive(Debug)]
pub(crate) struct Decoded<'b> {
    pub(crate) record: Record,
    /// The record's data as stored, when the row is in this layout: the
    /// bytes that [`Encoded::data`] gives for equal data, if the row's
    /// writer sorted the keys.
    pub(crate) data: Option<&'b [u8]>,
}

/// The data map with its keys sorted, so equal maps encode alike.
struct Sorted<'a>(&'a HashMap<String, serde_json::Value>);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<_> = self.0.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        serializer.collect_map(entries)
    }
}

/// The record's data and expiry, without its id.
pub(crate) fn encode(record: &Record) -> session_store::Result<Encoded> {
    let encode_err = |err: rmp_serde::encode::Error| session_store::Error::Encode(err.to_string());
    // The pair header, then each element: the bytes `rmp-serde` writes for
    // the tuple, with the data's end known.
    let mut bytes = vec![MARKER, VERSION, PAIR];
    rmp_serde::encode::write(&mut bytes, &Sorted(&record.data)).map_err(encode_err)?;
    let data = 3..bytes.len();
    rmp_serde::encode::write(&mut bytes, &record.expiry_date).map_err(encode_err)?;
    Ok(Encoded { bytes, data })
}

/// The record stored under `id`. `None` for a row in the old layout whose
/// id is not `id` (only a row copied or written by hand gets there; handing
/// it out would move the session to the id inside it).
pub(crate) fn decode(id: Id, bytes: &[u8]) -> session_store::Result<Option<Decoded<'_>>> {
    let decode_err = |err: rmp_serde::decode::Error| session_store::Error::Decode(err.to_string());
    match bytes {
        [MARKER, VERSION, PAIR, pair @ ..] => {
            // Read the data through a cursor, to learn where it ends.
            let mut de = rmp_serde::Deserializer::new(Cursor::new(pair));
            let data = HashMap::deserialize(&mut de).map_err(decode_err)?;
            // At most `pair.len()`, which fits in usize.
            let end = usize::try_from(de.position()).unwrap_or(pair.len());
            let (stored, rest) = pair.split_at(end.min(pair.len()));
            let expiry_date: OffsetDateTime = rmp_serde::from_slice(rest).map_err(decode_err)?;
            Ok(Some(Decoded {
                record: Record {
                    id,
                    data,
                    expiry_date,
                },
                data: Some(stored),
            }))
        }
        [MARKER, VERSION, rest @ ..] => {
            // Another encoding of the pair than `rmp-serde`'s: decodes, but
            // compares unequal.
            let (data, expiry_date) = rmp_serde::from_slice(rest).map_err(decode_err)?;
            Ok(Some(Decoded {
                record: Record {
                    id,
                    data,
                    expiry_date,
                },
                data: None,
            }))
        }
        [MARKER, version, ..] => Err(session_store::Error::Decode(format!(
            "session record in unknown layout version {version}"
        ))),
        legacy => {
            let record: Record = rmp_serde::from_slice(legacy).map_err(decode_err)?;
            if record.id != id {
                tracing::warn!("stored session record has another id; ignored");
                return Ok(None);
            }
            Ok(Some(Decoded { record, data: None }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

    fn record() -> Record {
        let mut record = Record {
            id: Id(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            data: Default::default(),
            expiry_date: OffsetDateTime::UNIX_EPOCH + time::Duration::new(1_900_000_000, 123),
        };
        record
            .data
            .insert("user".into(), serde_json::json!({"name": "ada", "n": 7}));
        record
    }

    /// `record()` with more keys, inserted in `order`.
    fn record_with_keys(order: &[usize]) -> Record {
        let mut record = record();
        record.data.clear();
        for &i in order {
            record
                .data
                .insert(format!("key{i}"), serde_json::json!({"i": i, "s": "x"}));
        }
        record
    }

    fn decoded(id: Id, bytes: &[u8]) -> Result<Option<Record>> {
        Ok(decode(id, bytes)?.map(|d| d.record))
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn round_trips_without_the_id() -> Result {
        let record = record();
        let bytes = encode(&record)?.bytes;
        assert_eq!(&bytes[..2], &[MARKER, VERSION]);
        for id_bytes in [record.id.0.to_le_bytes(), record.id.0.to_be_bytes()] {
            assert!(!contains(&bytes, &id_bytes), "the id is not stored");
        }
        assert!(!contains(&bytes, record.id.to_string().as_bytes()));
        assert_eq!(decoded(record.id, &bytes)?, Some(record.clone()));
        // The id is whatever the row was looked up by.
        let other = Id(42);
        assert_eq!(decoded(other, &bytes)?.map(|r| r.id), Some(other));
        Ok(())
    }

    #[test]
    fn the_layout_is_rmp_serdes_pair() -> Result {
        // What earlier versions wrote (a one-key map has one order), so
        // rows go both ways between versions.
        let record = record();
        let mut earlier = vec![MARKER, VERSION];
        rmp_serde::encode::write(&mut earlier, &(&record.data, &record.expiry_date))?;
        assert_eq!(encode(&record)?.bytes, earlier);
        Ok(())
    }

    #[test]
    fn equal_data_encodes_to_equal_bytes_whatever_the_order() -> Result {
        let forward = record_with_keys(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let backward = record_with_keys(&[7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(forward, backward);
        let (a, b) = (encode(&forward)?, encode(&backward)?);
        assert_eq!(a.bytes, b.bytes);
        // The data bytes are found again on decode, without the expiry.
        let stored = decode(forward.id, &a.bytes)?.ok_or("decodes")?;
        assert_eq!(stored.data, Some(a.data()));
        assert_eq!(stored.record, forward);
        let mut later = forward.clone();
        later.expiry_date += time::Duration::hours(1);
        assert_eq!(encode(&later)?.data(), a.data());
        assert_ne!(encode(&later)?.bytes, a.bytes);
        // Changed data, changed bytes.
        let mut changed = forward;
        changed.data.insert("key3".into(), serde_json::json!(3));
        assert_ne!(encode(&changed)?.data(), a.data());
        Ok(())
    }

    #[test]
    fn any_stored_key_order_loads() -> Result {
        // The pair as a writer without sorting might have laid it out.
        let record = record_with_keys(&[3, 1, 2]);
        let mut unsorted = vec![MARKER, VERSION];
        rmp_serde::encode::write(&mut unsorted, &(&record.data, &record.expiry_date))?;
        assert_eq!(decoded(record.id, &unsorted)?, Some(record));
        Ok(())
    }

    #[test]
    fn old_layout_still_loads_under_its_own_id_only() -> Result {
        let record = record();
        let old = rmp_serde::to_vec_named(&record)?;
        assert_ne!(old[0], MARKER, "the old layout is a MessagePack map");
        let stored = decode(record.id, &old)?.ok_or("decodes")?;
        assert_eq!(stored.record, record);
        assert_eq!(stored.data, None, "never equal to a new encoding");
        assert_eq!(decoded(Id(42), &old)?, None);
        Ok(())
    }

    #[test]
    fn bad_bytes_are_decode_errors() {
        let record = record();
        let mut future = encode(&record).expect("encodes").bytes;
        future[1] = 2;
        let whole = encode(&record).expect("encodes").bytes;
        let truncated = &whole[..8];
        let no_expiry = &whole[..encode(&record).expect("encodes").data.end];
        let mut not_a_pair = whole.clone();
        not_a_pair[2] = 0x93;
        for bytes in [
            &future[..],
            truncated,
            no_expiry,
            &not_a_pair,
            &[MARKER],
            &[MARKER, VERSION],
            &[],
            b"\x0d\xff\x81not msgpack",
        ] {
            match decode(record.id, bytes) {
                Err(session_store::Error::Decode(message)) => assert!(!message.is_empty()),
                other => panic!("{bytes:?}: expected a decode error, got {other:?}"),
            }
        }
    }
}
