//! The X.509 and ECDSA pieces keyless verification needs: public keys from
//! SubjectPublicKeyInfo (P-256, P-384), certificate signatures, the
//! extensions Fulcio writes, and embedded Certificate Transparency SCTs.
//!
//! Only what Sigstore uses is supported; anything else is an error that
//! names it, never a silent pass.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE,
    ID_CE_KEY_USAGE, ID_CE_SUBJECT_ALT_NAME, ID_EC_PUBLIC_KEY, ID_KP_CODE_SIGNING, SECP_256_R_1,
    SECP_384_R_1,
};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::pkcs8::DecodePublicKey as _;
use sha2::{Digest as _, Sha256, Sha384};
use x509_cert::Certificate;
use x509_cert::der::asn1::OctetString;
use x509_cert::der::{self, Decode as _, DecodePem as _, Encode as _};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};

/// Fulcio's OIDC issuer extension, raw string value (deprecated form).
pub(crate) const FULCIO_ISSUER_V1: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer extension, DER UTF8String value.
pub(crate) const FULCIO_ISSUER_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// Embedded SCT list (RFC 6962 §3.3).
pub(crate) const CT_PRECERT_SCTS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// Why a key, certificate or SCT is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PkiError {
    /// Not a DER SubjectPublicKeyInfo.
    #[error("not a DER public key: {0}")]
    NotDerKey(der::Error),
    /// Not an EC key.
    #[error("public key algorithm {0} is not supported (ECDSA P-256 or P-384 only)")]
    KeyAlgorithm(ObjectIdentifier),
    /// An EC key whose parameters name no curve.
    #[error("an EC public key without a curve")]
    NoCurve,
    /// The curve parameter does not decode.
    #[error("EC curve parameter: {0}")]
    CurveParameter(der::Error),
    /// An EC curve other than P-256 and P-384.
    #[error("EC curve {0} is not supported (P-256 or P-384 only)")]
    Curve(ObjectIdentifier),
    /// The key bytes are not a point of the curve.
    #[error("bad {curve} public key: {reason}")]
    BadKey {
        /// "P-256" or "P-384".
        curve: &'static str,
        /// The decoder's words.
        reason: String,
    },
    /// Not a DER certificate.
    #[error("not a DER certificate: {0}")]
    NotDerCert(der::Error),
    /// Not a PEM certificate.
    #[error("not a PEM certificate: {0}")]
    NotPemCert(der::Error),
    /// A parsed structure that does not encode again (`what` names it).
    #[error("cannot {what}: {source}")]
    Encode {
        /// e.g. "encode a public key".
        what: &'static str,
        /// The encoder's error.
        source: der::Error,
    },
    /// The issuer named by a certificate is not the candidate issuer.
    #[error("issuer {named} is not {candidate}")]
    IssuerName {
        /// The issuer the certificate names.
        named: String,
        /// The subject of the candidate issuer.
        candidate: String,
    },
    /// A signature algorithm other than ECDSA with SHA-256/384.
    #[error("certificate signature algorithm {0} is not supported (ECDSA with SHA-256/384)")]
    SignatureAlgorithm(ObjectIdentifier),
    /// A BIT STRING signature with unused bits.
    #[error("the certificate signature is not a whole number of bytes")]
    SignatureBits,
    /// The issuer's key did not make this signature.
    #[error("the signature of {0} does not verify")]
    Signature(String),
    /// An extension that does not decode (`name` is the extension).
    #[error("{name}: {source}")]
    Extension {
        /// e.g. "basicConstraints".
        name: &'static str,
        /// The decoder's error.
        source: der::Error,
    },
    /// A CA certificate without cA = true.
    #[error("{0} is not a CA certificate")]
    NotCa(String),
    /// A CA certificate whose key usage lacks keyCertSign.
    #[error("{0} may not sign certificates")]
    NoCertSign(String),
    /// A leaf whose key usage lacks digitalSignature.
    #[error("the certificate's key usage does not include digitalSignature")]
    NoDigitalSignature,
    /// A leaf without the codeSigning purpose.
    #[error("the certificate is not for code signing (extendedKeyUsage)")]
    NotCodeSigning,
    /// The v1 Fulcio issuer extension is not UTF-8.
    #[error("Fulcio issuer extension is not UTF-8")]
    IssuerNotUtf8,
    /// The SCT list ends inside an entry.
    #[error("truncated SCT list")]
    TruncatedSct,
    /// An SCT signed with something other than ECDSA.
    #[error("SCT signature algorithm (hash {hash}, signature {sig}) is not supported (ECDSA)")]
    SctAlgorithm {
        /// TLS HashAlgorithm.
        hash: u8,
        /// TLS SignatureAlgorithm.
        sig: u8,
    },
}

