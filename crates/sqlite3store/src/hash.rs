//! Optional token hashing at rest: the file stores HMAC-SHA-256(key, token)
//! in hex instead of the token.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

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
    pub(crate) fn new(key: &Arc<[u8]>) -> Self {
        Self {
            // HMAC takes keys of any length.
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length"),
        }
    }

    /// 64 lowercase hex digits.
    pub(crate) fn hash(&self, token: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(64);
        for b in digest {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// The key a token is stored under: itself, or its hash.
pub(crate) fn storage_key<'a>(hasher: Option<&TokenHasher>, token: &'a str) -> Cow<'a, str> {
    match hasher {
        Some(h) => Cow::Owned(h.hash(token)),
        None => Cow::Borrowed(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let h = TokenHasher::new(&Arc::from(&b"Jefe"[..]));
        assert_eq!(
            h.hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
