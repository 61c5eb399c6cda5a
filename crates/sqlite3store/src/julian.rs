//! Expiry as SQLite stores it: a Julian day number (UTC) in a REAL column.
//!
//! SQLite's `julianday()` keeps time as whole milliseconds since the Julian
//! epoch and returns that count divided by 86,400,000. We compute the same
//! integer and the same division, so a time written by us is bit-for-bit what
//! `julianday('...')` gives for it, and Go's rows compare exactly with ours.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MS_PER_DAY: f64 = 86_400_000.0;
/// Milliseconds from the Julian epoch (-4713-11-24 12:00 UTC) to 1970-01-01.
const UNIX_EPOCH_JD_MS: i64 = 210_866_760_000_000;
/// The range SQLite's date functions accept: 0000-01-01 to 9999-12-31.
const MIN_JD_MS: i64 = 148_699_540_800_000;
const MAX_JD_MS: i64 = 464_269_060_799_999;

/// Milliseconds since the Unix epoch, negative before 1970; saturating.
fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // Before 1970: round towards the past, as julianday() does.
        Err(e) => {
            let d = e.duration();
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let partial = d.as_nanos() % 1_000_000 != 0;
            -(ms.saturating_add(i64::from(partial)))
        }
    }
}

/// The Julian day number SQLite would store for `t`, truncated to the
/// millisecond and clamped to the years 0000..=9999 (which SQLite's date
/// functions accept), so no input can overflow.
pub(crate) fn to_julian(t: SystemTime) -> f64 {
    let jd_ms = unix_millis(t)
        .saturating_add(UNIX_EPOCH_JD_MS)
        .clamp(MIN_JD_MS, MAX_JD_MS);
    jd_ms as f64 / MS_PER_DAY
}

/// The time a stored Julian day number stands for, to the millisecond.
/// Non-finite values map to the Unix epoch; out-of-range ones are clamped.
pub(crate) fn from_julian(jd: f64) -> SystemTime {
    let ms = (jd * MS_PER_DAY).round();
    let ms = if ms.is_finite() {
        (ms as i64).clamp(MIN_JD_MS, MAX_JD_MS) - UNIX_EPOCH_JD_MS
    } else {
        0
    };
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn matches_sqlite_julianday_bit_for_bit() -> rusqlite::Result<()> {
        let conn = Connection::open_in_memory()?;
        for (text, unix_ms) in [
            ("2026-01-02T03:04:05.678", 1_767_323_045_678_i64),
            ("1970-01-01T00:00:00.000", 0),
            ("1969-12-31T23:59:59.999", -1),
            ("2000-02-29T12:00:00.001", 951_825_600_001),
        ] {
            let sqlite: f64 = conn.query_row("SELECT julianday(?1)", [text], |r| r.get(0))?;
            let t = if unix_ms >= 0 {
                UNIX_EPOCH + Duration::from_millis(unix_ms as u64)
            } else {
                UNIX_EPOCH - Duration::from_millis(unix_ms.unsigned_abs())
            };
            assert_eq!(to_julian(t).to_bits(), sqlite.to_bits(), "{text}");
            assert_eq!(from_julian(sqlite), t, "{text}");
        }
        Ok(())
    }

    #[test]
    fn truncates_to_milliseconds_like_go() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_500_999_999);
        assert_eq!(
            from_julian(to_julian(t)),
            UNIX_EPOCH + Duration::from_millis(1500)
        );
    }

    #[test]
    fn extremes_do_not_panic_and_stay_ordered() {
        let far_past = UNIX_EPOCH - Duration::from_secs(400_000 * 365 * 86_400);
        let far_future = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert!(to_julian(far_past) < to_julian(UNIX_EPOCH));
        assert!(to_julian(far_future) > to_julian(SystemTime::now()));
        // Non-finite values are the epoch; the rest clamp to the range
        // that `to_julian` clamps to.
        assert!(from_julian(f64::NAN) == UNIX_EPOCH);
        assert_eq!(from_julian(f64::INFINITY), UNIX_EPOCH);
        assert_eq!(from_julian(f64::NEG_INFINITY), UNIX_EPOCH);
        assert_eq!(from_julian(-1e300), from_julian(to_julian(far_past)));
        assert_eq!(from_julian(1e300), from_julian(to_julian(far_future)));
        assert!(from_julian(-1e300) < UNIX_EPOCH);
    }
}
