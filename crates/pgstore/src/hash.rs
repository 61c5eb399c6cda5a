//! Optional token hashing at rest: the table stores HMAC-SHA-256(key, token)
//! in lowercase hex instead of the token, byte for byte what sqlite3store
//! stores.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub(crate) struct TokenHasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHasher(..)")
    }
}

impl TokenHasher {
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        Hmac::<Sha256>::new_from_slice(key)
            .ok()
            .map(|mac| Self { mac })
    }

    /// 64 lowercase hex digits.
    pub(crate) fn hash(&self, token: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let mut out = String::with_capacity(64);
        for b in mac.finalize().into_bytes() {
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}
