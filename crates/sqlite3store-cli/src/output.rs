//! How tokens, times and session data are printed, shared by the commands.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Characters of a token kept when it is shortened.
const SHORT_TOKEN_CHARS: usize = 8;

/// `token`, or its first few characters and "…" unless `full`, so that
/// output does not show usable tokens.
pub(crate) fn token(token: &str, full: bool) -> Cow<'_, str> {
    match token.char_indices().nth(SHORT_TOKEN_CHARS) {
        Some((end, _)) if !full => Cow::Owned(format!("{}…", &token[..end])),
        _ => Cow::Borrowed(token),
    }
}

/// `t` in RFC 3339, UTC (`2025-01-31T12:00:00.5Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let nanos = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|dt| dt.format(&Rfc3339).ok())
        // Unreachable for the years 0000 to 9999 the store clamps expiries to.
        .unwrap_or_else(|| format!("{nanos} ns after the Unix epoch"))
}

/// How long until `t`, roughly (`in 3 hours`), for people.
pub(crate) fn from_now(t: SystemTime) -> String {
    match t.duration_since(SystemTime::now()) {
        Ok(left) => format!("in {}", indicatif::HumanDuration(left)),
        Err(_) => "now".to_owned(),
    }
}

/// Bytes for people (`40.00 KiB`).
pub(crate) fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Session data made printable: as text when it is UTF-8 without control
/// characters (other than line breaks and tabs) that could upset a terminal,
/// else as hex.
#[derive(Debug, Serialize)]
#[serde(tag = "encoding", content = "data", rename_all = "lowercase")]
pub(crate) enum Data<'a> {
    /// Printable UTF-8.
    Text(&'a str),
    /// Lowercase hex, two digits a byte.
    Hex(String),
}

impl<'a> Data<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text)
                if !text
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
            {
                Data::Text(text)
            }
            _ => Data::Hex(bytes.iter().fold(
                String::with_capacity(bytes.len() * 2),
                |mut hex, b| {
                    // Writing to a String cannot fail.
                    let _ = write!(hex, "{b:02x}");
                    hex
                },
            )),
        }
    }

    /// "text" or "hex".
    pub(crate) fn encoding(&self) -> &'static str {
        match self {
            Data::Text(_) => "text",
            Data::Hex(_) => "hex",
        }
    }

    /// The printable form.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Data::Text(text) => text,
            Data::Hex(hex) => hex,
        }
    }
}

/// Writes `value` as pretty JSON and a newline.
pub(crate) fn json(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn tokens_are_shortened_on_a_char_boundary() {
        assert_eq!(token("0123456789abcdef", false), "01234567…");
        assert_eq!(token("0123456789abcdef", true), "0123456789abcdef");
        assert_eq!(token("01234567", false), "01234567");
        assert_eq!(token("ééééééééé", false), "éééééééé…");
        assert_eq!(token("", false), "");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.5Z");
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(rfc3339(before), "1969-12-31T00:00:00Z");
    }

    #[test]
    fn data_is_text_only_when_printable() {
        assert!(matches!(Data::new(b"a=1\nb=2\t"), Data::Text("a=1\nb=2\t")));
        let escape = Data::new(b"\x1b[2Jhi");
        assert_eq!(escape.encoding(), "hex");
        assert_eq!(escape.as_str(), "1b5b324a6869");
        assert_eq!(Data::new(&[0xff, 0x00]).as_str(), "ff00");
        assert_eq!(Data::new(b"").encoding(), "text");
    }
}
