//! cosign keyless signatures, checked offline.
//!
//! `cosign sign` without a key writes the same simple-signing layer as with
//! a key, plus three annotations: the short-lived Fulcio certificate of the
//! signer (`dev.sigstore.cosign/certificate`, PEM), its chain
//! (`dev.sigstore.cosign/chain`) and the Rekor bundle
//! (`dev.sigstore.cosign/bundle`: the log entry and Rekor's signed entry
//! timestamp). A signature is accepted when:
//!
//! 1. it verifies over the payload with the certificate's key;
//! 2. the Rekor entry is signed by a log of the trust root (the SET), names
//!    this signature, this certificate and the payload's hash, and its
//!    integration time is the moment everything else is checked at;
//! 3. the certificate was valid then, is a code-signing certificate, and
//!    chains to a Fulcio CA of the trust root that was valid then (the chain
//!    annotation is not trusted: only the trust root's certificates are);
//! 4. when the trust root lists CT logs, the certificate carries an SCT
//!    from one of them that verifies;
//! 5. its subject alternative name and OIDC issuer match a configured rule.
//!
//! cosign 3's bundles (`crate::bundle`) carry the same certificate and Rekor
//! entry in another shape; they go through [`KeylessVerifier::verify_signed`]
//! with a DSSE signature and a `dsse` log entry instead.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::config::IdentityRule;
use crate::digest;
use crate::pki::{Cert, Hash, PkiError};
use crate::trust_root::TrustRoot;

/// Why a keyless signature is rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeylessError {
    /// A certificate check without more context than its own message.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A certificate that does not parse or has an unusable key.
    #[error("{what}: {source}")]
    Cert {
        /// Which certificate, e.g. "signing certificate".
        what: &'static str,
        /// What is wrong with it.
        source: PkiError,
    },
    /// JSON that does not parse (or encode); `what` says which and how.
    #[error("{what}: {source}")]
    Json {
        /// e.g. "the Rekor bundle is malformed".
        what: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A field that should be base64.
    #[error("{0} is not base64")]
    NotBase64(&'static str),
    /// The logged public key is not base64 of a PEM text.
    #[error("the Rekor entry's public key is not base64 PEM")]
    NotBase64Pem,
    /// The entry logs another signature.
    #[error("the Rekor entry records another signature than this one")]
    OtherSignature,
    /// The entry logs another certificate.
    #[error("the Rekor entry records another certificate than this one")]
    OtherCertificate,
    /// A key signature given to the keyless verifier.
    #[error(
        "the signature has no Fulcio certificate (it was made with a key; set \
         signing.public_key to accept key signatures)"
    )]
    NoCertificate,
    /// No transparency log entry at all.
    #[error(
        "the signature has no Rekor bundle (dev.sigstore.cosign/bundle): without a \
         transparency log entry there is no proof of when the short-lived certificate signed"
    )]
    NoBundle,
    /// The certificate's key did not make the signature.
    #[error("the signature does not verify with its certificate's key")]
    BadSignature,
    /// The certificate had expired (or was not yet valid) at log time.
    #[error(
        "the certificate was not valid when Rekor logged the signature \
         (logged at {logged}, valid {not_before}..{not_after}, Unix seconds)"
    )]
    NotValidWhenLogged {
        /// Integration time.
        logged: i64,
        /// notBefore.
        not_before: i64,
        /// notAfter.
        not_after: i64,
    },
    /// No Fulcio issuer extension.
    #[error("the certificate records no OIDC issuer (not a Fulcio certificate?)")]
    NoIssuer,
    /// Valid, but not by anyone the policy accepts.
    #[error(
        "signer {} (issuer {issuer}) matches no signing.keyless identity rule",
        if names.is_empty() { "<no subject alternative name>".to_string() } else { names.join(", ") }
    )]
    NoRule {
        /// The certificate's subject alternative names.
        names: Vec<String>,
        /// Its OIDC issuer.
        issuer: String,
    },
    /// The bundle's logID is not a SHA-256 in hex.
    #[error("the Rekor bundle's logID {0:?} is not a hex SHA-256")]
    LogId(String),
    /// Logged by a log the trust root does not list.
    #[error("the signature was logged by a transparency log ({0}) the trust root does not list")]
    UnknownLog(String),
    /// The log's key was not valid at the entry's time.
    #[error("transparency log {url} was not valid at the entry's time ({t})")]
    LogNotValid {
        /// The log's base URL.
        url: String,
        /// The entry's integration time.
        t: i64,
    },
    /// The SET is not the log's signature.
    #[error("the Rekor SignedEntryTimestamp does not verify with the key of {0}")]
    Set(String),
    /// A hashedrekord entry for other content.
    #[error("the Rekor entry is for other content than this signature's payload")]
    OtherContent,
    /// A dsse entry for another payload.
    #[error("the Rekor entry is for another payload than this signature's")]
    OtherPayload,
    /// A dsse entry with no signature.
    #[error("the Rekor entry records no signature")]
    NoLoggedSignature,
    /// An entry kind that does not fit the signature.
    #[error(
        "Rekor entry {kind} {version} does not match this kind of signature \
         (hashedrekord 0.0.1 for cosign .sig signatures, dsse 0.0.1 for bundles)"
    )]
    EntryKind {
        /// `kind` of the body.
        kind: String,
        /// `apiVersion` of the body.
        version: String,
    },
    /// A CA certificate of the path that was not valid at log time.
    #[error("{subject} was not valid at {t}")]
    CaNotValid {
        /// The CA's subject.
        subject: String,
        /// The time checked.
        t: i64,
    },
    /// No CA of the trust root, valid then, names the leaf's issuer.
    #[error(
        "the certificate (issuer {issuer}) does not chain to a certificate authority of the \
         trust root valid at {t}"
    )]
    NoAuthority {
        /// The leaf's issuer name.
        issuer: String,
        /// The time checked.
        t: i64,
    },
    /// Candidate CAs, each with why its path failed.
    #[error("the certificate does not chain to the trust root: {}", .0.join("; "))]
    Chain(Vec<String>),
    /// The trust root lists CT logs and the certificate has no SCT.
    #[error(
        "the certificate has no embedded SCT, and the trust root requires \
         certificate transparency (it lists CT logs)"
    )]
    NoSct,
    /// Every SCT failed, each for the reason listed.
    #[error("no valid certificate transparency SCT: {}", .0.join("; "))]
    NoValidSct(Vec<String>),
}

