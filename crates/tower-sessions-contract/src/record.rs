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
//! Rows written before this layout hold the whole `Record`, id included, as
//! a MessagePack map (`rmp_serde::to_vec_named`); they still load, and are
//! rewritten in this layout at their next save.

use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store;

/// First byte of every record in this layout.
const MARKER: u8 = 0xc1;
/// The layout's version, second byte.
const VERSION: u8 = 1;

/// The record's data and expiry, without its id.
pub(crate) fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    let mut out = vec![MARKER, VERSION];
    rmp_serde::encode::write(&mut out, &(&record.data, &record.expiry_date))
        .map_err(|err| session_store::Error::Encode(err.to_string()))?;
    Ok(out)
}

/// The record stored under `id`. `None` for a row in the old layout whose
/// id is not `id` (only a row copied or written by hand gets there; handing
/// it out would move the session to the id inside it).
pub(crate) fn decode(id: Id, bytes: &[u8]) -> session_store::Result<Option<Record>> {
    let decode_err = |err: rmp_serde::decode::Error| session_store::Error::Decode(err.to_string());
    match bytes {
        [MARKER, VERSION, rest @ ..] => {
            let (data, expiry_date): (_, OffsetDateTime) =
                rmp_serde::from_slice(rest).map_err(decode_err)?;
            Ok(Some(Record {
                id,
                data,
                expiry_date,
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
            Ok(Some(record))
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

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn round_trips_without_the_id() -> Result {
        let record = record();
        let bytes = encode(&record)?;
        assert_eq!(&bytes[..2], &[MARKER, VERSION]);
        for id_bytes in [record.id.0.to_le_bytes(), record.id.0.to_be_bytes()] {
            assert!(!contains(&bytes, &id_bytes), "the id is not stored");
        }
        assert!(!contains(&bytes, record.id.to_string().as_bytes()));
        assert_eq!(decode(record.id, &bytes)?, Some(record.clone()));
        // The id is whatever the row was looked up by.
        let other = Id(42);
        assert_eq!(decode(other, &bytes)?.map(|r| r.id), Some(other));
        Ok(())
    }

    #[test]
    fn old_layout_still_loads_under_its_own_id_only() -> Result {
        let record = record();
        let old = rmp_serde::to_vec_named(&record)?;
        assert_ne!(old[0], MARKER, "the old layout is a MessagePack map");
        assert_eq!(decode(record.id, &old)?, Some(record.clone()));
        assert_eq!(decode(Id(42), &old)?, None);
        Ok(())
    }

    #[test]
    fn bad_bytes_are_decode_errors() {
        let record = record();
        let mut future = encode(&record).expect("encodes");
        future[1] = 2;
        let truncated = &encode(&record).expect("encodes")[..8];
        for bytes in [
            &future[..],
            truncated,
            &[MARKER],
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
