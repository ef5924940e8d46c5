//! Writing bytecode images: one gzip tar layer holding the object, the
//! `io.ebpf.*` labels in the image config, an OCI manifest; pushed to a
//! registry or written to an OCI layout directory; optionally signed the
//! cosign way; plus multi-arch indexes over images already there.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::auth::Credentials;
use crate::config::ImageConfig;
use crate::digest;
use crate::elf::{self, Endian};
use crate::error::ImageError;
use crate::oci::{
    self, AnyManifest, ContainerConfig, Descriptor, ImageConfigBlob, Index, Manifest, RootFs,
};
use crate::reference::Reference;
use crate::registry::Registry;
use crate::sign;
use crate::{BuildDest, BuildOutput, BuildRequest};

/// Where built content goes.
trait Sink {
    fn put_blob(&mut self, data: &[u8]) -> Result<String, ImageError>;
    fn get_blob(&mut self, d: &str) -> Result<Vec<u8>, ImageError>;
    fn get_manifest(&mut self, d: &str) -> Result<Vec<u8>, ImageError>;
    /// The manifest a tag names, if any.
    #[cfg(any(test, feature = "test-support"))]
    fn get_tagged(&mut self, tag: &str) -> Result<Option<Vec<u8>>, ImageError>;
    fn put_manifest(
        &mut self,
        tag: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, ImageError>;
    /// Stores a manifest reachable by digest only (the platform images of
    /// an index).
    fn put_untagged_manifest(
        &mut self,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, ImageError>;
    /// The name written into signature payloads.
    fn docker_reference(&self) -> String;
    /// The tag given by the destination.
    fn tag(&self) -> String;
    fn display(&self, digest: &str) -> String;
}

struct RegistrySink<'a> {
    reference: Reference,
    reg: Registry<'a>,
}

impl Sink for RegistrySink<'_> {
    fn put_blob(&mut self, data: &[u8]) -> Result<String, ImageError> {
        self.reg.push_blob(data)
    }
    fn get_blob(&mut self, d: &str) -> Result<Vec<u8>, ImageError> {
        self.reg
            .get_small_blob(d, crate::config::MAX_MANIFEST_BYTES)
    }
    fn get_manifest(&mut self, d: &str) -> Result<Vec<u8>, ImageError> {
        self.reg
            .get_manifest(d)?
            .map(|f| f.bytes)
            .ok_or_else(|| ImageError::NotFound {
                reference: format!("{}@{d}", self.reference.repository_name()),
                reason: "the registry has no such manifest".to_string(),
            })
    }
    #[cfg(any(test, feature = "test-support"))]
    fn get_tagged(&mut self, tag: &str) -> Result<Option<Vec<u8>>, ImageError> {
        Ok(self.reg.get_manifest(tag)?.map(|f| f.bytes))
    }
    fn put_manifest(
        &mut self,
        tag: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, ImageError> {
        self.reg.put_manifest(tag, media_type, body)
    }
    fn put_untagged_manifest(
        &mut self,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, ImageError> {
        self.reg
            .put_manifest(&digest::sha256(body), media_type, body)
    }
    fn docker_reference(&self) -> String {
        self.reference.repository_name()
    }
    fn tag(&self) -> String {
        self.reference
            .tag
            .clone()
            .unwrap_or_else(|| "latest".to_string())
    }
    fn display(&self, digest: &str) -> String {
        format!(
            "{}:{}@{digest}",
            self.reference.repository_name(),
            self.tag()
        )
    }
}

struct LayoutSink {
    dir: PathBuf,
    tag: String,
}

impl LayoutSink {
    fn new(dir: &Path, tag: &str) -> Result<LayoutSink, ImageError> {
        let io = |e| ImageError::io(format!("create OCI layout {}", dir.display()), e);
        fs::create_dir_all(dir.join("blobs/sha256")).map_err(io)?;
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
        Ok(LayoutSink {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
        })
    }
}

impl Sink for LayoutSink {
    fn put_blob(&mut self, data: &[u8]) -> Result<String, ImageError> {
        let d = digest::sha256(data);
        let p = self.dir.join("blobs/sha256").join(&d[7..]);
        fs::write(&p, data).map_err(|e| ImageError::io(format!("write {}", p.display()), e))?;
        Ok(d)
    }
    fn get_blob(&mut self, d: &str) -> Result<Vec<u8>, ImageError> {
        let hex = digest::hex_part(d).map_err(ImageError::build)?;
        let p = self.dir.join("blobs/sha256").join(hex);
        let data = fs::read(&p).map_err(|e| ImageError::io(format!("read {}", p.display()), e))?;
        digest::check(&data, d).map_err(|e| ImageError::corrupt(&p.display().to_string(), e))?;
        Ok(data)
    }
    fn get_manifest(&mut self, d: &str) -> Result<Vec<u8>, ImageError> {
        self.get_blob(d)
    }
    #[cfg(any(test, feature = "test-support"))]
    fn get_tagged(&mut self, tag: &str) -> Result<Option<Vec<u8>>, ImageError> {
        let index_path = self.dir.join("index.json");
        let index: Index = match fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Build(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io(format!("read {}", index_path.display()), e)),
        };
        let found = index.manifests.iter().find(|m| {
            m.annotations
                .as_ref()
                .and_then(|a| a.get(oci::REF_NAME_ANNOTATION))
                .map(String::as_str)
                == Some(tag)
        });
        match found {
            Some(m) => Ok(Some(self.get_blob(&m.digest.clone())?)),
            None => Ok(None),
        }
    }
    fn put_manifest(
        &mut self,
        tag: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, ImageError> {
        let d = self.put_blob(body)?;
        let index_path = self.dir.join("index.json");
        let mut index: Index = match fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                ImageError::Build(format!("{} is not an OCI index: {e}", index_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index {
                schema_version: 2,
                media_type: Some(oci::OCI_INDEX.to_string()),
                manifests: Vec::new(),
            },
            Err(e) => return Err(ImageError::io(format!("read {}", index_path.display()), e)),
        };
        // A tag names one manifest: replace the old one.
        index.manifests.retain(|m| {
            m.annotations
                .as_ref()
                .and_then(|a| a.get(oci::REF_NAME_ANNOTATION))
                .map(String::as_str)
                != Some(tag)
        });
        let mut ann = BTreeMap::new();
        ann.insert(oci::REF_NAME_ANNOTATION.to_string(), tag.to_string());
        index.manifests.push(Descriptor {
            media_type: media_type.to_string(),
            digest: d.clone(),
            size: body.len() as u64,
            annotations: Some(ann),
            platform: None,
        });
        let bytes =
            serde_json::to_vec_pretty(&index).map_err(|e| ImageError::Build(e.to_string()))?;
        fs::write(&index_path, bytes)
            .map_err(|e| ImageError::io(format!("write {}", index_path.display()), e))?;
        Ok(d)
    }
    fn put_untagged_manifest(
        &mut self,
        _media_type: &str,
        body: &[u8],
    ) -> Result<String, ImageError> {
        self.put_blob(body)
    }
    fn docker_reference(&self) -> String {
        self.dir.display().to_string()
    }
    fn tag(&self) -> String {
        self.tag.clone()
    }
    fn display(&self, digest: &str) -> String {
        format!("oci:{}:{}@{digest}", self.dir.display(), self.tag)
    }
}

fn sink<'a>(
    cfg: &ImageConfig,
    dest: &BuildDest,
    creds: Option<&'a Credentials>,
) -> Result<Box<dyn Sink + 'a>, ImageError> {
    match dest {
        BuildDest::Registry(r) => {
            let reference = Reference::parse(r)?;
            if reference.digest.is_some() {
                return Err(ImageError::Build(format!(
                    "push destination {r} must name a tag, not a digest"
                )));
            }
            let reg = Registry::new(cfg, &reference, creds, true)?;
            Ok(Box::new(RegistrySink { reference, reg }))
        }
        BuildDest::OciLayout { dir, tag } => Ok(Box::new(LayoutSink::new(dir, tag)?)),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(v).map_err(|e| ImageError::Build(format!("encode JSON: {e}")))
}

fn json_string<T: serde::Serialize>(v: &T) -> Result<String, ImageError> {
    serde_json::to_string(v).map_err(|e| ImageError::Build(format!("encode JSON: {e}")))
}

fn is_big_endian_arch(arch: &str) -> bool {
    matches!(arch, "s390x" | "ppc64" | "mips" | "mips64" | "sparc64")
}

pub(crate) fn build(
    cfg: &ImageConfig,
    req: &BuildRequest,
    dest: &BuildDest,
    creds: Option<&Credentials>,
) -> Result<BuildOutput, ImageError> {
    let prepared = prepare(req)?;
    let mut s = sink(cfg, dest, creds)?;
    let tag = s.tag();
    let digest = put_image(s.as_mut(), &prepared, Some(&tag))?;
    let signature = match &req.sign_key {
        Some(k) => Some(sign_into(s.as_mut(), &digest, k)?),
        None => None,
    };
    Ok(BuildOutput {
        reference: s.display(&digest),
        digest,
        signature,
    })
}

/// An image's blobs, built and checked, nothing written yet.
struct Prepared {
    layer: Vec<u8>,
    config: Vec<u8>,
}

/// Reads and checks the object and builds the layer and config.
fn prepare(req: &BuildRequest) -> Result<Prepared, ImageError> {
    let object = fs::read(&req.object)
        .map_err(|e| ImageError::io(format!("read {}", req.object.display()), e))?;
    let endian = elf::bpf_elf_endian(&object)
        .map_err(|e| ImageError::Build(format!("{}: {e}", req.object.display())))?;
    let want = if is_big_endian_arch(&req.platform.architecture) {
        Endian::Big
    } else {
        Endian::Little
    };
    if endian != want {
        return Err(ImageError::Build(format!(
            "{} is {:?}-endian BPF, but platform {} is {:?}-endian: build the object with \
             -target bpfel/bpfeb to match",
            req.object.display(),
            endian,
            req.platform,
            want
        )));
    }
    let name = req
        .object
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "bytecode.o".to_string());
    let (gz, tarball) =
        crate::layer::build(&name, &object).map_err(|e| ImageError::io("build the layer", e))?;

    let mut labels = BTreeMap::new();
    if !req.programs.is_empty() {
        labels.insert(oci::LABEL_PROGRAMS.to_string(), json_string(&req.programs)?);
    }
    if !req.maps.is_empty() {
        labels.insert(oci::LABEL_MAPS.to_string(), json_string(&req.maps)?);
    }
    let config = json(&ImageConfigBlob {
        architecture: req.platform.architecture.clone(),
        os: req.platform.os.clone(),
        variant: req.platform.variant.clone(),
        config: Some(ContainerConfig {
            labels: (!labels.is_empty()).then_some(labels),
        }),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: vec![digest::sha256(&tarball)],
        },
    })?;

