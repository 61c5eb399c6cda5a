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

use serde::{Serialize, Serializer};
use time::{Date, OffsetDateTime, UtcOffset};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store;

/// First byte of every record in this layout.
const MARKER: u8 = 0xc1;
/// The layout's version, second byte.
const VERSION: u8 = 1;
/// MessagePack's marker of a two-element array (`fixarray` of 2): the
/// `[data, expiry_date]` pair.
const PAIR: u8 = 0x92;
/// Where the data starts: after the marker, the version and [`PAIR`].
const DATA_START: usize = 3;

/// A record's data, encoded in this layout so far: the expiry is still to
/// come (see [`with_expiry`](Self::with_expiry)).
#[derive(Debug)]
pub(crate) struct Encoded {
    bytes: Vec<u8>,
}

impl Encoded {
    /// The record's data as encoded: equal data, equal bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.bytes[DATA_START..]
    }

    /// The whole value to store: the data and `expiry_date`.
    pub(crate) fn with_expiry(
        mut self,
        expiry_date: OffsetDateTime,
    ) -> session_store::Result<Vec<u8>> {
        write_expiry(&mut self.bytes, expiry_date)
            .map_err(|err| session_store::Error::Encode(err.to_string()))?;
        Ok(self.bytes)
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
        if self.0.len() < 2 {
            // One order only: no need to sort.
            return serializer.collect_map(self.0);
        }
        let mut entries: Vec<_> = self.0.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        serializer.collect_map(entries)
    }
}

/// The record's data, without its id, ready for its expiry.
pub(crate) fn encode(record: &Record) -> session_store::Result<Encoded> {
    // The pair header, then the data: what `rmp-serde` writes for the
    // tuple, up to the expiry.
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(&[MARKER, VERSION, PAIR]);
    rmp_serde::encode::write(&mut bytes, &Sorted(&record.data))
        .map_err(|err| session_store::Error::Encode(err.to_string()))?;
    Ok(Encoded { bytes })
}

/// `at` as `time` serializes an `OffsetDateTime` for a binary format (the
/// tuple year, day of year, hour, minute, second, nanosecond, offset hours,
/// minutes, seconds), each number in MessagePack's shortest form as
/// `rmp-serde` writes it; written directly, at a fraction of the cost.
fn write_expiry(out: &mut Vec<u8>, at: OffsetDateTime) -> Result<(), std::io::Error> {
    use rmp::encode::{write_array_len, write_sint, write_uint, ValueWriteError};
    let io = |err: ValueWriteError<std::io::Error>| match err {
        ValueWriteError::InvalidMarkerWrite(err) | ValueWriteError::InvalidDataWrite(err) => err,
    };
    let offset = at.offset();
    write_array_len(out, 9).map_err(io)?;
    write_sint(out, at.year().into()).map_err(io)?;
    for n in [
        u64::from(at.ordinal()),
        at.hour().into(),
        at.minute().into(),
        at.second().into(),
        at.nanosecond().into(),
    ] {
        write_uint(out, n).map_err(io)?;
    }
    for n in [
        offset.whole_hours(),
        offset.minutes_past_hour(),
        offset.seconds_past_minute(),
    ] {
        write_sint(out, n.into()).map_err(io)?;
    }
    Ok(())
}

/// What [`write_expiry`] wrote (or `rmp-serde` with `time`'s serializer).
fn read_expiry(mut rd: &[u8]) -> Result<OffsetDateTime, String> {
    use rmp::decode::{read_array_len, read_int};
    let len = read_array_len(&mut rd).map_err(|err| err.to_string())?;
    if len != 9 {
        return Err(format!("expiry date of {len} fields, not 9"));
    }
    let mut int = |name: &str| -> Result<i64, String> {
        read_int(&mut rd).map_err(|err| format!("expiry date's {name}: {err}"))
    };
    let year = int("year")?;
    let ordinal = int("day of year")?;
    let [hour, minute, second] = [int("hour")?, int("minute")?, int("second")?];
    let nanosecond = int("nanosecond")?;
    let offset = [
        int("offset hours")?,
        int("offset minutes")?,
        int("offset seconds")?,
    ];
    let small = |n: i64| i8::try_from(n).map_err(|_| format!("expiry date field {n} out of range"));
    let unsigned =
        |n: i64| u8::try_from(n).map_err(|_| format!("expiry date field {n} out of range"));
    let range = |err: time::error::ComponentRange| err.to_string();
    let date = Date::from_ordinal_date(
        i32::try_from(year).map_err(|_| format!("expiry year {year} out of range"))?,
        u16::try_from(ordinal).map_err(|_| format!("expiry day {ordinal} out of range"))?,
    )
    .map_err(range)?;
    let datetime = date
        .with_hms_nano(
            unsigned(hour)?,
            unsigned(minute)?,
            unsigned(second)?,
            u32::try_from(nanosecond)
                .map_err(|_| format!("expiry nanosecond {nanosecond} out of range"))?,
        )
        .map_err(range)?;
    let offset = UtcOffset::from_hms(small(offset[0])?, small(offset[1])?, small(offset[2])?)
        .map_err(range)?;
    Ok(datetime.assume_offset(offset))
}

