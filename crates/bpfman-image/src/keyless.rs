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
use crate::pki::{Cert, Hash};
use crate::trust_root::TrustRoot;

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
    pub(crate) fn canonical(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| format!("cannot encode the Rekor payload: {e}"))
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
) -> Result<(), String> {
    let logged_sig = STANDARD
        .decode(sig_b64.trim())
        .map_err(|_| "the Rekor entry's signature is not base64".to_string())?;
    if logged_sig != signature {
        return Err("the Rekor entry records another signature than this one".into());
    }
    let logged_cert = STANDARD
        .decode(cert_b64.trim())
        .ok()
        .and_then(|pem| String::from_utf8(pem).ok())
        .ok_or("the Rekor entry's public key is not base64 PEM")?;
    let logged_cert =
        Cert::from_pem(&logged_cert).map_err(|e| format!("the Rekor entry's certificate: {e}"))?;
    if logged_cert.der != leaf.der {
        return Err("the Rekor entry records another certificate than this one".into());
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
    ) -> Result<Signer, String> {
        self.verify_digest(&digest::sha256_bytes(payload), signature, annotations)
    }

    /// [`Self::verify`] given the SHA-256 of the payload.
    pub(crate) fn verify_digest(
        &self,
        payload_hash: &[u8; 32],
        signature: &[u8],
        annotations: &BTreeMap<String, String>,
    ) -> Result<Signer, String> {
        let cert_pem = annotations.get(CERT_ANNOTATION).ok_or(
            "the signature has no Fulcio certificate (it was made with a key; set \
             signing.public_key to accept key signatures)",
        )?;
        let leaf = Cert::from_pem(cert_pem).map_err(|e| format!("signing certificate: {e}"))?;
        let bundle = annotations.get(BUNDLE_ANNOTATION).ok_or(
            "the signature has no Rekor bundle (dev.sigstore.cosign/bundle): without a \
             transparency log entry there is no proof of when the short-lived certificate signed",
        )?;
        let bundle: RekorBundle = serde_json::from_str(bundle)
            .map_err(|e| format!("the Rekor bundle is malformed: {e}"))?;
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
    ) -> Result<Signer, String> {
        let key = leaf
            .public_key()
            .map_err(|e| format!("signing certificate: {e}"))?;
        let sig_ok = match signed {
            // Sigstore signs the SHA-256 of the artifact whatever the curve.
            Signed::HashedRekord { payload_hash } => key.verify_prehash(&payload_hash, signature),
            Signed::Dsse { pae, .. } => key.verify(key.default_hash(), pae, signature),
        };
        sig_ok
            .map_err(|()| "the signature does not verify with its certificate's key".to_string())?;
        let t = self.check_tlog(tlog, leaf, signature, signed)?;

        let (nb, na) = leaf.validity();
        if !(nb <= t && t <= na) {
            return Err(format!(
                "the certificate was not valid when Rekor logged the signature \
                 (logged at {t}, valid {nb}..{na}, Unix seconds)"
            ));
        }
        leaf.check_code_signing()?;
        let issuer_cert = self.check_chain(leaf, t)?;
        if !self.root.ctlogs.is_empty() {
            self.check_sct(leaf, issuer_cert)?;
        }

        let names = leaf.identities()?;
        let issuer = leaf
            .oidc_issuer()?
            .ok_or("the certificate records no OIDC issuer (not a Fulcio certificate?)")?;
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
        Err(format!(
            "signer {} (issuer {issuer}) matches no signing.keyless identity rule",
            if names.is_empty() {
                "<no subject alternative name>".to_string()
            } else {
                names.join(", ")
            }
        ))
    }

    /// Verifies the Rekor bundle; returns its integration time.
    fn check_tlog(
        &self,
        bundle: &RekorBundle,
        leaf: &Cert,
        signature: &[u8],
        signed: Signed<'_>,
    ) -> Result<i64, String> {
        let p = &bundle.payload;
        let log_id: [u8; 32] = digest::unhex(&p.log_id)
            .and_then(|b| b.try_into().ok())
            .ok_or(format!(
                "the Rekor bundle's logID {:?} is not a hex SHA-256",
                p.log_id
            ))?;
        let log = self
            .root
            .tlogs
            .iter()
            .find(|l| l.key_id == log_id)
            .ok_or(format!(
                "the signature was logged by a transparency log ({}) the trust root does not list",
                p.log_id
            ))?;
        let t = p.integrated_time;
        if !log.valid.contains(t) {
            return Err(format!(
                "transparency log {} was not valid at the entry's time ({t})",
                log.base_url
            ));
        }
        let set = STANDARD
            .decode(bundle.signed_entry_timestamp.trim())
            .map_err(|_| "the Rekor SignedEntryTimestamp is not base64".to_string())?;
        log.key
            .verify(log.hash, &p.canonical()?, &set)
            .map_err(|()| {
                format!(
                    "the Rekor SignedEntryTimestamp does not verify with the key of {}",
                    log.base_url
                )
            })?;

        let body = STANDARD
            .decode(p.body.trim())
            .map_err(|_| "the Rekor entry body is not base64".to_string())?;
        let kind: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the Rekor entry body is not JSON: {e}"))?;
        let kind = (
            kind.get("kind").and_then(|k| k.as_str()).unwrap_or(""),
            kind.get("apiVersion")
                .and_then(|k| k.as_str())
                .unwrap_or(""),
        );
        match (signed, kind) {
            (Signed::HashedRekord { payload_hash }, ("hashedrekord", "0.0.1")) => {
                let body: Body = serde_json::from_slice(&body)
                    .map_err(|e| format!("the Rekor hashedrekord entry is malformed: {e}"))?;
                let h = &body.spec.data.hash;
                if h.algorithm != "sha256"
                    || !h.value.eq_ignore_ascii_case(&digest::hex(&payload_hash))
                {
                    return Err(
                        "the Rekor entry is for other content than this signature's payload".into(),
                    );
                }
                check_logged(
                    &body.spec.signature.content,
                    &body.spec.signature.public_key.content,
                    signature,
                    leaf,
                )?;
            }
            (Signed::Dsse { payload_hash, .. }, ("dsse", "0.0.1")) => {
                let body: DsseBody = serde_json::from_slice(&body)
                    .map_err(|e| format!("the Rekor dsse entry is malformed: {e}"))?;
                let h = &body.spec.payload_hash;
                if h.algorithm != "sha256"
                    || !h.value.eq_ignore_ascii_case(&digest::hex(&payload_hash))
                {
                    return Err(
                        "the Rekor entry is for another payload than this signature's".into(),
                    );
                }
                let mut why = "the Rekor entry records no signature".to_string();
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
                return Err(format!(
                    "Rekor entry {k} {v} does not match this kind of signature \
                     (hashedrekord 0.0.1 for cosign .sig signatures, dsse 0.0.1 for bundles)"
                ));
            }
        }
        Ok(t)
    }

    /// Finds a CA of the trust root, valid at `t`, that issued `leaf`, and
    /// checks the path to its root. Returns the leaf's issuer.
    fn check_chain<'r>(&'r self, leaf: &Cert, t: i64) -> Result<&'r Cert, String> {
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
            let check = || -> Result<(), String> {
                let mut child = leaf;
                for parent in &ca.chain[i..] {
                    child.verify_issued_by(parent)?;
                    parent.check_ca()?;
                    if !parent.valid_at(t) {
                        return Err(format!("{} was not valid at {t}", parent.subject()));
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
            format!(
                "the certificate (issuer {}) does not chain to a certificate authority of the \
                 trust root valid at {t}",
                leaf.cert.tbs_certificate.issuer
            )
        } else {
            format!(
                "the certificate does not chain to the trust root: {}",
                reasons.join("; ")
            )
        })
    }

    /// At least one embedded SCT from a CT log of the trust root verifies.
    fn check_sct(&self, leaf: &Cert, issuer: &Cert) -> Result<(), String> {
        let scts = leaf.scts()?;
        if scts.is_empty() {
            return Err(
                "the certificate has no embedded SCT, and the trust root requires \
                 certificate transparency (it lists CT logs)"
                    .into(),
            );
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
                    reasons.push(e);
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
        Err(format!(
            "no valid certificate transparency SCT: {}",
            reasons.join("; ")
        ))
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
    ) -> Result<Signer, String> {
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
        .unwrap_err();
        assert!(
            e.contains("mallory@example.com") && e.contains("matches no"),
            "{e}"
        );
        let e = check(
            &v,
            b"p",
            &ss.sign(b"p", &KeylessSigner::new(MAIL, "https://evil.example.com")),
        )
        .unwrap_err();
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
        let e = check(&v, b"p", &sig).unwrap_err();
        assert!(e.contains("does not list"), "{e}");
        // Trust beta's Rekor but only alpha's CA: the chain is refused.
        let mut mixed: serde_json::Value =
            serde_json::from_str(&other.trusted_root_json(true)).unwrap();
        let alpha: serde_json::Value =
            serde_json::from_str(&trusted.trusted_root_json(true)).unwrap();
        mixed["certificateAuthorities"] = alpha["certificateAuthorities"].clone();
        let v = verifier(&mixed.to_string(), vec![rule(MAIL, ISSUER)]);
        let e = check(&v, b"p", &sig).unwrap_err();
        assert!(e.contains("does not chain"), "{e}");
        // A CA no longer valid when the signature was logged is not used.
        let mut ended: serde_json::Value =
            serde_json::from_str(&other.trusted_root_json(true)).unwrap();
        ended["certificateAuthorities"][0]["validFor"]["end"] = "2021-01-01T00:00:00Z".into();
        let v = verifier(&ended.to_string(), vec![rule(MAIL, ISSUER)]);
        let e = check(&v, b"p", &sig).unwrap_err();
        assert!(e.contains("does not chain"), "{e}");
        // Beta's CT log is unknown to a root listing alpha's.
        let mut ct: serde_json::Value =
            serde_json::from_str(&other.trusted_root_json(true)).unwrap();
        ct["ctlogs"] = alpha["ctlogs"].clone();
        let v = verifier(&ct.to_string(), vec![rule(MAIL, ISSUER)]);
        let e = check(&v, b"p", &sig).unwrap_err();
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
            let e = check(&v, b"p", &ss.sign(b"p", &s)).unwrap_err();
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
        let e = check(&v, b"other", &ss.sign(b"p", &ok)).unwrap_err();
        assert!(e.contains("does not verify with its certificate"), "{e}");
        // A Rekor bundle of another signature does not vouch for this one.
        let (sig, mut ann) = ss.sign(b"p", &ok);
        let (_, other) = ss.sign(b"q", &ok);
        ann.insert(BUNDLE_ANNOTATION.into(), other[BUNDLE_ANNOTATION].clone());
        let e = check(&v, b"p", &(sig.clone(), ann.clone())).unwrap_err();
        assert!(e.contains("other content") || e.contains("another"), "{e}");
        // A key signature (no certificate) is not a keyless one.
        ann.remove(CERT_ANNOTATION);
        let e = check(&v, b"p", &(sig, ann)).unwrap_err();
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
        let e = v.verify_digest(&hash, &sig, &ann).unwrap_err();
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
