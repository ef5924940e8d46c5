//! cosign "simple signing" signatures with ECDSA P-256 keys, the scheme of
//! `cosign sign --key`: the signature of image `sha256:<hex>` is an image at
//! tag `sha256-<hex>.sig` in the same repository whose layers are JSON
//! payloads (media type `application/vnd.dev.cosign.simplesigning.v1+json`)
//! naming the image digest, each carrying its base64 ASN.1 ECDSA signature of
//! the payload bytes in the annotation `dev.cosignproject.cosign/signature`.
//!
//! Verification is local: the payload and signature come from the registry
//! (or the cache), the key from the configured file.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use serde::Deserialize;

use crate::SignatureStatus;
use crate::bundle::{Bundle, BundleError};
use crate::config::SignaturePolicy;
use crate::digest;
use crate::error::ImageError;
use crate::keyless::{KeylessError, KeylessVerifier, Signed};
use crate::oci::{self, Descriptor, Manifest};
use crate::trust_root::TrustRoot;

/// cosign's payload type string.
const COSIGN_TYPE: &str = "cosign container image signature";

/// Tag holding the signature of `digest`.
pub(crate) fn signature_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1) + ".sig"
}

/// The simple-signing payload for `digest`, as cosign writes it.
pub(crate) fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

/// A public key to verify with, and its fingerprint for reports.
#[derive(Debug)]
pub(crate) struct PublicKey {
    key: VerifyingKey,
    /// `sha256:` of the key's DER SubjectPublicKeyInfo.
    pub fingerprint: String,
}

/// Reads a PEM `PUBLIC KEY` (ECDSA P-256).
pub(crate) fn load_public_key(path: &Path) -> Result<PublicKey, ImageError> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        ImageError::Policy(format!(
            "cannot read signing.public_key {}: {e}",
            path.display()
        ))
    })?;
    let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        ImageError::Policy(format!(
            "signing.public_key {} is not an ECDSA P-256 PEM public key ({e})",
            path.display()
        ))
    })?;
    let der = key
        .to_public_key_der()
        .map_err(|e| ImageError::Policy(format!("cannot encode the public key: {e}")))?;
    Ok(PublicKey {
        fingerprint: digest::sha256(der.as_bytes()),
        key,
    })
}

/// Reads a PEM private key: PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`.
pub(crate) fn load_signing_key(path: &Path) -> Result<SigningKey, ImageError> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        ImageError::Build(format!("cannot read signing key {}: {e}", path.display()))
    })?;
    let pem = pem.trim();
    if pem.contains("ENCRYPTED") {
        return Err(ImageError::Build(format!(
            "signing key {} is encrypted; give an unencrypted PKCS#8 P-256 key \
             (e.g. `openssl ecparam -name prime256v1 -genkey | openssl pkcs8 -topk8 -nocrypt`)",
            path.display()
        )));
    }
    if pem.contains("BEGIN EC PRIVATE KEY") {
        let sk = p256::SecretKey::from_sec1_pem(pem).map_err(|e| {
            ImageError::Build(format!("{} is not a P-256 EC key: {e}", path.display()))
        })?;
        return Ok(SigningKey::from(sk));
    }
    SigningKey::from_pkcs8_pem(pem).map_err(|e| {
        ImageError::Build(format!(
            "signing key {} is not a PEM PKCS#8 ECDSA P-256 private key ({e})",
            path.display()
        ))
    })
}

/// Base64 DER signature of `payload`.
pub(crate) fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let sig: Signature = key.sign(payload);
    STANDARD.encode(sig.to_der().as_bytes())
}

/// The signature image for `payload`: (manifest bytes, config bytes).
/// `extra` annotations go on the layer beside the signature (a keyless
/// signature's certificate, chain and Rekor bundle).
pub(crate) fn signature_image(
    payload: &[u8],
    signature_b64: &str,
    extra: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
    let payload_digest = digest::sha256(payload);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [payload_digest]},
    }))?;
    let mut ann = extra.clone();
    ann.insert(
        oci::COSIGN_SIGNATURE_ANNOTATION.to_string(),
        signature_b64.to_string(),
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: oci::OCI_CONFIG.to_string(),
            digest: digest::sha256(&config),
            size: config.len() as u64,
            annotations: None,
            platform: None,
        },
        layers: vec![Descriptor {
            media_type: oci::COSIGN_SIMPLESIGNING.to_string(),
            digest: payload_digest,
            size: payload.len() as u64,
            annotations: Some(ann),
            platform: None,
        }],
        annotations: None,
    };
    Ok((serde_json::to_vec(&manifest)?, config))
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// A signature as ASN.1 DER: cosign writes DER; raw r||s (P-256) is
/// accepted too and converted.
fn der_signature(raw: Vec<u8>) -> Vec<u8> {
    if Signature::from_der(&raw).is_err()
        && let Ok(s) = Signature::from_slice(&raw)
    {
        return s.to_der().as_bytes().to_vec();
    }
    raw
}

