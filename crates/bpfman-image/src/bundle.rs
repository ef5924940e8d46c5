//! cosign v3 image signatures: Sigstore bundles attached to the image as
//! OCI referrers (artifact type `application/vnd.dev.sigstore.bundle.v0.3+json`,
//! found through the referrers API or the `sha256-<hex>` referrers tag).
//!
//! The bundle holds a DSSE envelope whose payload is an in-toto statement
//! with predicate type `https://sigstore.dev/cosign/sign/v1` and the image
//! digest as subject, signed with a key (`publicKey` material) or keylessly
//! (a Fulcio certificate and a Rekor `dsse` entry with its inclusion promise).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::digest;
use crate::keyless::{BundlePayload, RekorBundle};
use crate::oci::Descriptor;
use crate::pki::Cert;

/// Artifact and layer media type of a Sigstore bundle referrer.
// Read only where bundles are written: tests and the test-support feature.
#[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
pub(crate) const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The empty config of an artifact manifest.
pub(crate) const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// DSSE payload type of in-toto statements.
pub(crate) const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The predicate of a cosign image signature.
pub(crate) const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// Is `t` a Sigstore bundle media type (any version)?
pub(crate) fn is_bundle_type(t: &str) -> bool {
    t.starts_with("application/vnd.dev.sigstore.bundle")
}

/// The referrers of an image (API answer or `sha256-<hex>` tag): an index.
#[derive(Debug, Deserialize)]
pub(crate) struct ReferrersIndex {
    #[serde(default)]
    pub manifests: Vec<ReferrerEntry>,
}

/// One referrer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReferrerEntry {
    pub digest: String,
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl ReferrerEntry {
    /// Could this be a bundle? (cosign has written the empty type here.)
    pub(crate) fn may_be_bundle(&self) -> bool {
        self.artifact_type
            .as_deref()
            .is_none_or(|t| is_bundle_type(t) || t == EMPTY_MEDIA_TYPE)
    }
}

/// A referrer manifest (OCI artifact).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReferrerManifest {
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

impl ReferrerManifest {
    /// The bundle layer of a Sigstore-bundle referrer of `subject`.
    pub(crate) fn bundle_layer(&self, subject: &str) -> Option<&Descriptor> {
        if self.subject.as_ref().map(|s| s.digest.as_str()) != Some(subject) {
            return None;
        }
        let [layer] = self.layers.as_slice() else {
            return None;
        };
        let typed = self.artifact_type.as_deref().is_some_and(is_bundle_type);
        (typed || is_bundle_type(&layer.media_type)).then_some(layer)
    }
}