/// PEM Fulcio certificate of the signer.
pub(crate) const CERT_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// PEM chain of that certificate (informational: the trust root decides).
#[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
pub(crate) const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Rekor bundle (JSON).
pub(crate) const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// The Rekor bundle cosign stores: the entry and Rekor's promise to log it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RekorBundle {
    /// Base64 ECDSA signature by the log over the canonical payload.
    #[serde(rename = "SignedEntryTimestamp")]
    pub signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    pub payload: BundlePayload,
}

/// The signed part of a Rekor bundle. Field order is the canonical JSON
/// order (sorted keys) Rekor signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BundlePayload {
    /// Base64 of the canonicalised entry body.
    pub body: String,
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    /// Hex SHA-256 of the log's public key.
    #[serde(rename = "logID")]
    pub log_id: String,
    #[serde(rename = "logIndex")]
    pub log_index: i64,
}

impl BundlePayload {
    /// The bytes the log signed.
    pub(crate) fn canonical(&self) -> Result<Vec<u8>, KeylessError> {
        serde_json::to_vec(self).map_err(|source| KeylessError::Json {
            what: "cannot encode the Rekor payload",
            source,
        })
    }
}

/// What a signature covers, and so what its Rekor entry must record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signed<'a> {
    /// A cosign `.sig` layer: the signature is over the payload's SHA-256.
    HashedRekord { payload_hash: [u8; 32] },
    /// A DSSE envelope: the signature is over its PAE bytes.
    Dsse {
        pae: &'a [u8],
        payload_hash: [u8; 32],
    },
}

/// Does a logged (base64 signature, base64 PEM certificate) pair name this
/// signature and certificate?
fn check_logged(
    sig_b64: &str,
    cert_b64: &str,
    signature: &[u8],
    leaf: &Cert,
) -> Result<(), KeylessError> {
    let logged_sig = STANDARD
        .decode(sig_b64.trim())
        .map_err(|_| KeylessError::NotBase64("the Rekor entry's signature"))?;
    if logged_sig != signature {
        return Err(KeylessError::OtherSignature);
    }
    let logged_cert = STANDARD
        .decode(cert_b64.trim())
        .ok()
        .and_then(|pem| String::from_utf8(pem).ok())
        .ok_or(KeylessError::NotBase64Pem)?;
    let logged_cert = Cert::from_pem(&logged_cert).map_err(|source| KeylessError::Cert {
        what: "the Rekor entry's certificate",
        source,
    })?;
    if logged_cert.der != leaf.der {
        return Err(KeylessError::OtherCertificate);
    }
    Ok(())
}

#[derive(Deserialize)]
struct Body {
    spec: HashedRekord,
}

#[derive(Deserialize)]
struct DsseBody {
    spec: DsseSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseSpec {
    payload_hash: HrHash,
    #[serde(default)]
    signatures: Vec<DsseLogged>,
}

#[derive(Deserialize)]
struct DsseLogged {
    signature: String,
    verifier: String,
}

#[derive(Deserialize)]
struct HashedRekord {
    data: HrData,
    signature: HrSignature,
}

#[derive(Deserialize)]
struct HrData {
    hash: HrHash,
}

#[derive(Deserialize)]
struct HrHash {
    algorithm: String,
    value: String,
}

#[derive(Deserialize)]
struct HrSignature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: HrKey,
}

