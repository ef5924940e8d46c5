//! A throwaway Sigstore for tests (feature `test-support`): a Fulcio-like
//! root and intermediate CA (P-384), a Rekor log key and a CT log key
//! (P-256), issuing short-lived code-signing certificates with embedded
//! SCTs and Rekor bundles shaped as the real services shape them, plus the
//! `trusted_root.json` that trusts them. Keys derive from a seed, so two
//! instances with different seeds do not trust each other.
//!
//! Also [`TestTls`]: a private CA and a server certificate for 127.0.0.1,
//! made with the `openssl` command, for registries served over HTTPS.
//!
//! Nothing here is used by bpfman itself.

use std::collections::BTreeMap;
use std::str::FromStr as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_384, ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE,
    ID_CE_SUBJECT_ALT_NAME, ID_KP_CODE_SIGNING,
};
use p256::ecdsa::signature::Signer as _;
use sha2::{Digest as _, Sha256};
use x509_cert::der::asn1::{BitString, GeneralizedTime, Ia5String, OctetString, Utf8StringRef};
use x509_cert::der::{Decode as _, EncodePem as _, pem::LineEnding};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use crate::BuildDest;
use crate::auth::Credentials;
use crate::config::ImageConfig;
use crate::error::ImageError;
use crate::keyless::{
    BUNDLE_ANNOTATION, BundlePayload, CERT_ANNOTATION, CHAIN_ANNOTATION, RekorBundle,
};
use crate::pki::{CT_PRECERT_SCTS, FULCIO_ISSUER_V1, FULCIO_ISSUER_V2, Sct};

/// 2020-01-01T00:00:00Z: CAs and logs are valid from then.
const EPOCH_2020: i64 = 1_577_836_800;
/// 2045-01-01T00:00:00Z: ... until then.
const EPOCH_2045: i64 = 2_366_841_600;

/// How one keyless signature is made; the defaults are a correct one.
#[derive(Debug, Clone)]
pub struct KeylessSigner {
    /// Subject alternative name: an e-mail address, or a URI when it
    /// contains "://".
    pub identity: String,
    /// OIDC issuer written into the certificate.
    pub issuer: String,
    /// When the certificate starts (Unix seconds); it lives 10 minutes.
    pub signed_at: i64,
    /// Seconds between `signed_at` and the Rekor integration time
    /// (over 600 means the certificate had expired when it was logged).
    pub logged_after: i64,
    /// Mark the certificate for code signing (Fulcio always does).
    pub code_signing: bool,
    /// Embed an SCT from the CT log.
    pub sct: bool,
    /// Add the Rekor bundle annotation.
    pub rekor_bundle: bool,
    /// Corrupt the Rekor SignedEntryTimestamp.
    pub bad_set: bool,
}

impl KeylessSigner {
    /// A valid signature by `identity` authenticated by `issuer`, made one
    /// hour ago.
    pub fn new(identity: &str, issuer: &str) -> KeylessSigner {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(EPOCH_2020 + 86_400);
        KeylessSigner {
            identity: identity.to_string(),
            issuer: issuer.to_string(),
            signed_at: now - 3600,
            logged_after: 5,
            code_signing: true,
            sct: true,
            rekor_bundle: true,
            bad_set: false,
        }
    }
}

/// A signature layer's content: the base64 signature and the layer's other
/// annotations.
pub type LayerSignature = (String, BTreeMap<String, String>);

/// A test Fulcio CA, Rekor and CT log.
pub struct TestSigstore {
    root: Certificate,
    inter_key: p384::ecdsa::SigningKey,
    inter: Certificate,
    rekor_key: p256::ecdsa::SigningKey,
    ct_key: p256::ecdsa::SigningKey,
    name: String,
}

fn scalar(seed: u8, role: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([seed]);
    h.update(role.as_bytes());
    h.finalize().into()
}

fn p384_key(seed: u8, role: &str) -> p384::ecdsa::SigningKey {
    let mut bytes = [0u8; 48];
    bytes[..32].copy_from_slice(&scalar(seed, role));
    bytes[32..].copy_from_slice(&scalar(seed, &format!("{role}/2"))[..16]);
    bytes[0] &= 0x7f; // below the group order
    p384::ecdsa::SigningKey::from_slice(&bytes).expect("a valid P-384 scalar")
}