fn ext(name: &'static str) -> impl FnOnce(der::Error) -> PkiError {
    move |source| PkiError::Extension { name, source }
}

fn encode(what: &'static str) -> impl FnOnce(der::Error) -> PkiError {
    move |source| PkiError::Encode { what, source }
}

/// A hash algorithm used with ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
        }
    }
}

/// An ECDSA public key on a curve Sigstore uses.
#[derive(Debug, Clone)]
pub(crate) enum EcKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl EcKey {
    /// From a DER SubjectPublicKeyInfo.
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<EcKey, PkiError> {
        let spki =
            x509_cert::spki::SubjectPublicKeyInfoRef::from_der(der).map_err(PkiError::NotDerKey)?;
        if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(PkiError::KeyAlgorithm(spki.algorithm.oid));
        }
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .ok_or(PkiError::NoCurve)?
            .decode_as()
            .map_err(PkiError::CurveParameter)?;
        let bad = |curve| {
            move |e: p256::pkcs8::spki::Error| PkiError::BadKey {
                curve,
                reason: e.to_string(),
            }
        };
        if curve == SECP_256_R_1 {
            p256::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(EcKey::P256)
                .map_err(bad("P-256"))
        } else if curve == SECP_384_R_1 {
            p384::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(EcKey::P384)
                .map_err(bad("P-384"))
        } else {
            Err(PkiError::Curve(curve))
        }
    }

    /// The hash this key signs with by default (the curve's own size).
    pub(crate) fn default_hash(&self) -> Hash {
        match self {
            EcKey::P256(_) => Hash::Sha256,
            EcKey::P384(_) => Hash::Sha384,
        }
    }

    /// Verifies an ASN.1 DER ECDSA signature over an already computed
    /// digest.
    pub(crate) fn verify_prehash(&self, digest: &[u8], sig_der: &[u8]) -> Result<(), ()> {
        match self {
            EcKey::P256(k) => {
                let s = p256::ecdsa::Signature::from_der(sig_der).map_err(|_| ())?;
                k.verify_prehash(digest, &s).map_err(|_| ())
            }
            EcKey::P384(k) => {
                let s = p384::ecdsa::Signature::from_der(sig_der).map_err(|_| ())?;
                k.verify_prehash(digest, &s).map_err(|_| ())
            }
        }
    }

    /// Verifies a DER signature over `data` hashed with `hash`.
    pub(crate) fn verify(&self, hash: Hash, data: &[u8], sig_der: &[u8]) -> Result<(), ()> {
        self.verify_prehash(&hash.digest(data), sig_der)
    }
}