#[derive(Deserialize)]
struct HrKey {
    content: String,
}

/// Who signed, per an accepted certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signer {
    /// The subject alternative name that matched a rule.
    pub identity: String,
    /// OIDC issuer recorded by Fulcio.
    pub issuer: String,
    /// Rekor log index of the entry.
    pub log_index: u64,
    /// When Rekor logged it (Unix seconds).
    pub integrated_time: i64,
}

impl Signer {
    /// The verdict for a signature of `digest` by this signer.
    pub(crate) fn status(self, digest: &str) -> crate::SignatureStatus {
        crate::SignatureStatus::VerifiedKeyless {
            identity: self.identity,
            issuer: self.issuer,
            signed_digest: digest.to_string(),
            log_index: self.log_index,
            integrated_time: self.integrated_time,
        }
    }
}

/// A trust root and the accepted signers.
#[derive(Debug, Clone)]
pub(crate) struct KeylessVerifier {
    pub root: TrustRoot,
    pub rules: Vec<IdentityRule>,
}

impl KeylessVerifier {
    /// Checks one signature layer (see the module docs). `payload` is the
    /// layer content, `signature` the decoded signature annotation.
    pub(crate) fn verify(
        &self,
        payload: &[u8],
        signature: &[u8],
        annotations: &BTreeMap<String, String>,
    ) -> Result<Signer, KeylessError> {
        self.verify_digest(&digest::sha256_bytes(payload), signature, annotations)
    }

    /// [`Self::verify`] given the SHA-256 of the payload.
    pub(crate) fn verify_digest(
        &self,
        payload_hash: &[u8; 32],
        signature: &[u8],
        annotations: &BTreeMap<String, String>,
    ) -> Result<Signer, KeylessError> {
        let cert_pem = annotations
            .get(CERT_ANNOTATION)
            .ok_or(KeylessError::NoCertificate)?;
        let leaf = Cert::from_pem(cert_pem).map_err(signing_cert)?;
        let bundle = annotations
            .get(BUNDLE_ANNOTATION)
            .ok_or(KeylessError::NoBundle)?;
        let bundle: RekorBundle =
            serde_json::from_str(bundle).map_err(|source| KeylessError::Json {
                what: "the Rekor bundle is malformed",
                source,
            })?;
        self.verify_signed(
            &leaf,
            signature,
            Signed::HashedRekord {
                payload_hash: *payload_hash,
            },
            &bundle,
        )
    }

    /// Checks a signature by `leaf` over `signed`, logged as `tlog`.
    pub(crate) fn verify_signed(
        &self,
        leaf: &Cert,
        signature: &[u8],
        signed: Signed<'_>,
        tlog: &RekorBundle,
    ) -> Result<Signer, KeylessError> {
        let key = leaf.public_key().map_err(signing_cert)?;
        let sig_ok = match signed {
            // Sigstore signs the SHA-256 of the artifact whatever the curve.
            Signed::HashedRekord { payload_hash } => key.verify_prehash(&payload_hash, signature),
            Signed::Dsse { pae, .. } => key.verify(key.default_hash(), pae, signature),
        };
        sig_ok.map_err(|()| KeylessError::BadSignature)?;
        let t = self.check_tlog(tlog, leaf, signature, signed)?;

        let (nb, na) = leaf.validity();
        if !(nb <= t && t <= na) {
            return Err(KeylessError::NotValidWhenLogged {
                logged: t,
                not_before: nb,
                not_after: na,
            });
        }
        leaf.check_code_signing()?;
        let issuer_cert = self.check_chain(leaf, t)?;
        if !self.root.ctlogs.is_empty() {
            self.check_sct(leaf, issuer_cert)?;
        }

        let names = leaf.identities()?;
        let issuer = leaf.oidc_issuer()?.ok_or(KeylessError::NoIssuer)?;
        for rule in &self.rules {
            if let Some(id) = rule.matches(&names, &issuer) {
                return Ok(Signer {
                    identity: id.to_string(),
                    issuer,
                    log_index: u64::try_from(tlog.payload.log_index).unwrap_or(0),
                    integrated_time: t,
                });
            }
        }
        Err(KeylessError::NoRule { names, issuer })
    }

    /// Verifies the Rekor bundle; returns its integration time.
    fn check_tlog(
        &self,
        bundle: &RekorBundle,
        leaf: &Cert,
        signature: &[u8],
        signed: Signed<'_>,
    ) -> Result<i64, KeylessError> {
        let p = &bundle.payload;
        let log_id: [u8; 32] = digest::unhex(&p.log_id)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeylessError::LogId(p.log_id.clone()))?;
        let log = self
            .root
            .tlogs
            .iter()
            .find(|l| l.key_id == log_id)
            .ok_or_else(|| KeylessError::UnknownLog(p.log_id.clone()))?;
        let t = p.integrated_time;
        if !log.valid.contains(t) {
            return Err(KeylessError::LogNotValid {
                url: log.base_url.clone(),
                t,
            });
        }
        let set = STANDARD
            .decode(bundle.signed_entry_timestamp.trim())
            .map_err(|_| KeylessError::NotBase64("the Rekor SignedEntryTimestamp"))?;
        log.key
            .verify(log.hash, &p.canonical()?, &set)
            .map_err(|()| KeylessError::Set(log.base_url.clone()))?;