fn p256_key(seed: u8, role: &str) -> p256::ecdsa::SigningKey {
    let mut bytes = scalar(seed, role);
    bytes[0] &= 0x7f;
    p256::ecdsa::SigningKey::from_slice(&bytes).expect("a valid P-256 scalar")
}

fn spki_der(key: &impl p256::pkcs8::EncodePublicKey) -> Vec<u8> {
    key.to_public_key_der()
        .expect("encodable public key")
        .as_bytes()
        .to_vec()
}

fn time(t: i64) -> Time {
    let d = Duration::from_secs(u64::try_from(t).unwrap_or(0));
    Time::GeneralTime(GeneralizedTime::from_unix_duration(d).expect("time in range"))
}

fn ext(oid: const_oid::ObjectIdentifier, critical: bool, der: Vec<u8>) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(der).expect("extension value"),
    }
}

fn to_der(v: &impl x509_cert::der::Encode) -> Vec<u8> {
    v.to_der().expect("encodable")
}

/// The SCT list extension value (a TLS list in an OCTET STRING) holding
/// `sct`, encoded by x509-cert, so that bpfman's parser is checked against
/// another implementation.
pub(crate) fn sct_list_extension_value(sct: &Sct) -> Vec<u8> {
    use tls_codec::{DeserializeBytes as _, TlsByteVecU16};
    use x509_cert::ext::pkix::sct::{
        DigitallySigned, HashAlgorithm, LogId, SerializedSct, SignatureAlgorithm,
        SignatureAndHashAlgorithm, SignedCertificateTimestamp, SignedCertificateTimestampList,
        Version,
    };
    let (hash, _) = HashAlgorithm::tls_deserialize_bytes(&[sct.hash]).expect("a TLS hash");
    let (signature, _) =
        SignatureAlgorithm::tls_deserialize_bytes(&[sct.sig_alg]).expect("a TLS signature");
    let timestamp = SignedCertificateTimestamp {
        version: Version::V1,
        log_id: LogId { key_id: sct.log_id },
        timestamp: sct.timestamp_ms,
        extensions: TlsByteVecU16::from_slice(&sct.extensions),
        signature: DigitallySigned {
            algorithm: SignatureAndHashAlgorithm { hash, signature },
            signature: TlsByteVecU16::from_slice(&sct.signature),
        },
    };
    let one = SerializedSct::new(timestamp).expect("an encodable SCT");
    to_der(&SignedCertificateTimestampList::new(&[one]).expect("an encodable SCT list"))
}

/// Signs a TBS with a P-384 CA key (ecdsa-with-SHA384).
fn sign_tbs(tbs: TbsCertificate, key: &p384::ecdsa::SigningKey) -> Certificate {
    let sig: p384::ecdsa::Signature = key.sign(&to_der(&tbs));
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA_384,
            parameters: None,
        },
        signature: BitString::from_bytes(sig.to_der().as_bytes()).expect("bit string"),
    }
}

fn tbs(
    serial: u8,
    issuer: &Name,
    subject: Name,
    spki: &[u8],
    not_before: i64,
    not_after: i64,
    extensions: Vec<Extension>,
) -> TbsCertificate {
    TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[serial]).expect("serial"),
        signature: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA_384,
            parameters: None,
        },
        issuer: issuer.clone(),
        validity: Validity {
            not_before: time(not_before),
            not_after: time(not_after),
        },
        subject,
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(spki).expect("spki"),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    }
}

fn ca_extensions(path_len: Option<u8>) -> Vec<Extension> {
    vec![
        ext(
            ID_CE_KEY_USAGE,
            true,
            to_der(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)),
        ),
        ext(
            ID_CE_BASIC_CONSTRAINTS,
            true,
            to_der(&BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            }),
        ),
    ]
}

fn pem(c: &Certificate) -> String {
    c.to_pem(LineEnding::LF).expect("PEM")
}