/// The length of the MessagePack value at the start of `bytes`, or `None`
/// when it is cut short or holds the never-used marker `0xc1`. Reads each
/// byte at most once (no recursion: a count of values still to skip).
fn value_len(bytes: &[u8]) -> Option<usize> {
    let be = |at: usize, n: usize| -> Option<usize> {
        let field = bytes.get(at..at.checked_add(n)?)?;
        Some(
            field
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
        )
    };
    let mut at = 0usize;
    // Values still to skip; arrays and maps add their elements.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let marker = *bytes.get(at)?;
        // (bytes of the header, bytes of payload, values inside)
        let (head, body, inside): (usize, usize, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (1, 0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (1, usize::from(marker & 0x1f), 0),
            0xc1 => return None,
            0xc4 | 0xd9 => (2, be(at + 1, 1)?, 0),
            0xc5 | 0xda => (3, be(at + 1, 2)?, 0),
            0xc6 | 0xdb => (5, be(at + 1, 4)?, 0),
            // ext 8/16/32: the length, then a type byte.
            0xc7 => (3, be(at + 1, 1)?, 0),
            0xc8 => (4, be(at + 1, 2)?, 0),
            0xc9 => (6, be(at + 1, 4)?, 0),
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc | 0xd0 => (2, 0, 0),
            0xcd | 0xd1 => (3, 0, 0),
            0xce | 0xd2 => (5, 0, 0),
            0xcf | 0xd3 => (9, 0, 0),
            // fixext 1/2/4/8/16: a type byte, then the data.
            0xd4 => (3, 0, 0),
            0xd5 => (4, 0, 0),
            0xd6 => (6, 0, 0),
            0xd7 => (10, 0, 0),
            0xd8 => (18, 0, 0),
            0xdc => (3, 0, be(at + 1, 2)? as u64),
            0xdd => (5, 0, be(at + 1, 4)? as u64),
            0xde => (3, 0, 2 * (be(at + 1, 2)? as u64)),
            0xdf => (5, 0, 2 * (be(at + 1, 4)? as u64)),
        };
        at = at.checked_add(head)?.checked_add(body)?;
        if at > bytes.len() {
            return None;
        }
        // Saturating: a count past what the bytes can hold ends at their
        // end (each value takes at least a byte) all the same.
        pending = pending.saturating_add(inside);
    }
    Some(at)
}

