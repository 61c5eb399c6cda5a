//! Optional token hashing at rest: the file stores HMAC-SHA-256(key, token)
//! in hex instead of the token. The hasher is `session_contract`'s, shared
//! by every backend, so all of them store the same key for a token.

use std::borrow::Cow;

pub(crate) use session_contract::TokenHasher;

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
        let h = TokenHasher::new(std::sync::Arc::<[u8]>::from(&b"Jefe"[..]));
        assert_eq!(
            storage_key(Some(&h), "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(storage_key(None, "raw"), "raw");
    }
}