impl TestSigstore {
    /// A new instance; `name` goes into its CA names and log URLs.
    pub fn new(seed: u8, name: &str) -> TestSigstore {
        let root_key = p384_key(seed, "root");
        let inter_key = p384_key(seed, "intermediate");
        let root_name = Name::from_str(&format!("CN={name},O=sigstore.test")).expect("name");
        let inter_name =
            Name::from_str(&format!("CN={name}-intermediate,O=sigstore.test")).expect("name");
        let root = sign_tbs(
            tbs(
                1,
                &root_name,
                root_name.clone(),
                &spki_der(root_key.verifying_key()),
                EPOCH_2020,
                EPOCH_2045,
                ca_extensions(Some(1)),
            ),
            &root_key,
        );
        let inter = sign_tbs(
            tbs(
                2,
                &root_name,
                inter_name,
                &spki_der(inter_key.verifying_key()),
                EPOCH_2020,
                EPOCH_2045,
                ca_extensions(Some(0)),
            ),
            &root_key,
        );
        TestSigstore {
            root,
            inter_key,
            inter,
            rekor_key: p256_key(seed, "rekor"),
            ct_key: p256_key(seed, "ctlog"),
            name: name.to_string(),
        }
    }

    fn log_json(&self, what: &str, key: &p256::ecdsa::SigningKey) -> serde_json::Value {
        let der = spki_der(key.verifying_key());
        serde_json::json!({
            "baseUrl": format!("https://{what}.{}.test", self.name),
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": STANDARD.encode(&der),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            },
            "logId": {"keyId": STANDARD.encode(Sha256::digest(&der))},
        })
    }