        let body = STANDARD
            .decode(p.body.trim())
            .map_err(|_| KeylessError::NotBase64("the Rekor entry body"))?;
        let kind: serde_json::Value =
            serde_json::from_slice(&body).map_err(|source| KeylessError::Json {
                what: "the Rekor entry body is not JSON",
                source,
            })?;
        let kind = (
            kind.get("kind").and_then(|k| k.as_str()).unwrap_or(""),
            kind.get("apiVersion")
                .and_then(|k| k.as_str())
                .unwrap_or(""),
        );
        match (signed, kind) {
            (Signed::HashedRekord { payload_hash }, ("hashedrekord", "0.0.1")) => {
                let body: Body =
                    serde_json::from_slice(&body).map_err(|source| KeylessError::Json {
                        what: "the Rekor hashedrekord entry is malformed",
                        source,
                    })?;
                let h = &body.spec.data.hash;
                if h.algorithm != "sha256"
                    || !h.value.eq_ignore_ascii_case(&digest::hex(&payload_hash))
                {
                    return Err(KeylessError::OtherContent);
                }
                check_logged(
                    &body.spec.signature.content,
                    &body.spec.signature.public_key.content,
                    signature,
                    leaf,
                )?;
            }
            (Signed::Dsse { payload_hash, .. }, ("dsse", "0.0.1")) => {
                let body: DsseBody =
                    serde_json::from_slice(&body).map_err(|source| KeylessError::Json {
                        what: "the Rekor dsse entry is malformed",
                        source,
                    })?;
                let h = &body.spec.payload_hash;
                if h.algorithm != "sha256"
                    || !h.value.eq_ignore_ascii_case(&digest::hex(&payload_hash))
                {
                    return Err(KeylessError::OtherPayload);
                }
                let mut why = KeylessError::NoLoggedSignature;
                let logged = body.spec.signatures.iter().any(|s| {
                    check_logged(&s.signature, &s.verifier, signature, leaf)
                        .map_err(|e| why = e)
                        .is_ok()
                });
                if !logged {
                    return Err(why);
                }
            }
            (_, (k, v)) => {
                return Err(KeylessError::EntryKind {
                    kind: k.to_string(),
                    version: v.to_string(),
                });
            }
        }
        Ok(t)
    }

    /// Finds a CA of the trust root, valid at `t`, that issued `leaf`, and
    /// checks the path to its root. Returns the leaf's issuer.
    fn check_chain<'r>(&'r self, leaf: &Cert, t: i64) -> Result<&'r Cert, KeylessError> {
        let mut reasons = Vec::new();
        for ca in &self.root.authorities {
            if !ca.valid.contains(t) {
                continue;
            }
            let Some(i) = ca
                .chain
                .iter()
                .position(|c| c.cert.tbs_certificate.subject == leaf.cert.tbs_certificate.issuer)
            else {
                continue;
            };
            let check = || -> Result<(), KeylessError> {
                let mut child = leaf;
                for parent in &ca.chain[i..] {
                    child.verify_issued_by(parent)?;
                    parent.check_ca()?;
                    if !parent.valid_at(t) {
                        return Err(KeylessError::CaNotValid {
                            subject: parent.subject(),
                            t,
                        });
                    }
                    child = parent;
                }
                Ok(())
            };
            match check() {
                Ok(()) => return Ok(&ca.chain[i]),
                Err(e) => reasons.push(format!("{}: {e}", ca.uri)),
            }
        }
        Err(if reasons.is_empty() {
            KeylessError::NoAuthority {
                issuer: leaf.cert.tbs_certificate.issuer.to_string(),
                t,
            }
        } else {
            KeylessError::Chain(reasons)
        })
    }

    /// At least one embedded SCT from a CT log of the trust root verifies.
    fn check_sct(&self, leaf: &Cert, issuer: &Cert) -> Result<(), KeylessError> {
        let scts = leaf.scts()?;
        if scts.is_empty() {
            return Err(KeylessError::NoSct);
        }
        let issuer_key_hash = digest::sha256_bytes(&issuer.spki_der()?);
        let tbs = leaf.precert_tbs()?;
        let mut reasons = Vec::new();
        for sct in scts {
            let Some(log) = self.root.ctlogs.iter().find(|l| l.key_id == sct.log_id) else {
                reasons.push(format!(
                    "SCT from unknown CT log {}",
                    STANDARD.encode(sct.log_id)
                ));
                continue;
            };
            let when = i64::try_from(sct.timestamp_ms / 1000).unwrap_or(i64::MAX);
            if !log.valid.contains(when) {
                reasons.push(format!(
                    "CT log {} was not valid at the SCT's time",
                    log.base_url
                ));
                continue;
            }
            let hash: Hash = match sct.hash() {
                Ok(h) => h,
                Err(e) => {
                    reasons.push(e.to_string());
                    continue;
                }
            };
            match log.key.verify(
                hash,
                &sct.signed_data(&issuer_key_hash, &tbs),
                &sct.signature,
            ) {
                Ok(()) => return Ok(()),
                Err(()) => reasons.push(format!("the SCT of {} does not verify", log.base_url)),
            }
        }
        Err(KeylessError::NoValidSct(reasons))
    }
}