    Ok(Prepared { layer: gz, config })
}

/// Writes a prepared image (layer, config, manifest), tagged or by digest
/// only; returns the manifest digest.
fn put_image(s: &mut dyn Sink, p: &Prepared, tag: Option<&str>) -> Result<String, ImageError> {
    let (gz, config) = (&p.layer, &p.config);
    let layer_digest = s.put_blob(gz)?;
    let config_digest = s.put_blob(config)?;
    let manifest = json(&Manifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: oci::OCI_CONFIG.to_string(),
            digest: config_digest,
            size: config.len() as u64,
            annotations: None,
            platform: None,
        },
        layers: vec![Descriptor {
            media_type: oci::OCI_LAYER_GZIP.to_string(),
            digest: layer_digest,
            size: gz.len() as u64,
            annotations: None,
            platform: None,
        }],
        annotations: None,
    })?;
    match tag {
        Some(t) => s.put_manifest(t, oci::OCI_MANIFEST, &manifest),
        None => s.put_untagged_manifest(oci::OCI_MANIFEST, &manifest),
    }
}

/// Builds one image per request (each for its own platform), stored by
/// digest, and a multi-arch index over them under `dest`'s tag, optionally
/// signed. Returns the index output and the (platform, digest) of each image.
pub(crate) fn build_multi(
    cfg: &ImageConfig,
    reqs: &[BuildRequest],
    dest: &BuildDest,
    sign_key: Option<&Path>,
    creds: Option<&Credentials>,
) -> Result<(BuildOutput, Vec<(crate::Platform, String)>), ImageError> {
    for (i, a) in reqs.iter().enumerate() {
        if reqs[..i].iter().any(|b| b.platform == a.platform) {
            return Err(ImageError::Build(format!(
                "platform {} is given twice; an index has one image per platform",
                a.platform
            )));
        }
    }
    // Every object is checked before anything is written.
    let prepared = reqs.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;
    let mut s = sink(cfg, dest, creds)?;
    let mut images = Vec::new();
    for (r, p) in reqs.iter().zip(&prepared) {
        images.push((r.platform.clone(), put_image(s.as_mut(), p, None)?));
    }
    let digests: Vec<String> = images.iter().map(|(_, d)| d.clone()).collect();
    Ok((index_into(s.as_mut(), &digests, sign_key)?, images))
}