    /// The `trusted_root.json` trusting this instance; `with_ct` lists its
    /// CT log (then SCTs are required). An Ed25519 log bpfman cannot use
    /// is listed too, as real trust roots do.
    pub fn trusted_root_json(&self, with_ct: bool) -> String {
        let ed25519 = {
            let mut d = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            d.extend_from_slice(&scalar(0, "ed25519"));
            d
        };
        let mut root = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                self.log_json("rekor", &self.rekor_key),
                {
                    "baseUrl": "https://rekor-v2.example.test",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": STANDARD.encode(&ed25519),
                        "keyDetails": "PKIX_ED25519",
                        "validFor": {"start": "2025-01-01T00:00:00Z"},
                    },
                    "logId": {"keyId": STANDARD.encode(Sha256::digest(&ed25519))},
                },
            ],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.test", "commonName": self.name},
                "uri": format!("https://fulcio.{}.test", self.name),
                "certChain": {"certificates": [
                    {"rawBytes": STANDARD.encode(to_der(&self.inter))},
                    {"rawBytes": STANDARD.encode(to_der(&self.root))},
                ]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
            "ctlogs": [],
        });
        if with_ct {
            root["ctlogs"] = serde_json::json!([self.log_json("ctfe", &self.ct_key)]);
        }
        serde_json::to_string_pretty(&root).expect("JSON")
    }

    /// A short-lived leaf certificate for `s` (key derived from `seed`).
    fn leaf(&self, s: &KeylessSigner, seed: &[u8]) -> (p256::ecdsa::SigningKey, Certificate) {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(s.identity.as_bytes());
        h.update(s.signed_at.to_be_bytes());
        let mut leaf_scalar: [u8; 32] = h.finalize().into();
        leaf_scalar[0] &= 0x7f;
        let leaf_key = p256::ecdsa::SigningKey::from_slice(&leaf_scalar).expect("P-256 scalar");

        let san = if s.identity.contains("://") {
            GeneralName::UniformResourceIdentifier(Ia5String::new(&s.identity).expect("IA5"))
        } else {
            GeneralName::Rfc822Name(Ia5String::new(&s.identity).expect("IA5"))
        };
        let eku = if s.code_signing {
            ID_KP_CODE_SIGNING
        } else {
            const_oid::db::rfc5912::ID_KP_SERVER_AUTH
        };
        let exts = vec![
            ext(
                ID_CE_KEY_USAGE,
                true,
                to_der(&KeyUsage(KeyUsages::DigitalSignature.into())),
            ),
            ext(
                ID_CE_EXT_KEY_USAGE,
                false,
                to_der(&ExtendedKeyUsage(vec![eku])),
            ),
            ext(
                ID_CE_SUBJECT_ALT_NAME,
                true,
                to_der(&SubjectAltName(vec![san])),
            ),
            ext(FULCIO_ISSUER_V1, false, s.issuer.as_bytes().to_vec()),
            ext(
                FULCIO_ISSUER_V2,
                false,
                to_der(&Utf8StringRef::new(&s.issuer).expect("UTF-8")),
            ),
        ];
        let mut leaf_tbs = tbs(
            3,
            &self.inter.tbs_certificate.subject,
            Name::default(),
            &spki_der(leaf_key.verifying_key()),
            s.signed_at,
            s.signed_at + 600,
            exts,
        );
        if s.sct {
            let ct_der = spki_der(self.ct_key.verifying_key());
            let mut sct = Sct {
                log_id: Sha256::digest(&ct_der).into(),
                timestamp_ms: u64::try_from(s.signed_at).unwrap_or(0) * 1000,
                extensions: Vec::new(),
                hash: 4,
                sig_alg: 3,
                signature: Vec::new(),
            };
            let issuer_key_hash: [u8; 32] =
                Sha256::digest(spki_der(self.inter_key.verifying_key())).into();
            let signed = sct.signed_data(&issuer_key_hash, &to_der(&leaf_tbs));
            let sig: p256::ecdsa::Signature = self.ct_key.sign(&signed);
            sct.signature = sig.to_der().as_bytes().to_vec();
            let value = sct_list_extension_value(&sct);
            if let Some(e) = leaf_tbs.extensions.as_mut() {
                e.push(ext(CT_PRECERT_SCTS, false, value));
            }
        }
        (leaf_key, sign_tbs(leaf_tbs, &self.inter_key))
    }

    /// The Rekor entry (body + SET) for `body`, logged per `s`.
    fn rekor_entry(&self, body: &serde_json::Value, s: &KeylessSigner) -> RekorBundle {
        let rekor_der = spki_der(self.rekor_key.verifying_key());
        let payload = BundlePayload {
            body: STANDARD.encode(body.to_string()),
            integrated_time: s.signed_at + s.logged_after,
            log_id: crate::digest::hex(&Sha256::digest(&rekor_der)),
            log_index: 4242,
        };
        let canonical = payload.canonical().expect("canonical JSON");
        let set: p256::ecdsa::Signature = self.rekor_key.sign(&canonical);
        let mut set = set.to_der().as_bytes().to_vec();
        if s.bad_set {
            let n = set.len() - 1;
            set[n] ^= 1;
        }
        RekorBundle {
            signed_entry_timestamp: STANDARD.encode(&set),
            payload,
        }
    }

    /// Makes a keyless signature of `payload` (cosign's `.sig` format): the
    /// base64 signature and the layer annotations (certificate, chain,
    /// Rekor bundle).
    pub fn sign(&self, payload: &[u8], s: &KeylessSigner) -> LayerSignature {
        let payload_hash = Sha256::digest(payload);
        let (leaf_key, leaf) = self.leaf(s, &payload_hash);
        let leaf_pem = pem(&leaf);
        let sig: p256::ecdsa::Signature = leaf_key.sign(payload);
        let sig_b64 = STANDARD.encode(sig.to_der().as_bytes());

        let mut ann = BTreeMap::new();
        ann.insert(CERT_ANNOTATION.to_string(), leaf_pem.clone());
        ann.insert(
            CHAIN_ANNOTATION.to_string(),
            pem(&self.inter) + &pem(&self.root),
        );
        if s.rekor_bundle {
            let body = serde_json::json!({
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": crate::digest::hex(&payload_hash)}},
                    "signature": {
                        "content": sig_b64,
                        "publicKey": {"content": STANDARD.encode(leaf_pem.as_bytes())},
                    },
                },
            });
            let bundle = self.rekor_entry(&body, s);
            ann.insert(
                BUNDLE_ANNOTATION.to_string(),
                serde_json::to_string(&bundle).expect("JSON"),
            );
        }
        (sig_b64, ann)
    }

    /// Makes a keyless cosign v3 signature of image `digest`: a Sigstore
    /// bundle (v0.3 JSON) with a DSSE in-toto statement, the certificate
    /// and a Rekor `dsse` entry with its inclusion promise (none without
    /// `s.rekor_bundle`, as a Rekor v2 entry would be).
    pub fn sign_bundle(&self, digest: &str, s: &KeylessSigner) -> String {
        let payload = cosign_statement(digest);
        let pae = crate::bundle::pae(crate::bundle::IN_TOTO, &payload);
        let (leaf_key, leaf) = self.leaf(s, &pae);
        let sig: p256::ecdsa::Signature = leaf_key.sign(&pae);
        let sig_b64 = STANDARD.encode(sig.to_der().as_bytes());
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": crate::digest::hex(&Sha256::digest(&pae))},
                "payloadHash": {"algorithm": "sha256", "value": crate::digest::hex(&Sha256::digest(&payload))},
                "signatures": [{
                    "signature": sig_b64,
                    "verifier": STANDARD.encode(pem(&leaf).as_bytes()),
                }],
            },
        });
        let entry = self.rekor_entry(&body, s);
        let p = &entry.payload;
        let mut tlog = serde_json::json!({
            "logIndex": p.log_index.to_string(),
            "logId": {"keyId": STANDARD.encode(crate::digest::unhex(&p.log_id).expect("hex"))},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": p.integrated_time.to_string(),
            "canonicalizedBody": p.body,
        });
        if s.rekor_bundle {
            tlog["inclusionPromise"] =
                serde_json::json!({"signedEntryTimestamp": entry.signed_entry_timestamp});
        }
        bundle_json(
            serde_json::json!({
                "certificate": {"rawBytes": STANDARD.encode(to_der(&leaf))},
                "tlogEntries": [tlog],
            }),
            &payload,
            &sig_b64,
        )
    }
}