fn signing_cert(source: PkiError) -> KeylessError {
    KeylessError::Cert {
        what: "signing certificate",
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{KeylessSigner, TestSigstore};

    const MAIL: &str = "release@example.com";
    const ISSUER: &str = "https://accounts.example.com";

    fn rule(identity: &str, issuer: &str) -> IdentityRule {
        IdentityRule {
            identity: Some(identity.to_string()),
            issuer: Some(issuer.to_string()),
            ..IdentityRule::default()
        }
    }

    fn verifier(root_json: &str, rules: Vec<IdentityRule>) -> KeylessVerifier {
        KeylessVerifier {
            root: TrustRoot::parse(root_json.as_bytes()).unwrap(),
            rules,
        }
    }

    fn check(
        v: &KeylessVerifier,
        payload: &[u8],
        (sig, ann): &(String, BTreeMap<String, String>),
    ) -> Result<Signer, KeylessError> {
        v.verify(payload, &STANDARD.decode(sig).unwrap(), ann)
    }

    #[test]
    fn a_correct_signature_is_accepted_and_names_its_signer() {
        let ss = TestSigstore::new(1, "alpha");
        for with_ct in [true, false] {
            let v = verifier(&ss.trusted_root_json(with_ct), vec![rule(MAIL, ISSUER)]);
            let s = KeylessSigner::new(MAIL, ISSUER);
            let signer = check(&v, b"payload", &ss.sign(b"payload", &s)).unwrap();
            assert_eq!(signer.identity, MAIL);
            assert_eq!(signer.issuer, ISSUER);
            assert_eq!(signer.log_index, 4242);
            assert_eq!(signer.integrated_time, s.signed_at + 5);
        }
        // A workflow URI matched by an anchored regexp, among other rules.
        let wf = "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1";
        let gh = "https://token.actions.githubusercontent.com";
        let v = verifier(
            &ss.trusted_root_json(true),
            vec![
                rule(MAIL, ISSUER),
                IdentityRule {
                    identity_regexp: Some(
                        r"https://github\.com/org/[^/]+/\.github/workflows/.*".into(),
                    ),
                    issuer: Some(gh.into()),
                    ..IdentityRule::default()
                },
            ],
        );
        let signer = check(&v, b"p", &ss.sign(b"p", &KeylessSigner::new(wf, gh))).unwrap();
        assert_eq!(signer.identity, wf);
    }

    #[test]
    fn wrong_signer_is_refused_with_who_it_was() {
        let ss = TestSigstore::new(1, "alpha");
        let v = verifier(&ss.trusted_root_json(true), vec![rule(MAIL, ISSUER)]);
        let e = check(
            &v,
            b"p",
            &ss.sign(b"p", &KeylessSigner::new("mallory@example.com", ISSUER)),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mallory@example.com") && e.contains("matches no"),
            "{e}"
        );
        let e = check(
            &v,
            b"p",
            &ss.sign(b"p", &KeylessSigner::new(MAIL, "https://evil.example.com")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("https://evil.example.com") && e.contains("matches no"),
            "{e}"
        );
    }

    #[test]
    fn another_sigstore_is_not_trusted() {
        let trusted = TestSigstore::new(1, "alpha");
        let other = TestSigstore::new(2, "beta");
        let v = verifier(&trusted.trusted_root_json(true), vec![rule(MAIL, ISSUER)]);
        let sig = other.sign(b"p", &KeylessSigner::new(MAIL, ISSUER));
        let e = check(&v, b"p", &sig).unwrap_err().to_string();
        assert!(e.contains("does not list"), "{e}");
        // Trust beta's Rekor but only alpha's CA: the chain is refused.
        let mut mixed: serde_json::Value =
            serde_json::from_str(&other.trusted_root_json(true)).unwrap();
        let alpha: serde_json::Value =
            serde_json::from_str(&trusted.trusted_root_json(true)).unwrap();
        mixed["certificateAuthorities"] = alpha["certificateAuthorities"].clone();
        let v = verifier(&mixed.to_string(), vec![rule(MAIL, ISSUER)]);
        let e = check(&v, b"p", &sig).unwrap_err().to_string();
        assert!(e.contains("does not chain"), "{e}");
        // A CA no longer valid when the signature was logged is not used.
        let mut ended: serde_json::Value =
            serde_json::from_str(&other.trusted_root_json(true)).unwrap();
        ended["certificateAuthorities"][0]["validFor"]["end"] = "2021-01-01T00:00:00Z".into();
        let v = verifier(&ended.to_string(), vec![rule(MAIL, ISSUER)]);
        let e = check(&v, b"p", &sig).unwrap_err().to_string();
        assert!(e.contains("does not chain"), "{e}");
        // Beta's CT log is unknown to a root listing alpha's.
        let mut ct: serde_json::Value =
            serde_json::from_str(&other.trusted_root_json(true)).unwrap();
        ct["ctlogs"] = alpha["ctlogs"].clone();
        let v = verifier(&ct.to_string(), vec![rule(MAIL, ISSUER)]);
        let e = check(&v, b"p", &sig).unwrap_err().to_string();
        assert!(e.contains("unknown CT log"), "{e}");
    }

    #[test]
    fn each_broken_part_is_refused() {
        let ss = TestSigstore::new(1, "alpha");
        let v = verifier(&ss.trusted_root_json(true), vec![rule(MAIL, ISSUER)]);
        let ok = KeylessSigner::new(MAIL, ISSUER);
        let cases: Vec<(KeylessSigner, &str)> = vec![
            (
                KeylessSigner {
                    logged_after: 700,
                    ..ok.clone()
                },
                "not valid when Rekor logged",
            ),
            (
                KeylessSigner {
                    code_signing: false,
                    ..ok.clone()
                },
                "not for code signing",
            ),
            (
                KeylessSigner {
                    sct: false,
                    ..ok.clone()
                },
                "no embedded SCT",
            ),
            (
                KeylessSigner {
                    rekor_bundle: false,
                    ..ok.clone()
                },
                "no Rekor bundle",
            ),
            (
                KeylessSigner {
                    bad_set: true,
                    ..ok.clone()
                },
                "SignedEntryTimestamp does not verify",
            ),
        ];
        for (s, want) in cases {
            let e = check(&v, b"p", &ss.sign(b"p", &s)).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        // Without CT logs in the trust root an SCT is not required.
        let no_ct = verifier(&ss.trusted_root_json(false), vec![rule(MAIL, ISSUER)]);
        check(
            &no_ct,
            b"p",
            &ss.sign(
                b"p",
                &KeylessSigner {
                    sct: false,
                    ..ok.clone()
                },
            ),
        )
        .unwrap();

        // The signature must be over this payload.
        let e = check(&v, b"other", &ss.sign(b"p", &ok))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not verify with its certificate"), "{e}");
        // A Rekor bundle of another signature does not vouch for this one.
        let (sig, mut ann) = ss.sign(b"p", &ok);
        let (_, other) = ss.sign(b"q", &ok);
        ann.insert(BUNDLE_ANNOTATION.into(), other[BUNDLE_ANNOTATION].clone());
        let e = check(&v, b"p", &(sig.clone(), ann.clone()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("other content") || e.contains("another"), "{e}");
        // A key signature (no certificate) is not a keyless one.
        ann.remove(CERT_ANNOTATION);
        let e = check(&v, b"p", &(sig, ann)).unwrap_err().to_string();
        assert!(e.contains("no Fulcio certificate"), "{e}");
    }

    /// Interop: a keyless signature made by Sigstore's own client against
    /// Sigstore's public staging instance (Fulcio certificate with an
    /// embedded SCT, Rekor hashedrekord entry and SET, 2024-04-02),
    /// verified offline against that instance's trust root
    /// (tests/data/sigstage-trusted-root.json).
    #[test]
    fn verifies_a_real_sigstore_staging_signature() {
        const CERT: &str = "MIIC1TCCAlqgAwIBAgIUM8X9bqAVFpaofemSrcgku8oJ/T8wCgYIKoZIzj0EAwMwNzEVMBMGA1UEChMMc2lnc3RvcmUuZGV2MR4wHAYDVQQDExVzaWdzdG9yZS1pbnRlcm1lZGlhdGUwHhcNMjQwNDAyMTkyMDE2WhcNMjQwNDAyMTkzMDE2WjAAMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4tx/Vclr8Yr3ArUW9kIEFuR4mynLKKScX2ECX+I4WsXi6Q/0JUoVM2B/U3e97BZcl/bWHEToeshhWiQLaGztX6OCAXkwggF1MA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDAzAdBgNVHQ4EFgQU7611Rsd/9kcw/cE/Fe3B5fUfpt0wHwYDVR0jBBgwFoAUcYYwphR8Ym/599b0BRp/X//rb6wwIwYDVR0RAQH/BBkwF4EVd2lsbGlhbUB5b3NzYXJpYW4ubmV0MCwGCisGAQQBg78wAQEEHmh0dHBzOi8vZ2l0aHViLmNvbS9sb2dpbi9vYXV0aDAuBgorBgEEAYO/MAEIBCAMHmh0dHBzOi8vZ2l0aHViLmNvbS9sb2dpbi9vYXV0aDCBigYKKwYBBAHWeQIEAgR8BHoAeAB2ACswvNxoiMni4dgmKV50H0g5MZYC8pwzy15DQP6yrIZ6AAABjqBBR8IAAAQDAEcwRQIhAOb1ZBDYuTNMa1RVLWvER4K51+ugnGYPCZKCXwx3hb+DAiBXX1DDn6Xv9B/RC5s3ZMQfbZ6jN7DFXQqDi/r3GLMP2DAKBggqhkjOPQQDAwNpADBmAjEAvXkFJvo2uuPZ7L5aRixEkysAF24+vRmISzcE2qTrGbzmqCW1AFzbnFsLhllo8IEJAjEAgEr9lfJZJCDLE1kV9M3/nfsPD/6ZNtDbU0vRjeygnXgsXJkrf96SjZCCfIlzxczF";
        const SET: &str = "MEUCIQCDbNwTMuX7lJt//HauYK0/RZ6UbKbYVR+vEr7rns4/ngIgSwRaRO2ody7uWMtIwe/ZRKwvl7+3Kn3IYKZDEj6CX8w=";
        const BODY: &str = "eyJhcGlWZXJzaW9uIjoiMC4wLjEiLCJraW5kIjoiaGFzaGVkcmVrb3JkIiwic3BlYyI6eyJkYXRhIjp7Imhhc2giOnsiYWxnb3JpdGhtIjoic2hhMjU2IiwidmFsdWUiOiI0MTkxZTZiNGUyYjAyNjBlNmUyOTdkNDc5N2QyYTg3MzU4NDk2NWFmZWYwMjFiZjIyZjJiYjdiZWM0MTEwMmQwIn19LCJzaWduYXR1cmUiOnsiY29udGVudCI6Ik1FVUNJUUNVeFo1V1Z0SG9oUEVIVzZwZ0hUQTBvMFoyWGdtUklGOEUvKzBQVGE5YWVRSWdPblRMZHNpYnhXbFpkVlNtckJzNEN3R2JuRXloT0dKc0Z0KzQ2anpjQU1VPSIsInB1YmxpY0tleSI6eyJjb250ZW50IjoiTFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2sxSlNVTXhWRU5EUVd4eFowRjNTVUpCWjBsVlRUaFlPV0p4UVZaR2NHRnZabVZ0VTNKaloydDFPRzlLTDFRNGQwTm5XVWxMYjFwSmVtb3dSVUYzVFhjS1RucEZWazFDVFVkQk1WVkZRMmhOVFdNeWJHNWpNMUoyWTIxVmRWcEhWakpOVWpSM1NFRlpSRlpSVVVSRmVGWjZZVmRrZW1SSE9YbGFVekZ3WW01U2JBcGpiVEZzV2tkc2FHUkhWWGRJYUdOT1RXcFJkMDVFUVhsTlZHdDVUVVJGTWxkb1kwNU5hbEYzVGtSQmVVMVVhM3BOUkVVeVYycEJRVTFHYTNkRmQxbElDa3R2V2tsNmFqQkRRVkZaU1V0dldrbDZhakJFUVZGalJGRm5RVVUwZEhndlZtTnNjamhaY2pOQmNsVlhPV3RKUlVaMVVqUnRlVzVNUzB0VFkxZ3lSVU1LV0N0Sk5GZHpXR2syVVM4d1NsVnZWazB5UWk5Vk0yVTVOMEphWTJ3dllsZElSVlJ2WlhOb2FGZHBVVXhoUjNwMFdEWlBRMEZZYTNkblowWXhUVUUwUndwQk1WVmtSSGRGUWk5M1VVVkJkMGxJWjBSQlZFSm5UbFpJVTFWRlJFUkJTMEpuWjNKQ1owVkdRbEZqUkVGNlFXUkNaMDVXU0ZFMFJVWm5VVlUzTmpFeENsSnpaQzg1YTJOM0wyTkZMMFpsTTBJMVpsVm1jSFF3ZDBoM1dVUldVakJxUWtKbmQwWnZRVlZqV1ZsM2NHaFNPRmx0THpVNU9XSXdRbEp3TDFndkwzSUtZalozZDBsM1dVUldVakJTUVZGSUwwSkNhM2RHTkVWV1pESnNjMkpIYkdoaVZVSTFZak5PZWxsWVNuQlpWelIxWW0xV01FMURkMGREYVhOSFFWRlJRZ3BuTnpoM1FWRkZSVWh0YURCa1NFSjZUMms0ZGxveWJEQmhTRlpwVEcxT2RtSlRPWE5pTW1Sd1ltazVkbGxZVmpCaFJFRjFRbWR2Y2tKblJVVkJXVTh2Q2sxQlJVbENRMEZOU0cxb01HUklRbnBQYVRoMldqSnNNR0ZJVm1sTWJVNTJZbE01YzJJeVpIQmlhVGwyV1ZoV01HRkVRMEpwWjFsTFMzZFpRa0pCU0ZjS1pWRkpSVUZuVWpoQ1NHOUJaVUZDTWtGRGMzZDJUbmh2YVUxdWFUUmtaMjFMVmpVd1NEQm5OVTFhV1VNNGNIZDZlVEUxUkZGUU5ubHlTVm8yUVVGQlFncHFjVUpDVWpoSlFVRkJVVVJCUldOM1VsRkphRUZQWWpGYVFrUlpkVlJPVFdFeFVsWk1WM1pGVWpSTE5URXJkV2R1UjFsUVExcExRMWgzZUROb1lpdEVDa0ZwUWxoWU1VUkVialpZZGpsQ0wxSkROWE16V2sxUlptSmFObXBPTjBSR1dGRnhSR2t2Y2pOSFRFMVFNa1JCUzBKblozRm9hMnBQVUZGUlJFRjNUbkFLUVVSQ2JVRnFSVUYyV0d0R1NuWnZNblYxVUZvM1REVmhVbWw0Uld0NWMwRkdNalFyZGxKdFNWTjZZMFV5Y1ZSeVIySjZiWEZEVnpGQlJucGlia1p6VEFwb2JHeHZPRWxGU2tGcVJVRm5SWEk1YkdaS1drcERSRXhGTVd0V09VMHpMMjVtYzFCRUx6WmFUblJFWWxVd2RsSnFaWGxuYmxobmMxaEthM0ptT1RaVENtcGFRME5tU1d4NmVHTjZSZ290TFMwdExVVk9SQ0JEUlZKVVNVWkpRMEZVUlMwdExTMHRDZz09In19fX0=";
        const SIG: &str = "MEUCIQCUxZ5WVtHohPEHW6pgHTA0o0Z2XgmRIF8E/+0PTa9aeQIgOnTLdsibxWlZdVSmrBs4CwGbnEyhOGJsFt+46jzcAMU=";
        const DIGEST: &str = "4191e6b4e2b0260e6e297d4797d2a873584965afef021bf22f2bb7bec41102d0";
        const LOG_ID: &str = "0y8wo8MtY5wrdiIFohx7sHeI5oKDpK5vQhGHI6G+pJY=";

        let root = include_str!("../tests/data/sigstage-trusted-root.json");
        let v = verifier(
            root,
            vec![rule(
                "william@yossarian.net",
                "https://github.com/login/oauth",
            )],
        );
        assert_eq!(v.root.tlogs.len(), 1, "the Ed25519 log is skipped");
        let der = STANDARD.decode(CERT).unwrap();
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in STANDARD.encode(&der).as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        let bundle = |set: &str, index: i64| {
            serde_json::to_string(&RekorBundle {
                signed_entry_timestamp: set.to_string(),
                payload: BundlePayload {
                    body: BODY.to_string(),
                    integrated_time: 1_712_085_616,
                    log_id: digest::hex(&STANDARD.decode(LOG_ID).unwrap()),
                    log_index: index,
                },
            })
            .unwrap()
        };
        let mut ann = BTreeMap::new();
        ann.insert(CERT_ANNOTATION.to_string(), pem);
        ann.insert(BUNDLE_ANNOTATION.to_string(), bundle(SET, 25_915_997));
        let hash: [u8; 32] = digest::unhex(DIGEST).unwrap().try_into().unwrap();
        let sig = STANDARD.decode(SIG).unwrap();
        let signer = v.verify_digest(&hash, &sig, &ann).unwrap();
        assert_eq!(signer.identity, "william@yossarian.net");
        assert_eq!(signer.issuer, "https://github.com/login/oauth");
        assert_eq!(signer.log_index, 25_915_997);

        // The SET covers the log index: another index is refused.
        ann.insert(BUNDLE_ANNOTATION.to_string(), bundle(SET, 25_915_998));
        let e = v.verify_digest(&hash, &sig, &ann).unwrap_err().to_string();
        assert!(e.contains("SignedEntryTimestamp does not verify"), "{e}");
        // Another artifact is refused.
        ann.insert(BUNDLE_ANNOTATION.to_string(), bundle(SET, 25_915_997));
        let mut other = hash;
        other[0] ^= 1;
        assert!(v.verify_digest(&other, &sig, &ann).is_err());
        // The same signature against the public-good instance is refused.
        let v = verifier(
            &TestSigstore::new(3, "gamma").trusted_root_json(true),
            vec![rule(
                "william@yossarian.net",
                "https://github.com/login/oauth",
            )],
        );
        assert!(v.verify_digest(&hash, &sig, &ann).is_err());
    }
}