/// Why a signature (layer or bundle) is rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignError {
    /// The layer has no `dev.cosignproject.cosign/signature` annotation.
    #[error("the layer has no signature annotation")]
    NoAnnotation,
    /// The annotation is not base64.
    #[error("the signature annotation is not base64")]
    NotBase64,
    /// Neither DER nor raw r||s of a P-256 signature.
    #[error("the signature is not an ECDSA P-256 signature")]
    NotP256,
    /// The configured key did not make it.
    #[error("the signature does not verify with the configured public key")]
    WrongKey,
    /// The signed bytes are not a simple-signing payload.
    #[error("the signed payload is not a cosign payload: {0}")]
    NotPayload(serde_json::Error),
    /// A simple-signing payload of another type.
    #[error("the signed payload has type {0:?}, not {COSIGN_TYPE:?}")]
    PayloadType(String),
    /// A payload naming another image.
    #[error("the signature is for {0}, not for this image")]
    OtherImage(String),
    /// A keyless signature or bundle that does not verify.
    #[error(transparent)]
    Keyless(#[from] KeylessError),
    /// A bundle that is not a cosign image signature.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A keyless bundle and no keyless rules.
    #[error(
        "the bundle is signed keylessly (a Fulcio certificate); add [signing.keyless] \
         rules to accept it"
    )]
    KeylessNotConfigured,
    /// A key bundle and no key.
    #[error("the bundle is signed with a key; set signing.public_key to accept it")]
    KeyNotConfigured,
    /// A bundle without a usable Rekor entry (the bundle parser says why).
    #[error("{0}")]
    NoTlog(&'static str),
    /// Every trusted way of signing refused the signature, for these reasons.
    #[error("{}", join(.0))]
    Rejected(Vec<SignError>),
}

