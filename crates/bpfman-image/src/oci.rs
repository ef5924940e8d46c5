//! The JSON documents of the OCI image spec (and Docker's v2 equivalents)
//! this crate reads and writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker v2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// cosign's simple-signing payload layer.
pub const COSIGN_SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation holding the base64 signature on a cosign layer.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Label: JSON object, program name -> program type.
pub const LABEL_PROGRAMS: &str = "io.ebpf.programs";
/// Label: JSON object, map name -> map type.
pub const LABEL_MAPS: &str = "io.ebpf.maps";
/// OCI layout annotation naming a tag.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// What `Accept` asks for when fetching a manifest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the target.
    pub media_type: String,
    /// Digest of the target.
    pub digest: String,
    /// Size of the target in bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when present in the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (manifest list).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when present in the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One entry per platform.
    pub manifests: Vec<Descriptor>,
}

/// Either kind of manifest document.
pub(crate) enum AnyManifest {
    Image(Manifest),
    Index(Index),
}

/// Why a manifest or label is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OciError {
    /// The body is not JSON.
    #[error("manifest is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// Docker's signed schema 1, long deprecated.
    #[error("Docker schema 1 manifests are not supported")]
    Schema1,
    /// Any other (or no) schemaVersion.
    #[error("unsupported manifest schemaVersion {0:?}")]
    SchemaVersion(Option<u64>),
    /// JSON of the wrong shape for an index.
    #[error("malformed image index: {0}")]
    Index(serde_json::Error),
    /// JSON of the wrong shape for an image manifest.
    #[error("malformed image manifest: {0}")]
    Manifest(serde_json::Error),
    /// A label that should hold a JSON object of strings.
    #[error("label {key} is not a JSON object of strings ({source}): {raw:?}")]
    Label {
        /// The label key.
        key: String,
        /// Its value as found.
        raw: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Classifies and parses a manifest body.
pub(crate) fn parse_manifest(body: &[u8]) -> Result<AnyManifest, OciError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(OciError::NotJson)?;
    match v.get("schemaVersion").and_then(|s| s.as_u64()) {
        Some(2) => {}
        Some(1) => return Err(OciError::Schema1),
        other => return Err(OciError::SchemaVersion(other)),
    }
    let mt = v.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
    if v.get("manifests").is_some() || mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST {
        serde_json::from_value(v)
            .map(AnyManifest::Index)
            .map_err(OciError::Index)
    } else {
        serde_json::from_value(v)
            .map(AnyManifest::Image)
            .map_err(OciError::Manifest)
    }
}

/// The image config blob (the parts used here).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfigBlob {
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Runtime config, where the labels live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// Layer diff ids.
    #[serde(default)]
    pub rootfs: RootFs,
}

/// The `config` object of an image config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Image labels.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    /// Always "layers".
    #[serde(rename = "type", default)]
    pub kind: String,
    /// sha256 of each uncompressed layer.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// Parses a label holding a JSON object of strings; a missing label is empty.
pub(crate) fn label_map(
    labels: Option<&BTreeMap<String, String>>,
    key: &str,
) -> Result<BTreeMap<String, String>, OciError> {
    let Some(raw) = labels.and_then(|l| l.get(key)) else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_str(raw).map_err(|source| OciError::Label {
        key: key.to_string(),
        raw: raw.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert!(matches!(parse_manifest(idx), Ok(AnyManifest::Index(_))));
        let m =
            br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"d","size":1},"layers":[]}"#;
        assert!(matches!(parse_manifest(m), Ok(AnyManifest::Image(_))));
        assert!(parse_manifest(br#"{"schemaVersion":1}"#).is_err());
        assert!(parse_manifest(b"nope").is_err());
    }

    #[test]
    fn labels() {
        let mut l = BTreeMap::new();
        l.insert(LABEL_PROGRAMS.to_string(), r#"{"a":"xdp"}"#.to_string());
        l.insert(LABEL_MAPS.to_string(), "[1]".to_string());
        assert_eq!(label_map(Some(&l), LABEL_PROGRAMS).unwrap()["a"], "xdp");
        assert!(label_map(Some(&l), LABEL_MAPS).is_err());
        assert!(label_map(None, LABEL_MAPS).unwrap().is_empty());
    }
}