/// A Sigstore bundle (the parts an image signature uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Bundle {
    pub media_type: String,
    pub verification_material: Material,
    #[serde(default)]
    pub dsse_envelope: Option<Envelope>,
    #[serde(default)]
    pub message_signature: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Material {
    #[serde(default)]
    pub certificate: Option<RawBytes>,
    #[serde(default)]
    pub x509_certificate_chain: Option<Chain>,
    #[serde(default)]
    pub tlog_entries: Vec<TlogEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawBytes {
    pub raw_bytes: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Chain {
    pub certificates: Vec<RawBytes>,
}

/// A Rekor entry as bundles carry it (protobuf JSON: 64-bit ints as strings).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TlogEntry {
    pub log_index: String,
    pub log_id: LogId,
    pub integrated_time: String,
    #[serde(default)]
    pub inclusion_promise: Option<Promise>,
    pub canonicalized_body: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogId {
    pub key_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Promise {
    pub signed_entry_timestamp: String,
}

/// A DSSE envelope.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<DsseSignature>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DsseSignature {
    pub sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    predicate_type: String,
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE pre-authentication encoding: what the signature covers.
pub(crate) fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

/// What a parsed image-signature bundle offers for verification.
pub(crate) struct Parsed {
    /// Decoded DSSE payload.
    pub payload: Vec<u8>,
    /// PAE bytes the signature covers.
    pub pae: Vec<u8>,
    /// Decoded signature.
    pub signature: Vec<u8>,
    /// The signing certificate (keyless), if any.
    pub certificate: Option<Cert>,
    /// The Rekor entry in the legacy cosign bundle shape, if it has an
    /// inclusion promise.
    pub tlog: Option<RekorBundle>,
    /// Why `tlog` is missing, for the error message.
    pub tlog_missing: &'static str,
}

/// Why a bundle is not a cosign image signature this crate can check.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BundleError {
    /// JSON that does not parse into the expected shape.
    #[error("{what}: {source}")]
    Json {
        /// e.g. "the Sigstore bundle is malformed".
        what: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Another media type than a Sigstore bundle's.
    #[error("media type {0:?} is not a Sigstore bundle")]
    MediaType(String),
    /// A message signature (blob signing), not DSSE.
    #[error("the bundle holds a message signature, not a cosign image signature (DSSE)")]
    MessageSignature,
    /// Neither a DSSE envelope nor a message signature.
    #[error("the bundle holds no DSSE envelope")]
    NoEnvelope,
    /// A DSSE payload that is not in-toto.
    #[error("the DSSE payload type is {0:?}, not {IN_TOTO:?}")]
    PayloadType(String),
    /// A field that should be base64.
    #[error("{0} is not base64")]
    NotBase64(&'static str),
    /// A statement type that is not in-toto.
    #[error("statement type {0:?} is not in-toto")]
    StatementType(String),
    /// Another predicate than cosign's image signature.
    #[error(
        "the statement's predicate is {0:?}, not a cosign image signature ({COSIGN_SIGN_PREDICATE})"
    )]
    Predicate(String),
    /// The digest asked about is not a sha256 digest.
    #[error(transparent)]
    Digest(#[from] digest::DigestError),
    /// The statement's subjects do not include the image.
    #[error("the signed statement is for another image than {0}")]
    OtherImage(String),
    /// Zero or several DSSE signatures.
    #[error("the DSSE envelope has {0} signatures; cosign writes one")]
    Signatures(usize),
    /// The bundle's certificate does not parse.
    #[error("the bundle's certificate: {0}")]
    Cert(crate::pki::PkiError),
    /// A Rekor field that should be a decimal number.
    #[error("the Rekor entry's {what} {value:?} is not a number")]
    NotNumber {
        /// "integratedTime" or "logIndex".
        what: &'static str,
        /// The value found.
        value: String,
    },
}

impl Bundle {
    /// Parses `bytes` and checks it signs image `digest` the cosign way.
    pub(crate) fn parse_image_signature(bytes: &[u8], digest: &str) -> Result<Parsed, BundleError> {
        let b: Bundle = serde_json::from_slice(bytes).map_err(|source| BundleError::Json {
            what: "the Sigstore bundle is malformed",
            source,
        })?;
        if !is_bundle_type(&b.media_type) {
            return Err(BundleError::MediaType(b.media_type));
        }
        let Some(env) = &b.dsse_envelope else {
            return Err(if b.message_signature.is_some() {
                BundleError::MessageSignature
            } else {
                BundleError::NoEnvelope
            });
        };
        if env.payload_type != IN_TOTO {
            return Err(BundleError::PayloadType(env.payload_type.clone()));
        }
        let payload = STANDARD
            .decode(env.payload.trim())
            .map_err(|_| BundleError::NotBase64("the DSSE payload"))?;
        let st: Statement =
            serde_json::from_slice(&payload).map_err(|source| BundleError::Json {
                what: "the DSSE payload is not an in-toto statement",
                source,
            })?;
        if !st.kind.starts_with("https://in-toto.io/Statement/") {
            return Err(BundleError::StatementType(st.kind));
        }
        if st.predicate_type != COSIGN_SIGN_PREDICATE {
            return Err(BundleError::Predicate(st.predicate_type));
        }
        let hex = digest::hex_part(digest)?;
        if !st.subject.iter().any(|s| {
            s.digest
                .get("sha256")
                .is_some_and(|d| d.eq_ignore_ascii_case(hex))
        }) {
            return Err(BundleError::OtherImage(digest.to_string()));
        }
        let [sig] = env.signatures.as_slice() else {
            return Err(BundleError::Signatures(env.signatures.len()));
        };
        let signature = STANDARD
            .decode(sig.sig.trim())
            .map_err(|_| BundleError::NotBase64("the DSSE signature"))?;
        let m = &b.verification_material;
        let cert_b64 = m.certificate.as_ref().or_else(|| {
            m.x509_certificate_chain
                .as_ref()
                .and_then(|c| c.certificates.first())
        });
        let certificate = match cert_b64 {
            Some(c) => {
                let der = STANDARD
                    .decode(c.raw_bytes.trim())
                    .map_err(|_| BundleError::NotBase64("the bundle's certificate"))?;
                Some(Cert::from_der(&der).map_err(BundleError::Cert)?)
            }
            None => None,
        };
        let (tlog, tlog_missing) = match m.tlog_entries.first() {
            None => (None, "the bundle has no transparency log entry"),
            Some(e) => match &e.inclusion_promise {
                None => (
                    None,
                    "the bundle's Rekor entry has no inclusion promise (a Rekor v2 entry, which \
                     needs RFC 3161 timestamps: not supported)",
                ),
                Some(p) => {
                    let key_id = STANDARD
                        .decode(e.log_id.key_id.trim())
                        .map_err(|_| BundleError::NotBase64("the Rekor entry's logId"))?;
                    let num = |s: &str, what: &'static str| {
                        s.parse::<i64>().map_err(|_| BundleError::NotNumber {
                            what,
                            value: s.to_string(),
                        })
                    };
                    (
                        Some(RekorBundle {
                            signed_entry_timestamp: p.signed_entry_timestamp.clone(),
                            payload: BundlePayload {
                                body: e.canonicalized_body.clone(),
                                integrated_time: num(&e.integrated_time, "integratedTime")?,
                                log_id: digest::hex(&key_id),
                                log_index: num(&e.log_index, "logIndex")?,
                            },
                        }),
                        "",
                    )
                }
            },
        };
        Ok(Parsed {
            pae: pae(&env.payload_type, &payload),
            payload,
            signature,
            certificate,
            tlog,
            tlog_missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn refuses_what_is_not_an_image_signature() {
        let d = digest::sha256(b"image");
        let statement = |pred: &str, sub: &str| {
            serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"digest": {"sha256": sub}}],
                "predicateType": pred,
                "predicate": {},
            })
            .to_string()
        };
        let bundle = |payload: &str, ptype: &str| {
            serde_json::json!({
                "mediaType": BUNDLE_MEDIA_TYPE,
                "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
                "dsseEnvelope": {
                    "payload": STANDARD.encode(payload),
                    "payloadType": ptype,
                    "signatures": [{"sig": STANDARD.encode([1u8, 2]), "keyid": ""}],
                },
            })
            .to_string()
        };
        let ok = bundle(&statement(COSIGN_SIGN_PREDICATE, &d[7..]), IN_TOTO);
        let p = Bundle::parse_image_signature(ok.as_bytes(), &d).unwrap();
        assert!(p.certificate.is_none() && p.tlog.is_none());
        assert!(p.tlog_missing.contains("no transparency log entry"));
        for (b, want) in [
            (
                bundle(
                    &statement("https://slsa.dev/provenance/v1", &d[7..]),
                    IN_TOTO,
                ),
                "predicate",
            ),
            (
                bundle(&statement(COSIGN_SIGN_PREDICATE, &"0".repeat(64)), IN_TOTO),
                "another image",
            ),
            (
                bundle(&statement(COSIGN_SIGN_PREDICATE, &d[7..]), "text/plain"),
                "payload type",
            ),
            ("{}".to_string(), "malformed"),
        ] {
            let e = Bundle::parse_image_signature(b.as_bytes(), &d)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let msg = serde_json::json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {},
            "messageSignature": {"signature": ""},
        })
        .to_string();
        let e = Bundle::parse_image_signature(msg.as_bytes(), &d)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("message signature"), "{e}");
    }
}