/// A parsed certificate with its DER bytes.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl Cert {
    pub(crate) fn from_der(der: &[u8]) -> Result<Cert, PkiError> {
        let cert = Certificate::from_der(der).map_err(PkiError::NotDerCert)?;
        Ok(Cert {
            der: der.to_vec(),
            cert,
        })
    }

    /// The first certificate of a PEM text.
    pub(crate) fn from_pem(pem: &str) -> Result<Cert, PkiError> {
        let cert = Certificate::from_pem(pem.trim().as_bytes()).map_err(PkiError::NotPemCert)?;
        let der = cert.to_der().map_err(encode("re-encode the certificate"))?;
        Ok(Cert { der, cert })
    }

    fn tbs(&self) -> &x509_cert::TbsCertificate {
        &self.cert.tbs_certificate
    }

    /// DER SubjectPublicKeyInfo.
    pub(crate) fn spki_der(&self) -> Result<Vec<u8>, PkiError> {
        self.tbs()
            .subject_public_key_info
            .to_der()
            .map_err(encode("encode a public key"))
    }

    pub(crate) fn public_key(&self) -> Result<EcKey, PkiError> {
        EcKey::from_spki_der(&self.spki_der()?)
    }

    /// Subject (for messages).
    pub(crate) fn subject(&self) -> String {
        self.tbs().subject.to_string()
    }

    /// notBefore..=notAfter as Unix seconds.
    pub(crate) fn validity(&self) -> (i64, i64) {
        let v = &self.tbs().validity;
        (
            v.not_before.to_unix_duration().as_secs() as i64,
            v.not_after.to_unix_duration().as_secs() as i64,
        )
    }

    pub(crate) fn valid_at(&self, t: i64) -> bool {
        let (a, b) = self.validity();
        a <= t && t <= b
    }

    fn extension(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.tbs()
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// Was this certificate signed by `issuer`'s key (and named by it)?
    pub(crate) fn verify_issued_by(&self, issuer: &Cert) -> Result<(), PkiError> {
        if self.tbs().issuer != issuer.tbs().subject {
            return Err(PkiError::IssuerName {
                named: self.tbs().issuer.to_string(),
                candidate: issuer.subject(),
            });
        }
        let hash = match self.cert.signature_algorithm.oid {
            o if o == ECDSA_WITH_SHA_256 => Hash::Sha256,
            o if o == ECDSA_WITH_SHA_384 => Hash::Sha384,
            o => return Err(PkiError::SignatureAlgorithm(o)),
        };
        let tbs = self
            .tbs()
            .to_der()
            .map_err(encode("encode the certificate body"))?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or(PkiError::SignatureBits)?;
        issuer
            .public_key()?
            .verify(hash, &tbs, sig)
            .map_err(|()| PkiError::Signature(issuer.subject()))
    }

    /// A CA certificate: basicConstraints cA = true and, when key usage is
    /// present, keyCertSign.
    pub(crate) fn check_ca(&self) -> Result<(), PkiError> {
        let bc = self
            .extension(ID_CE_BASIC_CONSTRAINTS)
            .map(BasicConstraints::from_der)
            .transpose()
            .map_err(ext("basicConstraints"))?;
        if !bc.is_some_and(|b| b.ca) {
            return Err(PkiError::NotCa(self.subject()));
        }
        if let Some(ku) = self.key_usage()?
            && !ku.0.contains(KeyUsages::KeyCertSign)
        {
            return Err(PkiError::NoCertSign(self.subject()));
        }
        Ok(())
    }

    fn key_usage(&self) -> Result<Option<KeyUsage>, PkiError> {
        self.extension(ID_CE_KEY_USAGE)
            .map(KeyUsage::from_der)
            .transpose()
            .map_err(ext("keyUsage"))
    }

    /// A code-signing leaf: digitalSignature and the codeSigning purpose.
    pub(crate) fn check_code_signing(&self) -> Result<(), PkiError> {
        if !self
            .key_usage()?
            .is_some_and(|ku| ku.0.contains(KeyUsages::DigitalSignature))
        {
            return Err(PkiError::NoDigitalSignature);
        }
        let eku = self
            .extension(ID_CE_EXT_KEY_USAGE)
            .map(ExtendedKeyUsage::from_der)
            .transpose()
            .map_err(ext("extendedKeyUsage"))?;
        if !eku.is_some_and(|e| e.0.contains(&ID_KP_CODE_SIGNING)) {
            return Err(PkiError::NotCodeSigning);
        }
        Ok(())
    }

    /// Subject alternative names Fulcio writes: e-mail addresses, URIs
    /// (workflows, SPIFFE ids) and other names (usernames).
    pub(crate) fn identities(&self) -> Result<Vec<String>, PkiError> {
        let Some(raw) = self.extension(ID_CE_SUBJECT_ALT_NAME) else {
            return Ok(Vec::new());
        };
        let san = SubjectAltName::from_der(raw).map_err(ext("subjectAltName"))?;
        let mut out = Vec::new();
        for n in san.0 {
            match n {
                GeneralName::Rfc822Name(s) => out.push(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => out.push(s.to_string()),
                GeneralName::DnsName(s) => out.push(s.to_string()),
                GeneralName::OtherName(o) => {
                    if let Ok(s) = o.value.decode_as::<der::asn1::Utf8StringRef<'_>>() {
                        out.push(s.as_str().to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The OIDC issuer Fulcio recorded, if any.
    pub(crate) fn oidc_issuer(&self) -> Result<Option<String>, PkiError> {
        if let Some(raw) = self.extension(FULCIO_ISSUER_V2) {
            let s =
                der::asn1::Utf8StringRef::from_der(raw).map_err(ext("Fulcio issuer extension"))?;
            return Ok(Some(s.as_str().to_string()));
        }
        if let Some(raw) = self.extension(FULCIO_ISSUER_V1) {
            return String::from_utf8(raw.to_vec())
                .map(Some)
                .map_err(|_| PkiError::IssuerNotUtf8);
        }
        Ok(None)
    }

    /// The embedded SCTs, parsed.
    pub(crate) fn scts(&self) -> Result<Vec<Sct>, PkiError> {
        let Some(raw) = self.extension(CT_PRECERT_SCTS) else {
            return Ok(Vec::new());
        };
        let inner = OctetString::from_der(raw).map_err(ext("SCT extension"))?;
        parse_sct_list(inner.as_bytes())
    }

    /// The body of the precertificate a CT log signed: this certificate's
    /// TBS without the SCT list.
    pub(crate) fn precert_tbs(&self) -> Result<Vec<u8>, PkiError> {
        let mut tbs = self.tbs().clone();
        if let Some(exts) = tbs.extensions.as_mut() {
            exts.retain(|e| e.extn_id != CT_PRECERT_SCTS);
        }
        tbs.to_der().map_err(encode("encode the precertificate"))
    }
}

/// One signed certificate timestamp (RFC 6962 §3.2), version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sct {
    pub log_id: [u8; 32],
    pub timestamp_ms: u64,
    pub extensions: Vec<u8>,
    /// TLS HashAlgorithm (4 = SHA-256, 5 = SHA-384).
    pub hash: u8,
    /// TLS SignatureAlgorithm (3 = ECDSA).
    pub sig_alg: u8,
    pub signature: Vec<u8>,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PkiError> {
        if self.0.len() < n {
            return Err(PkiError::TruncatedSct);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, PkiError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, PkiError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec16(&mut self) -> Result<&'a [u8], PkiError> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// Reads the TLS-encoded SCT list. Not x509-cert's `sct` decoder: it
/// refuses the whole list over one SCT of an unknown version (RFC 6962
/// §3.2 has clients skip those) or an algorithm code TLS does not name
/// (here a per-SCT reason, so another SCT can still verify).
fn parse_sct_list(data: &[u8]) -> Result<Vec<Sct>, PkiError> {
    let mut outer = Reader(data);
    let mut list = Reader(outer.vec16()?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        let mut r = Reader(list.vec16()?);
        let version = r.u8()?;
        if version != 0 {
            // Unknown versions are skipped, as RFC 6962 asks.
            continue;
        }
        let mut log_id = [0u8; 32];
        log_id.copy_from_slice(r.take(32)?);
        let ts = r.take(8)?;
        let mut t = [0u8; 8];
        t.copy_from_slice(ts);
        let extensions = r.vec16()?.to_vec();
        let hash = r.u8()?;
        let sig_alg = r.u8()?;
        let signature = r.vec16()?.to_vec();
        out.push(Sct {
            log_id,
            timestamp_ms: u64::from_be_bytes(t),
            extensions,
            hash,
            sig_alg,
            signature,
        });
    }
    Ok(out)
}

impl Sct {
    /// The bytes the log signed for a precertificate entry.
    pub(crate) fn signed_data(&self, issuer_key_hash: &[u8; 32], precert_tbs: &[u8]) -> Vec<u8> {
        let mut d = Vec::with_capacity(precert_tbs.len() + 64);
        d.push(0); // version v1
        d.push(0); // signature_type certificate_timestamp
        d.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        d.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
        d.extend_from_slice(issuer_key_hash);
        let n = precert_tbs.len() as u32;
        d.extend_from_slice(&n.to_be_bytes()[1..]);
        d.extend_from_slice(precert_tbs);
        d.extend_from_slice(&(self.extensions.len() as u16).to_be_bytes());
        d.extend_from_slice(&self.extensions);
        d
    }

    pub(crate) fn hash(&self) -> Result<Hash, PkiError> {
        match (self.hash, self.sig_alg) {
            (4, 3) => Ok(Hash::Sha256),
            (5, 3) => Ok(Hash::Sha384),
            (hash, sig) => Err(PkiError::SctAlgorithm { hash, sig }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sct_list_round_trip_and_truncation() {
        let sct = Sct {
            log_id: [7; 32],
            timestamp_ms: 1_700_000_000_123,
            extensions: vec![],
            hash: 4,
            sig_alg: 3,
            signature: vec![1, 2, 3],
        };
        let v = crate::testing::sct_list_extension_value(&sct);
        let inner = OctetString::from_der(&v).unwrap();
        assert_eq!(parse_sct_list(inner.as_bytes()).unwrap(), vec![sct.clone()]);
        let b = inner.as_bytes();
        assert!(parse_sct_list(&b[..b.len() - 1]).is_err());
        assert_eq!(sct.hash().unwrap(), Hash::Sha256);
    }

    #[test]
    fn unsupported_keys_are_named() {
        // An Ed25519 SubjectPublicKeyInfo.
        let ed = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "MCowBQYDK2VwAyEAPn+AREHoBaZ7wgS1zBqpxmLSGnyhxXj4lFxSdWVB8o8=",
        )
        .unwrap();
        let e = EcKey::from_spki_der(&ed).unwrap_err().to_string();
        assert!(e.contains("not supported"), "{e}");
        assert!(EcKey::from_spki_der(b"junk").is_err());
    }
}