fn join(reasons: &[SignError]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The decoded signature annotation, as DER.
fn decode_signature(signature_b64: &str) -> Result<Vec<u8>, SignError> {
    STANDARD
        .decode(signature_b64.trim())
        .map(der_signature)
        .map_err(|_| SignError::NotBase64)
}

impl PublicKey {
    /// Checks a DER (or raw r||s) signature over `data` with this key.
    fn check(&self, data: &[u8], signature: &[u8]) -> Result<(), SignError> {
        let sig = Signature::from_der(&der_signature(signature.to_vec()))
            .map_err(|_| SignError::NotP256)?;
        self.key.verify(data, &sig).map_err(|_| SignError::WrongKey)
    }
}

/// The payload is a cosign simple-signing payload naming `digest`.
fn check_payload(payload: &[u8], digest: &str) -> Result<(), SignError> {
    let p: Payload = serde_json::from_slice(payload).map_err(SignError::NotPayload)?;
    if p.critical.kind != COSIGN_TYPE {
        return Err(SignError::PayloadType(p.critical.kind));
    }
    if p.critical.image.digest != digest {
        return Err(SignError::OtherImage(p.critical.image.digest));
    }
    Ok(())
}

/// Checks one signature layer: the signature over the payload bytes verifies
/// with `key`, and the payload names `digest`.
pub(crate) fn verify_one(
    key: &PublicKey,
    payload: &[u8],
    signature_b64: &str,
    digest: &str,
) -> Result<(), SignError> {
    key.check(payload, &decode_signature(signature_b64)?)?;
    check_payload(payload, digest)
}

/// Everything the policy trusts: a public key, keyless rules, or both.
#[derive(Debug)]
pub(crate) struct Verifier {
    key: Option<PublicKey>,
    keyless: Option<KeylessVerifier>,
}

impl Verifier {
    /// Loads the key and the trust root the policy names (a policy error
    /// when one cannot be read).
    pub(crate) fn from_policy(policy: &SignaturePolicy) -> Result<Verifier, ImageError> {
        policy.validate()?;
        let key = policy
            .public_key
            .as_deref()
            .map(load_public_key)
            .transpose()?;
        let keyless = match &policy.keyless {
            Some(k) => {
                let path = k.trust_root.as_deref().ok_or_else(|| {
                    ImageError::Policy("signing.keyless needs trust_root".to_string())
                })?;
                Some(KeylessVerifier {
                    root: TrustRoot::load(path)?,
                    rules: k.identities.clone(),
                })
            }
            None => None,
        };
        Ok(Verifier { key, keyless })
    }

    /// Checks one signature layer of the signature of `digest`; any trusted
    /// way of signing that accepts it is enough.
    pub(crate) fn verify(
        &self,
        payload: &[u8],
        annotations: &BTreeMap<String, String>,
        digest: &str,
    ) -> Result<SignatureStatus, SignError> {
        let sig_b64 = annotations
            .get(oci::COSIGN_SIGNATURE_ANNOTATION)
            .ok_or(SignError::NoAnnotation)?;
        let mut reasons = Vec::new();
        if let Some(k) = &self.keyless {
            let keyless = decode_signature(sig_b64)
                .and_then(|sig| Ok(k.verify(payload, &sig, annotations)?))
                .and_then(|signer| check_payload(payload, digest).map(|()| signer));
            match keyless {
                Ok(s) => return Ok(s.status(digest)),
                Err(e) => reasons.push(e),
            }
        }
        if let Some(key) = &self.key {
            match verify_one(key, payload, sig_b64, digest) {
                Ok(()) => {
                    return Ok(SignatureStatus::Verified {
                        key: key.fingerprint.clone(),
                        signed_digest: digest.to_string(),
                    });
                }
                Err(e) => reasons.push(e),
            }
        }
        Err(SignError::Rejected(reasons))
    }

    /// Checks a cosign v3 signature bundle (DSSE in-toto statement) of
    /// `digest`, keyless or with a key.
    pub(crate) fn verify_bundle(
        &self,
        bytes: &[u8],
        digest: &str,
    ) -> Result<SignatureStatus, SignError> {
        let p = Bundle::parse_image_signature(bytes, digest)?;
        if let Some(cert) = &p.certificate {
            let Some(k) = &self.keyless else {
                return Err(SignError::KeylessNotConfigured);
            };
            let tlog = p.tlog.as_ref().ok_or(SignError::NoTlog(p.tlog_missing))?;
            let s = k.verify_signed(
                cert,
                &p.signature,
                Signed::Dsse {
                    pae: &p.pae,
                    payload_hash: digest::sha256_bytes(&p.payload),
                },
                tlog,
            )?;
            return Ok(s.status(digest));
        }
        let Some(key) = &self.key else {
            return Err(SignError::KeyNotConfigured);
        };
        key.check(&p.pae, &p.signature)?;
        Ok(SignatureStatus::Verified {
            key: key.fingerprint.clone(),
            signed_digest: digest.to_string(),
        })
    }
}

/// The signature layers of a signature manifest, with their annotations.
pub(crate) fn signature_layers(m: &Manifest) -> Vec<(&Descriptor, &BTreeMap<String, String>)> {
    m.layers
        .iter()
        .filter(|l| l.media_type == oci::COSIGN_SIMPLESIGNING)
        .filter_map(|l| {
            l.annotations
                .as_ref()
                .filter(|a| a.contains_key(oci::COSIGN_SIGNATURE_ANNOTATION))
                .map(|a| (l, a))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};

    /// A fixed test key pair (PKCS#8 private PEM, SPKI public PEM).
    pub(crate) fn keypair(seed: u8) -> (String, String) {
        let mut bytes = [seed; 32];
        bytes[0] = 1;
        let sk = SigningKey::from_slice(&bytes).unwrap();
        let private = sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let public = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        (private, public)
    }

    /// A temp dir with `k` (private), `k.pub` and another key's `o.pub`.
    fn key_files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = keypair(7);
        let (_, other_public) = keypair(8);
        std::fs::write(dir.path().join("k"), &private).unwrap();
        std::fs::write(dir.path().join("k.pub"), &public).unwrap();
        std::fs::write(dir.path().join("o.pub"), &other_public).unwrap();
        dir
    }

    #[test]
    fn sign_and_verify() {
        let dir = key_files();
        let sk = load_signing_key(&dir.path().join("k")).unwrap();
        let pk = load_public_key(&dir.path().join("k.pub")).unwrap();
        let other = load_public_key(&dir.path().join("o.pub")).unwrap();
        let d = digest::sha256(b"image");
        let p = payload("127.0.0.1:5000/a", &d);
        let s = sign(&sk, &p);
        verify_one(&pk, &p, &s, &d).unwrap();
        assert!(
            verify_one(&other, &p, &s, &d)
                .unwrap_err()
                .to_string()
                .contains("does not verify")
        );
        let e = verify_one(&pk, &p, &s, &digest::sha256(b"other"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not for this image"), "{e}");
        let mut tampered = p.clone();
        tampered[10] ^= 1;
        assert!(verify_one(&pk, &tampered, &s, &d).is_err());
        assert!(verify_one(&pk, &p, "!!", &d).is_err());
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", &d[7..]));
        let (m, _) = signature_image(&p, &s, &BTreeMap::new()).unwrap();
        let m: Manifest = serde_json::from_slice(&m).unwrap();
        assert_eq!(signature_layers(&m).len(), 1);
    }

    /// Interop: a signature made by cosign itself (a published test vector
    /// of the Sigstore Rust client), checked with our verifier.
    #[test]
    fn verifies_a_cosign_made_signature() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cosign.pub");
        std::fs::write(
            &f,
            "-----BEGIN PUBLIC KEY-----\n\
             MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENptdY/l3nB0yqkXLBWkZWQwo6+cu\n\
             OSWS1X9vPavpiQOoTTGC0xX57OojUadxF1cdQmrsiReWg2Wn4FneJfa8xw==\n\
             -----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let key = load_public_key(&f).unwrap();
        let d = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
        let payload = payload("registry-testing.svc.lan/busybox", d);
        assert_eq!(
            String::from_utf8(payload.clone()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"registry-testing.svc.lan/busybox"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        let sig = "MEUCIQD6q/COgzOyW0YH1Dk+CCYSt4uAhm3FDHUwvPI55zwnlwIgE0ZK58ZOWpZw8YVmBapJhBqCfdPekIknimuO0xH8Jh8=";
        verify_one(&key, &payload, sig, d).unwrap();
    }

    /// cosign v3 bundles: keyless and with a key, each refused where the
    /// policy does not trust it.
    #[test]
    fn bundles_keyless_and_keyed() {
        use crate::config::IdentityRule;
        use crate::testing::{KeylessSigner, TestSigstore, key_bundle};
        let dir = key_files();
        let ss = TestSigstore::new(5, "bundles");
        let keyless = || KeylessVerifier {
            root: TrustRoot::parse(ss.trusted_root_json(true).as_bytes()).unwrap(),
            rules: vec![IdentityRule {
                identity: Some("a@example.com".into()),
                issuer: Some("https://issuer.example.com".into()),
                ..IdentityRule::default()
            }],
        };
        let only_keyless = Verifier {
            key: None,
            keyless: Some(keyless()),
        };
        let only_key = Verifier {
            key: Some(load_public_key(&dir.path().join("k.pub")).unwrap()),
            keyless: None,
        };
        let d = digest::sha256(b"image");
        let signer = KeylessSigner::new("a@example.com", "https://issuer.example.com");
        let b = ss.sign_bundle(&d, &signer);
        match only_keyless.verify_bundle(b.as_bytes(), &d).unwrap() {
            SignatureStatus::VerifiedKeyless { identity, .. } => {
                assert_eq!(identity, "a@example.com")
            }
            other => panic!("{other:?}"),
        }
        let e = only_keyless
            .verify_bundle(b.as_bytes(), &digest::sha256(b"other"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("another image"), "{e}");
        let e = only_key
            .verify_bundle(b.as_bytes(), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("signed keylessly"), "{e}");
        // A Rekor v2-style entry (no inclusion promise) is refused, named.
        let unlogged = ss.sign_bundle(
            &d,
            &KeylessSigner {
                rekor_bundle: false,
                ..signer.clone()
            },
        );
        let e = only_keyless
            .verify_bundle(unlogged.as_bytes(), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("inclusion promise"), "{e}");
        // The wrong signer.
        let mallory = ss.sign_bundle(
            &d,
            &KeylessSigner::new("m@example.com", "https://issuer.example.com"),
        );
        let e = only_keyless
            .verify_bundle(mallory.as_bytes(), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("matches no"), "{e}");
        // A payload changed after signing (same image) fails the signature.
        let mut v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let payload = STANDARD
            .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let mut st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        st["predicate"] = serde_json::json!({"extra": true});
        v["dsseEnvelope"]["payload"] = STANDARD.encode(st.to_string()).into();
        let e = only_keyless
            .verify_bundle(v.to_string().as_bytes(), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not verify"), "{e}");

        let kb = key_bundle(&dir.path().join("k"), &d).unwrap();
        assert!(matches!(
            only_key.verify_bundle(kb.as_bytes(), &d).unwrap(),
            SignatureStatus::Verified { .. }
        ));
        let other = Verifier {
            key: Some(load_public_key(&dir.path().join("o.pub")).unwrap()),
            keyless: None,
        };
        let e = other
            .verify_bundle(kb.as_bytes(), &d)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not verify with the configured public key"),
            "{e}"
        );
        let e = only_keyless
            .verify_bundle(kb.as_bytes(), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("signed with a key"), "{e}");
    }

    #[test]
    fn key_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n").unwrap();
        assert!(
            load_signing_key(&f)
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
        std::fs::write(&f, "junk").unwrap();
        assert!(
            load_public_key(&f)
                .unwrap_err()
                .to_string()
                .contains("not an ECDSA")
        );
    }
}
