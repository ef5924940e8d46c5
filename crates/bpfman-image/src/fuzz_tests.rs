//! Fuzz harnesses for what registries send: image references, manifest /
//! index / config JSON and their labels, layers (gzip, tar bombs, path
//! traversal entries), Sigstore bundles and X.509 certificates. Seeds:
//! `tests/fuzz-corpus/<harness>/`. Each asserts no panic, and that what is
//! accepted keeps its promises.

use bpfman_fuzz::proptest::prelude::*;
use bpfman_fuzz::{config, corpus, corpus_lines, mutated, mutated_str};

use crate::bundle::Bundle;
use crate::oci::{self, AnyManifest, ImageConfigBlob};
use crate::pki::Cert;
use crate::reference::Reference;

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn fuzz_oci_reference(s in mutated_str(corpus_lines("oci_reference"))) {
        if let Ok(r) = Reference::parse(&s) {
            let _ = (r.api_host(), r.manifest_ref(), r.repository_name());
            let _ = r.with_tag("v1");
        }
    }

    #[test]
    fn fuzz_manifest_json(b in mutated(corpus("manifest_json"))) {
        if let Ok(m) = oci::parse_manifest(&b) {
            match m {
                AnyManifest::Image(m) => { let _ = crate::sign::signature_layers(&m); }
                AnyManifest::Index(_) => {}
            }
        }
        if let Ok(c) = serde_json::from_slice::<ImageConfigBlob>(&b) {
            let labels = c.config.as_ref().and_then(|c| c.labels.as_ref());
            let _ = oci::label_map(labels, "io.ebpf.programs");
            let _ = oci::label_map(labels, "io.ebpf.maps");
        }
    }

    #[test]
    fn fuzz_bundle_json(b in mutated(corpus("bundle_json"))) {
        let _ = Bundle::parse_image_signature(
            &b,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        );
    }

    #[test]
    fn fuzz_certificate(b in mutated(corpus("certificate"))) {
        let certs = [Cert::from_der(&b).ok(), Cert::from_pem(&String::from_utf8_lossy(&b)).ok()];
        for c in certs.into_iter().flatten() {
            let _ = (c.spki_der(), c.public_key(), c.subject(), c.validity());
            let _ = (c.check_ca(), c.check_code_signing(), c.identities(), c.oidc_issuer());
            let _ = (c.scts(), c.precert_tbs(), c.verify_issued_by(&c));
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn fuzz_layer(b in mutated(corpus("layer"))) {
        // In memory only: entry names are never paths bpfman writes to.
        if let Ok(found) = crate::layer::extract(&b, 1 << 20) {
            prop_assert!(found.object.starts_with(b"\x7fELF"));
            prop_assert!(found.object.len() <= 1 << 20);
        }
    }
}
