//! A Sigstore trust root (`trusted_root.json`, media type
//! `application/vnd.dev.sigstore.trustedroot+json;version=0.1`): the Fulcio
//! certificate authorities, Rekor transparency log keys and CT log keys that
//! keyless signatures are checked against, each with the period it is valid
//! for. Read from a local file: nothing is fetched.
//!
//! Entries with key types bpfman cannot check (Ed25519, RSA) are kept out;
//! a signature that needs one then fails with a message naming the log.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::error::ImageError;
use crate::pki::{Cert, EcKey, Hash};

/// A period in Unix seconds; `end` open when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Period {
    pub start: i64,
    pub end: Option<i64>,
}

impl Period {
    pub(crate) fn contains(&self, t: i64) -> bool {
        self.start <= t && self.end.is_none_or(|e| t <= e)
    }
}

/// A transparency log (Rekor) or CT log key.
#[derive(Debug, Clone)]
pub(crate) struct LogKey {
    pub base_url: String,
    pub key_id: [u8; 32],
    pub key: EcKey,
    pub hash: Hash,
    pub valid: Period,
}

/// A Fulcio CA: its chain, leaf-most first (intermediates, then the root).
#[derive(Debug, Clone)]
pub(crate) struct Authority {
    pub uri: String,
    pub chain: Vec<Cert>,
    pub valid: Period,
}

/// The parsed trust root.
#[derive(Debug, Clone)]
pub(crate) struct TrustRoot {
    pub authorities: Vec<Authority>,
    pub tlogs: Vec<LogKey>,
    pub ctlogs: Vec<LogKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: Option<String>,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawAuthority>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawKey,
    log_id: Option<RawLogId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    #[serde(default)]
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
    valid_for: Option<RawPeriod>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthority {
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    valid_for: Option<RawPeriod>,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct RawPeriod {
    start: Option<String>,
    end: Option<String>,
}

/// Why a trusted_root.json is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TrustRootError {
    /// Not JSON of the trusted root's shape.
    #[error("not a Sigstore trusted root: {0}")]
    Json(serde_json::Error),
    /// Another document type.
    #[error("media type {0:?} is not a Sigstore trusted root")]
    MediaType(String),
    /// A validFor bound that is not an RFC 3339 time.
    #[error("validFor.{bound} {value:?} is not an RFC 3339 time")]
    Time {
        /// "start" or "end".
        bound: &'static str,
        /// The value found.
        value: String,
    },
    /// A log's key is not base64.
    #[error("log {0}: publicKey.rawBytes is not base64")]
    LogKey(String),
    /// A log's id is not base64 of 32 bytes.
    #[error("log {0}: logId.keyId is not a base64 SHA-256")]
    LogId(String),
    /// A CA certificate is not base64.
    #[error("CA {0}: rawBytes is not base64")]
    CaBase64(String),
    /// A CA certificate does not parse.
    #[error("CA {uri}: {source}")]
    CaCert {
        /// The CA's URI.
        uri: String,
        /// What is wrong with the certificate.
        source: crate::pki::PkiError,
    },
    /// A CA with an empty chain.
    #[error("CA {0} has no certificates")]
    EmptyChain(String),
    /// Nothing to check a certificate against.
    #[error("it lists no certificate authority")]
    NoAuthority,
    /// No log key this crate can use.
    #[error("it lists no transparency log with an ECDSA key")]
    NoTlog,
}

fn period(p: Option<RawPeriod>) -> Result<Period, TrustRootError> {
    let Some(p) = p else {
        return Ok(Period {
            start: i64::MIN,
            end: None,
        });
    };
    let time =
        |bound, value: String| parse_rfc3339(&value).ok_or(TrustRootError::Time { bound, value });
    let start = match p.start {
        Some(s) => time("start", s)?,
        None => i64::MIN,
    };
    let end = p.end.map(|s| time("end", s)).transpose()?;
    Ok(Period { start, end })
}

fn log_key(raw: RawLog) -> Result<Option<LogKey>, TrustRootError> {
    let der = STANDARD
        .decode(raw.public_key.raw_bytes.trim())
        .map_err(|_| TrustRootError::LogKey(raw.base_url.clone()))?;
    // Keys bpfman cannot use are left out, not fatal: a trust root lists
    // every log the instance ever ran.
    let Ok(key) = EcKey::from_spki_der(&der) else {
        return Ok(None);
    };
    let hash = match raw.public_key.key_details.as_str() {
        d if d.ends_with("SHA_384") => Hash::Sha384,
        d if d.ends_with("SHA_256") => Hash::Sha256,
        _ => key.default_hash(),
    };
    let key_id: [u8; 32] = match raw.log_id {
        Some(id) => STANDARD
            .decode(id.key_id.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| TrustRootError::LogId(raw.base_url.clone()))?,
        None => crate::digest::sha256_bytes(&der),
    };
    Ok(Some(LogKey {
        base_url: raw.base_url,
        key_id,
        key,
        hash,
        valid: period(raw.public_key.valid_for)?,
    }))
}

impl TrustRoot {
    /// Parses a trusted_root.json document.
    pub(crate) fn parse(json: &[u8]) -> Result<TrustRoot, TrustRootError> {
        let raw: RawRoot = serde_json::from_slice(json).map_err(TrustRootError::Json)?;
        if let Some(m) = &raw.media_type
            && !m.starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(TrustRootError::MediaType(m.clone()));
        }
        let mut authorities = Vec::new();
        for a in raw.certificate_authorities {
            let mut chain = Vec::new();
            for c in a.cert_chain.certificates {
                let der = STANDARD
                    .decode(c.raw_bytes.trim())
                    .map_err(|_| TrustRootError::CaBase64(a.uri.clone()))?;
                chain.push(
                    Cert::from_der(&der).map_err(|source| TrustRootError::CaCert {
                        uri: a.uri.clone(),
                        source,
                    })?,
                );
            }
            if chain.is_empty() {
                return Err(TrustRootError::EmptyChain(a.uri));
            }
            authorities.push(Authority {
                uri: a.uri,
                chain,
                valid: period(a.valid_for)?,
            });
        }
        let mut tlogs = Vec::new();
        for l in raw.tlogs {
            tlogs.extend(log_key(l)?);
        }
        let mut ctlogs = Vec::new();
        for l in raw.ctlogs {
            ctlogs.extend(log_key(l)?);
        }
        if authorities.is_empty() {
            return Err(TrustRootError::NoAuthority);
        }
        if tlogs.is_empty() {
            return Err(TrustRootError::NoTlog);
        }
        Ok(TrustRoot {
            authorities,
            tlogs,
            ctlogs,
        })
    }

