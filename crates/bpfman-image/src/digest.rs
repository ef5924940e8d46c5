//! sha256 content digests (`sha256:<64 lowercase hex>`), the only algorithm
//! accepted: every OCI registry and cosign use it.

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `data`.
pub(crate) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// The raw SHA-256 of `data`.
pub(crate) fn sha256_bytes(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Bytes from hex (either case), or `None`.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    base16ct::mixed::decode_vec(s).ok()
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// Why a digest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DigestError {
    /// Another algorithm, or no `sha256:` prefix at all.
    #[error("digest {0:?} is not a sha256 digest (only sha256 is supported)")]
    NotSha256(String),
    /// The hex part is not exactly 64 lowercase hex digits.
    #[error("digest {0:?} is not 64 lowercase hex digits")]
    NotHex(String),
    /// The content does not hash to the expected digest.
    #[error("content hashes to {got}, expected {expected}")]
    Mismatch {
        /// The digest of the content.
        got: String,
        /// The digest it should have had.
        expected: String,
    },
}

/// The hex part of a well-formed `sha256:` digest, or why it is not one.
/// Validating before use matters: the hex becomes a file name in the cache.
pub(crate) fn hex_part(digest: &str) -> Result<&str, DigestError> {
    let Some(h) = digest.strip_prefix("sha256:") else {
        return Err(DigestError::NotSha256(digest.to_string()));
    };
    if h.len() != 64
        || !h
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(DigestError::NotHex(digest.to_string()));
    }
    Ok(h)
}

/// Checks that `data` hashes to `expected`.
pub(crate) fn check(data: &[u8], expected: &str) -> Result<(), DigestError> {
    hex_part(expected)?;
    let got = sha256(data);
    if got != expected {
        return Err(DigestError::Mismatch {
            got,
            expected: expected.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(check(b"", &sha256(b"")).is_ok());
        assert!(check(b"x", &sha256(b"")).is_err());
    }

    #[test]
    fn hex_both_ways() {
        assert_eq!(hex(&[0, 0xab]), "00ab");
        assert_eq!(unhex("00aB"), Some(vec![0, 0xab]));
        assert_eq!(unhex(""), Some(vec![]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn hex_part_rejects_path_tricks() {
        assert!(hex_part("sha256:../../etc/passwd").is_err());
        assert!(hex_part("sha512:00").is_err());
        assert!(hex_part("sha256:").is_err());
        assert!(hex_part(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(hex_part(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }
}