/// Signs `digest` the cosign way; returns the signature manifest digest.
fn sign_into(s: &mut dyn Sink, digest: &str, key: &Path) -> Result<String, ImageError> {
    let key = sign::load_signing_key(key)?;
    let payload = sign::payload(&s.docker_reference(), digest);
    let sig = sign::sign(&key, &payload);
    put_signature(s, digest, &payload, &sig, &BTreeMap::new())
}

/// Writes a signature image for `digest`: one simple-signing layer with
/// the signature and `extra` annotations. Returns its manifest digest.
fn put_signature(
    s: &mut dyn Sink,
    digest: &str,
    payload: &[u8],
    signature_b64: &str,
    extra: &BTreeMap<String, String>,
) -> Result<String, ImageError> {
    let (manifest, config) = sign::signature_image(payload, signature_b64, extra)
        .map_err(|e| ImageError::Build(format!("encode signature: {e}")))?;
    s.put_blob(payload)?;
    s.put_blob(&config)?;
    s.put_manifest(&sign::signature_tag(digest), oci::OCI_MANIFEST, &manifest)
}

pub(crate) fn build_index(
    cfg: &ImageConfig,
    manifests: &[String],
    dest: &BuildDest,
    sign_key: Option<&Path>,
    creds: Option<&Credentials>,
) -> Result<BuildOutput, ImageError> {
    let mut s = sink(cfg, dest, creds)?;
    index_into(s.as_mut(), manifests, sign_key)
}