/// cosign v3's signed statement for image `digest`.
fn cosign_statement(digest: &str) -> Vec<u8> {
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "", "digest": {"sha256": digest.strip_prefix("sha256:").unwrap_or(digest)}}],
        "predicateType": crate::bundle::COSIGN_SIGN_PREDICATE,
        "predicate": {},
    })
    .to_string()
    .into_bytes()
}

fn bundle_json(material: serde_json::Value, payload: &[u8], sig_b64: &str) -> String {
    serde_json::json!({
        "mediaType": crate::bundle::BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": STANDARD.encode(payload),
            "payloadType": crate::bundle::IN_TOTO,
            "signatures": [{"sig": sig_b64, "keyid": ""}],
        },
    })
    .to_string()
}

/// A cosign v3 signature of image `digest` made with a PEM P-256 private
/// key (as `cosign sign --key` writes it, without the Rekor entry).
pub fn key_bundle(key: &std::path::Path, digest: &str) -> Result<String, ImageError> {
    let key = crate::sign::load_signing_key(key)?;
    let payload = cosign_statement(digest);
    let pae = crate::bundle::pae(crate::bundle::IN_TOTO, &payload);
    let sig: p256::ecdsa::Signature = key.sign(&pae);
    Ok(bundle_json(
        serde_json::json!({"publicKey": {"hint": ""}, "tlogEntries": []}),
        &payload,
        &STANDARD.encode(sig.to_der().as_bytes()),
    ))
}

/// Attaches a Sigstore bundle to image `digest` in `dest`'s repository as
/// cosign v3 does on a registry without the referrers API: an artifact
/// manifest with the image as subject, listed in the `sha256-<hex>`
/// referrers tag. Returns the artifact manifest's digest.
pub fn attach_bundle(
    cfg: &ImageConfig,
    dest: &BuildDest,
    digest: &str,
    bundle: &str,
    creds: Option<&Credentials>,
) -> Result<String, ImageError> {
    crate::build::attach_bundle(cfg, dest, digest, bundle.as_bytes(), creds)
}

/// Attaches a signature to image `digest` in `dest`'s repository (what
/// `cosign attach signature` does): `sign` receives the simple-signing
/// payload naming the image and returns the base64 signature and the
/// layer's other annotations. Returns the signature manifest's digest.
pub fn attach_signature(
    cfg: &ImageConfig,
    dest: &BuildDest,
    digest: &str,
    sign: &dyn Fn(&[u8]) -> LayerSignature,
    creds: Option<&Credentials>,
) -> Result<String, ImageError> {
    crate::build::attach_signature(cfg, dest, digest, sign, creds)
}