/// The record stored under `id`. `None` for a row in the old layout whose
/// id is not `id` (only a row copied or written by hand gets there; handing
/// it out would move the session to the id inside it).
pub(crate) fn decode(id: Id, bytes: &[u8]) -> session_store::Result<Option<Decoded<'_>>> {
    let decode_err = |err: rmp_serde::decode::Error| session_store::Error::Decode(err.to_string());
    match bytes {
        [MARKER, VERSION, PAIR, pair @ ..] => {
            let end = value_len(pair).ok_or_else(|| {
                session_store::Error::Decode(
                    "session record's data is cut short or malformed".into(),
                )
            })?;
            let (stored, rest) = pair.split_at(end);
            let data = rmp_serde::from_slice(stored).map_err(decode_err)?;
            let expiry_date = read_expiry(rest).map_err(session_store::Error::Decode)?;
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

    /// The whole value `encode` and `with_expiry` make for `record`.
    fn stored(record: &Record) -> Result<Vec<u8>> {
        Ok(encode(record)?.with_expiry(record.expiry_date)?)
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
        let bytes = stored(&record)?;
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
        // rows go both ways between versions: dates and offsets of every
        // size of MessagePack number, both signs.
        let mut record = record();
        let offsets = [
            (0, 0, 0),
            (5, 30, 0),
            (-9, -30, -15),
            (25, 59, 59),
            (-25, -59, -59),
        ];
        let dates = [
            time::PrimitiveDateTime::MIN,
            time::PrimitiveDateTime::MAX,
            time::macros::datetime!(1970-01-01 00:00:00),
            time::macros::datetime!(2026-12-02 23:59:59.999_999_999),
            time::macros::datetime!(-128-03-01 12:00:00.000_000_127),
            time::macros::datetime!(0127-07-31 01:02:03.000_065_536),
        ];
        for (date, (h, m, s)) in dates.into_iter().zip(offsets.into_iter().cycle()) {
            record.expiry_date = date.assume_offset(UtcOffset::from_hms(h, m, s)?);
            let mut earlier = vec![MARKER, VERSION];
            rmp_serde::encode::write(&mut earlier, &(&record.data, &record.expiry_date))?;
            assert_eq!(stored(&record)?, earlier, "{}", record.expiry_date);
            assert_eq!(decoded(record.id, &earlier)?, Some(record.clone()));
        }
        Ok(())
    }

    #[test]
    fn value_len_finds_the_end_of_every_kind_of_value() -> Result {
        let values = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(-1),
            serde_json::json!(-129),
            serde_json::json!(-40_000),
            serde_json::json!(-3_000_000_000i64),
            serde_json::json!(127),
            serde_json::json!(255),
            serde_json::json!(65_535),
            serde_json::json!(4_000_000_000u64),
            serde_json::json!(u64::MAX),
            serde_json::json!(1.5),
            serde_json::json!("x".repeat(31)),
            serde_json::json!("x".repeat(32)),
            serde_json::json!("x".repeat(300)),
            serde_json::json!("x".repeat(70_000)),
            serde_json::json!([1, [2, [3, {"a": [4]}]], {}]),
            serde_json::json!((0..20).collect::<Vec<_>>()),
            serde_json::json!((0..70_000).collect::<Vec<_>>()),
            serde_json::json!((0..20)
                .map(|i| (i.to_string(), i))
                .collect::<HashMap<_, _>>()),
        ];
        for value in values {
            let mut bytes = rmp_serde::to_vec(&value)?;
            let len = bytes.len();
            bytes.extend_from_slice(b"trailing");
            assert_eq!(value_len(&bytes), Some(len), "{value}");
            assert_eq!(value_len(&bytes[..len - 1]), None, "{value} cut short");
        }
        // Bin and ext values, which serde_json never makes.
        for bytes in [
            &b"\xc4\x02ab"[..],
            b"\xc5\x00\x01a",
            b"\xc7\x01\x05a",
            b"\xd4\x05a",
            b"\xd8\x05aaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(value_len(bytes), Some(bytes.len()), "{bytes:?}");
        }
        assert_eq!(value_len(b"\xc1"), None);
        assert_eq!(value_len(b""), None);
        // A huge declared array ends at the end of the bytes.
        assert_eq!(value_len(b"\xdd\xff\xff\xff\xff\x00\x00"), None);
        Ok(())
    }

    #[test]
    fn equal_data_encodes_to_equal_bytes_whatever_the_order() -> Result {
        let forward = record_with_keys(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let backward = record_with_keys(&[7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(forward, backward);
        let (a, b) = (encode(&forward)?, encode(&backward)?);
        assert_eq!(a.data(), b.data());
        let whole = stored(&forward)?;
        assert_eq!(whole, stored(&backward)?);
        // The data bytes are found again on decode, without the expiry.
        let found = decode(forward.id, &whole)?.ok_or("decodes")?;
        assert_eq!(found.data, Some(a.data()));
        assert_eq!(found.record, forward);
        let mut later = forward.clone();
        later.expiry_date += time::Duration::hours(1);
        assert_eq!(encode(&later)?.data(), a.data());
        assert_ne!(stored(&later)?, whole);
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
        let found = decode(record.id, &old)?.ok_or("decodes")?;
        assert_eq!(found.record, record);
        assert_eq!(found.data, None, "never equal to a new encoding");
        assert_eq!(decoded(Id(42), &old)?, None);
        Ok(())
    }

    #[test]
    fn bad_bytes_are_decode_errors() {
        let record = record();
        let whole = stored(&record).expect("encodes");
        let mut future = whole.clone();
        future[1] = 2;
        let truncated = &whole[..8];
        let no_expiry = &whole[..encode(&record).expect("encodes").bytes.len()];
        let mut bad_day = whole.clone();
        // The day of year, after the year (2030: 0xcd 0x07 0xee).
        let day = no_expiry.len() + 4;
        bad_day[day] = 0;
        let mut not_a_pair = whole.clone();
        not_a_pair[2] = 0x93;
        for bytes in [
            &future[..],
            truncated,
            no_expiry,
            &bad_day,
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

/// Timed loops over encode and decode, beside the plain `rmp-serde` calls
/// earlier versions made, to see what each costs. Not a test of speed (it
/// asserts nothing about time); run by hand in release:
/// `cargo test --release -p tower-sessions-contract record_cost -- --ignored --nocapture`
#[cfg(test)]
mod cost {
    use std::hint::black_box;
    use std::time::Instant;

    use super::*;

    fn stored(record: &Record) -> Vec<u8> {
        let encoded = encode(record).expect("encodes");
        encoded.with_expiry(record.expiry_date).expect("encodes")
    }

    fn records() -> Vec<(&'static str, Record)> {
        let expiry_date = OffsetDateTime::now_utc() + time::Duration::hours(1);
        let record = |pairs: Vec<(&str, serde_json::Value)>| Record {
            id: Id::default(),
            data: pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            expiry_date,
        };
        vec![
            // bench-axum's session.
            ("one int", record(vec![("n", serde_json::json!(0))])),
            // A logged-in user with a CSRF token and a small cart.
            (
                "typical",
                record(vec![
                    ("user_id", serde_json::json!("1234567")),
                    (
                        "csrf",
                        serde_json::json!("q1YgS3mZ0c8W2d9y8Y7kJm3V5eQb6Xn1Zs4Tt0Ww2Rr"),
                    ),
                    (
                        "cart",
                        serde_json::json!([{"sku": "A-100", "qty": 2}, {"sku": "B-7", "qty": 1}]),
                    ),
                    ("theme", serde_json::json!("dark")),
                    ("visits", serde_json::json!(42)),
                ]),
            ),
        ]
    }

    /// Nanoseconds per call, the best of 5 rounds (the machine is shared).
    fn ns(iterations: u32, mut f: impl FnMut()) -> f64 {
        (0..5)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..iterations {
                    f();
                }
                start.elapsed().as_nanos() as f64 / f64::from(iterations)
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// One operation on `record`, by name, or `None` for an unknown name.
    fn operation<'r>(name: &str, record: &'r Record) -> Option<Box<dyn FnMut() + 'r>> {
        let bytes = stored(record);
        let expiry = rmp_serde::to_vec(&record.expiry_date).expect("encodes");
        let digests = std::hash::RandomState::new();
        Some(match name {
            "nothing" => Box::new(|| {}),
            "encode" => Box::new(move || {
                let record = black_box(record);
                let encoded = encode(record).expect("encodes");
                black_box(encoded.with_expiry(record.expiry_date).expect("encodes"));
            }),
            "encode-data" => Box::new(move || {
                black_box(encode(black_box(record)).expect("encodes"));
            }),
            "encode-plain" => Box::new(move || {
                let mut out = vec![MARKER, VERSION];
                rmp_serde::encode::write(&mut out, &(&record.data, &record.expiry_date))
                    .expect("encodes");
                black_box(out);
            }),
            "decode" => Box::new(move || {
                black_box(decode(record.id, black_box(&bytes)).expect("decodes"));
            }),
            "decode-plain" => Box::new(move || {
                let pair: (HashMap<String, serde_json::Value>, OffsetDateTime) =
                    rmp_serde::from_slice(black_box(&bytes[2..])).expect("decodes");
                black_box(pair);
            }),
            "expiry-encode" => Box::new(move || {
                black_box(rmp_serde::to_vec(black_box(&record.expiry_date)).expect("encodes"));
            }),
            "expiry-decode" => Box::new(move || {
                let at: OffsetDateTime =
                    rmp_serde::from_slice(black_box(&expiry)).expect("decodes");
                black_box(at);
            }),
            "digest" => Box::new(move || {
                black_box(std::hash::BuildHasher::hash_one(
                    &digests,
                    black_box(&bytes[..]),
                ));
            }),
            _ => return None,
        })
    }

    const OPERATIONS: [&str; 9] = [
        "nothing",
        "encode",
        "encode-data",
        "encode-plain",
        "decode",
        "decode-plain",
        "expiry-encode",
        "expiry-decode",
        "digest",
    ];

    /// Every operation (or only `RECORD_COST_ONLY`'s, on only
    /// `RECORD_COST_RECORD`, to count its instructions under valgrind),
    /// `RECORD_COST_N` times (default 50,000) in each of 5 rounds.
    #[test]
    #[ignore = "a timed loop; run by hand in release"]
    fn record_cost() {
        let n: u32 = std::env::var("RECORD_COST_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(50_000);
        let only = std::env::var("RECORD_COST_ONLY").ok();
        let record_only = std::env::var("RECORD_COST_RECORD").ok();
        for (name, record) in records() {
            if record_only.as_deref().is_some_and(|only| only != name) {
                continue;
            }
            let len = stored(&record).len();
            let mut line = format!("{name:>8} ({len} bytes):");
            for op in OPERATIONS {
                if only.as_deref().is_some_and(|only| only != op) {
                    continue;
                }
                let mut f = operation(op, &record).expect("a known operation");
                line += &format!(" {op} {:.0} ns;", ns(n, &mut f));
            }
            println!("{line}");
        }
    }
}