/// Writes an index over `manifests` (already in the sink) under its tag.
fn index_into(
    s: &mut dyn Sink,
    manifests: &[String],
    sign_key: Option<&Path>,
) -> Result<BuildOutput, ImageError> {
    if manifests.is_empty() {
        return Err(ImageError::Build(
            "an index needs at least one image".to_string(),
        ));
    }
    let mut entries = Vec::new();
    for d in manifests {
        digest::hex_part(d).map_err(ImageError::build)?;
        let bytes = s.get_manifest(d)?;
        let m = match oci::parse_manifest(&bytes).map_err(ImageError::build)? {
            AnyManifest::Image(m) => m,
            AnyManifest::Index(_) => {
                return Err(ImageError::Build(format!("{d} is an index, not an image")));
            }
        };
        let c: ImageConfigBlob = serde_json::from_slice(&s.get_blob(&m.config.digest)?)
            .map_err(|e| ImageError::Build(format!("config of {d}: {e}")))?;
        if c.os.is_empty() || c.architecture.is_empty() {
            return Err(ImageError::Build(format!(
                "image {d} has no os/architecture in its config"
            )));
        }
        entries.push(Descriptor {
            media_type: m
                .media_type
                .unwrap_or_else(|| oci::OCI_MANIFEST.to_string()),
            digest: d.clone(),
            size: bytes.len() as u64,
            annotations: None,
            platform: Some(crate::platform::Platform {
                os: c.os,
                architecture: c.architecture,
                variant: c.variant,
            }),
        });
    }
    let index = json(&Index {
        schema_version: 2,
        media_type: Some(oci::OCI_INDEX.to_string()),
        manifests: entries,
    })?;
    let tag = s.tag();
    let digest = s.put_manifest(&tag, oci::OCI_INDEX, &index)?;
    let signature = match sign_key {
        Some(k) => Some(sign_into(s, &digest, k)?),
        None => None,
    };
    Ok(BuildOutput {
        reference: s.display(&digest),
        digest,
        signature,
    })
}