/// Why [`TestTls::generate`] failed; each names the `openssl` step.
#[derive(Debug, thiserror::Error)]
pub enum TestTlsError {
    /// `openssl` could not be started.
    #[error("openssl {what}: {source}")]
    Spawn {
        /// The step, e.g. "req (CA)".
        what: &'static str,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// `openssl` ran and failed.
    #[error("openssl {what} failed: {stderr}")]
    Failed {
        /// The step.
        what: &'static str,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The server certificate's extension file could not be written.
    #[error("write server.ext: {0}")]
    WriteExtensions(#[source] std::io::Error),
}

/// A private CA and a server certificate for `127.0.0.1` it signed, PEM
/// files made with the `openssl` command the way an admin makes them, for a
/// test registry served over HTTPS.
#[derive(Debug, Clone)]
pub struct TestTls {
    /// The CA certificate: what a client has to trust.
    pub ca: std::path::PathBuf,
    /// The server certificate (subject alternative name IP:127.0.0.1).
    pub cert: std::path::PathBuf,
    /// The server's private key (PKCS#8, unencrypted).
    pub key: std::path::PathBuf,
}

impl TestTls {
    /// Writes a fresh P-256 CA and server certificate (valid two days) into
    /// `dir`; the error names the `openssl` step that failed.
    pub fn generate(dir: &std::path::Path) -> Result<TestTls, TestTlsError> {
        use std::process::{Command, Stdio};
        let run = |what: &'static str, args: &[&std::ffi::OsStr]| -> Result<(), TestTlsError> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .map_err(|source| TestTlsError::Spawn { what, source })?;
            if out.status.success() {
                Ok(())
            } else {
                Err(TestTlsError::Failed {
                    what,
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                })
            }
        };
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        let ec = [
            os("-newkey"),
            os("ec"),
            os("-pkeyopt"),
            os("ec_paramgen_curve:prime256v1"),
            os("-nodes"),
        ];
        let mut ca_args = vec![os("req"), os("-x509")];
        ca_args.extend(ec);
        ca_args.extend([
            os("-days"),
            os("2"),
            os("-subj"),
            os("/CN=bpfman test registry CA"),
            os("-addext"),
            os("basicConstraints=critical,CA:TRUE"),
            os("-addext"),
            os("keyUsage=critical,keyCertSign,cRLSign"),
            os("-keyout"),
            os("ca.key"),
            os("-out"),
            os("ca.crt"),
        ]);
        run("req (CA)", &ca_args)?;
        let mut csr_args = vec![os("req")];
        csr_args.extend(ec);
        csr_args.extend([
            os("-subj"),
            os("/CN=127.0.0.1"),
            os("-keyout"),
            os("server.key"),
            os("-out"),
            os("server.csr"),
        ]);
        run("req (server)", &csr_args)?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(TestTlsError::WriteExtensions)?;
        run(
            "x509 (sign the server certificate)",
            &[
                os("x509"),
                os("-req"),
                os("-in"),
                os("server.csr"),
                os("-CA"),
                os("ca.crt"),
                os("-CAkey"),
                os("ca.key"),
                os("-CAcreateserial"),
                os("-days"),
                os("2"),
                os("-extfile"),
                os("server.ext"),
                os("-out"),
                os("server.crt"),
            ],
        )?;
        Ok(TestTls {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        })
    }

    /// The value of response header `name` to `GET /v2/` on
    /// `https://127.0.0.1:{port}`, trusting this CA only; `None` when
    /// nothing answers, or something this CA did not certify.
    pub fn header(&self, port: u16, name: &str) -> Option<String> {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let pem = std::fs::read(&self.ca).ok()?;
        let ca = Certificate::from_pem(&pem).ok()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::new_with_certs(&[ca]))
                    .build(),
            )
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let resp = agent
            .get(&format!("https://127.0.0.1:{port}/v2/"))
            .call()
            .ok()?;
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}
