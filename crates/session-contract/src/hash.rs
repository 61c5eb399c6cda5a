//! Optional token hashing at rest: a store keeps HMAC-SHA-256(key, token) in
//! hex instead of the token, so a leaked file or table holds no usable
//! session id. Every backend uses this one hasher, so a hashed SQLite file
//! and a hashed PostgreSQL table hold the same keys for the same tokens.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Hashes session tokens into the keys stored in place of them.
///
/// Cheap to clone. Its `Debug` output never shows the key.
///
/// ```
/// use session_contract::TokenHasher;
///
/// let hasher = TokenHasher::new(b"Jefe");
/// // RFC 4231, test case 2.
/// assert_eq!(
///     hasher.hash("what do ya want for nothing?"),
///     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
/// );
/// ```
#[derive(Clone)]
pub struct TokenHasher {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher(..)")
    }
}

impl TokenHasher {
    /// A hasher with `key`. Stores reject an empty key before they get here.
    #[must_use]
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Self {
            // HMAC hashes over-long keys and pads short ones: any length is
            // accepted, so this never fails.
            mac: Hmac::<Sha256>::new_from_slice(key.as_ref()).expect("HMAC accepts any key length"),
        }
    }

    /// The stored key for `token`: 64 lowercase hex digits.
    #[must_use]
    pub fn hash(&self, token: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(2 * digest.len());
        for b in digest {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_cases() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let h = TokenHasher::new(b"Jefe");
        assert_eq!(
            h.hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a 131-byte key, longer than SHA-256's block.
        let h = TokenHasher::new([0xaa; 131]);
        assert_eq!(
            h.hash("Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let h = TokenHasher::new(b"secret-key");
        assert_eq!(format!("{h:?}"), "TokenHasher(..)");
    }
}