    /// Reads the trust root file of the policy.
    pub(crate) fn load(path: &Path) -> Result<TrustRoot, ImageError> {
        let bytes = std::fs::read(path).map_err(|e| {
            ImageError::Policy(format!(
                "cannot read signing.keyless.trust_root {}: {e}",
                path.display()
            ))
        })?;
        TrustRoot::parse(&bytes).map_err(|e| {
            ImageError::Policy(format!(
                "signing.keyless.trust_root {}: {e}",
                path.display()
            ))
        })
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to Unix seconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &r[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2021-01-12T11:53:27.000Z"),
            Some(1_610_452_407)
        );
        assert_eq!(parse_rfc3339("2021-01-12T11:53:27Z"), Some(1_610_452_407));
        assert_eq!(
            parse_rfc3339("2021-01-12T13:53:27+02:00"),
            Some(1_610_452_407)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2021-01-12",
            "2021-13-12T00:00:00Z",
            "2021-01-12T00:00:00",
            "2021-01-12T00:00:00.Z",
            "2021-01-12T00:00:00+0200",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(
            TrustRoot::parse(b"{}")
                .unwrap_err()
                .to_string()
                .contains("no certificate authority")
        );
        assert!(
            TrustRoot::parse(b"[]")
                .unwrap_err()
                .to_string()
                .contains("not a Sigstore trusted root")
        );
        let e = TrustRoot::parse(br#"{"mediaType":"application/json"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("media type"), "{e}");
    }
}