/// Attaches a signature made elsewhere to image `digest` in `dest`'s
/// repository, as `cosign attach signature` does: `sign(payload)` gets the
/// simple-signing payload naming the image and returns the base64
/// signature and the layer's other annotations.
#[cfg(any(test, feature = "test-support"))]
pub(crate) fn attach_signature(
    cfg: &ImageConfig,
    dest: &BuildDest,
    digest: &str,
    sign: &dyn Fn(&[u8]) -> crate::testing::LayerSignature,
    creds: Option<&Credentials>,
) -> Result<String, ImageError> {
    digest::hex_part(digest).map_err(ImageError::build)?;
    let mut s = sink(cfg, dest, creds)?;
    let payload = sign::payload(&s.docker_reference(), digest);
    let (sig, extra) = sign(&payload);
    put_signature(s.as_mut(), digest, &payload, &sig, &extra)
}

/// Attaches a Sigstore bundle to image `digest` as an OCI 1.1 referrer
/// (artifact manifest with the image as subject), listed in the
/// `sha256-<hex>` referrers tag. Returns the artifact manifest's digest.
#[cfg(any(test, feature = "test-support"))]
pub(crate) fn attach_bundle(
    cfg: &ImageConfig,
    dest: &BuildDest,
    digest: &str,
    bundle: &[u8],
    creds: Option<&Credentials>,
) -> Result<String, ImageError> {
    use crate::bundle::{BUNDLE_MEDIA_TYPE, EMPTY_MEDIA_TYPE};
    let hex = digest::hex_part(digest)
        .map_err(ImageError::build)?
        .to_string();
    let mut s = sink(cfg, dest, creds)?;
    let subject = s.get_manifest(digest)?;
    let subject_type = serde_json::from_slice::<serde_json::Value>(&subject)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        .unwrap_or_else(|| oci::OCI_MANIFEST.to_string());
    let empty = b"{}";
    let empty_digest = s.put_blob(empty)?;
    let bundle_digest = s.put_blob(bundle)?;
    let manifest = json(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty_digest, "size": empty.len()},
        "layers": [{
            "mediaType": BUNDLE_MEDIA_TYPE,
            "digest": bundle_digest,
            "size": bundle.len(),
            "annotations": {"org.opencontainers.image.title": format!("{}.sigstore.json", bundle_digest.replacen(':', "-", 1))},
        }],
        "subject": {"mediaType": subject_type, "digest": digest, "size": subject.len()},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": crate::bundle::COSIGN_SIGN_PREDICATE},
    }))?;
    let referrer = s.put_untagged_manifest(oci::OCI_MANIFEST, &manifest)?;
    let tag = format!("sha256-{hex}");
    let mut index = match s.get_tagged(&tag)? {
        Some(b) => serde_json::from_slice::<serde_json::Value>(&b)
            .map_err(|e| ImageError::Build(format!("referrers tag {tag}: {e}")))?,
        None => {
            serde_json::json!({"schemaVersion": 2, "mediaType": oci::OCI_INDEX, "manifests": []})
        }
    };
    let entry = serde_json::json!({
        "mediaType": oci::OCI_MANIFEST,
        "digest": referrer,
        "size": manifest.len(),
        "artifactType": BUNDLE_MEDIA_TYPE,
    });
    match index.get_mut("manifests").and_then(|m| m.as_array_mut()) {
        Some(m) => m.push(entry),
        None => {
            return Err(ImageError::Build(format!(
                "referrers tag {tag} is not an index"
            )));
        }
    }
    s.put_manifest(&tag, oci::OCI_INDEX, &json(&index)?)?;
    Ok(referrer)
}
