//! Pull and inspect: resolve a reference (cache or registry), walk index →
//! manifest → config + layer with every blob bounded and digest-checked,
//! unpack the ELF, and apply the signing policy.

use std::collections::BTreeMap;

use crate::auth::Credentials;
use crate::bundle;
use crate::cache::{self, Cache, Entry, SigState};
use crate::config::{ImageConfig, MAX_MANIFEST_BYTES};
use crate::digest;
use crate::error::ImageError;
use crate::oci::{self, AnyManifest, Descriptor, ImageConfigBlob, Manifest};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::sign;
use crate::{ImageInfo, PullPolicy, PulledImage, SignatureStatus};

/// Reads blobs from the cache, falling back to the registry when allowed,
/// and stores what it fetched.
struct Fetcher<'a> {
    cfg: &'a ImageConfig,
    cache: &'a Cache,
    reference: &'a Reference,
    display: String,
    creds: Option<&'a Credentials>,
    network: bool,
    remote: Option<Registry<'a>>,
}

impl<'a> Fetcher<'a> {
    fn remote(&mut self) -> Result<&mut Registry<'a>, ImageError> {
        if !self.network {
            return Err(ImageError::NotCached {
                reference: self.display.clone(),
                cache_dir: self.cfg.cache_dir.clone(),
            });
        }
        let reg = match self.remote.take() {
            Some(r) => r,
            None => Registry::new(self.cfg, self.reference, self.creds, false)?,
        };
        Ok(self.remote.insert(reg))
    }

    fn used_network(&self) -> bool {
        self.remote.is_some()
    }

    /// Resolves the reference's tag at the registry; stores the manifest.
    fn resolve_tag(&mut self) -> Result<String, ImageError> {
        let r = self.reference.manifest_ref().to_string();
        let display = self.display.clone();
        let f = self
            .remote()?
            .get_manifest(&r)?
            .ok_or_else(|| ImageError::NotFound {
                reference: display,
                reason: format!("the registry has no manifest {r}"),
            })?;
        self.cache.write_blob(&f.bytes)?;
        Ok(f.digest)
    }

    /// A manifest by digest, from the cache or the registry.
    fn manifest(&mut self, d: &str) -> Result<Vec<u8>, ImageError> {
        if let Some(b) = self.cache.read_blob(d)? {
            return Ok(b);
        }
        let display = self.display.clone();
        let f = self
            .remote()?
            .get_manifest(d)?
            .ok_or_else(|| ImageError::NotFound {
                reference: display,
                reason: format!("the registry has no manifest {d}"),
            })?;
        self.cache.write_blob(&f.bytes)?;
        Ok(f.bytes)
    }

    /// Is this blob cached (and intact)?
    fn cached(&self, d: &str) -> bool {
        matches!(self.cache.read_blob(d), Ok(Some(_)))
    }

    /// A blob by descriptor, bounded by `limit`.
    fn blob(
        &mut self,
        desc: &Descriptor,
        what: &str,
        limit: u64,
        setting: &'static str,
    ) -> Result<Vec<u8>, ImageError> {
        if desc.size > limit {
            return Err(ImageError::TooLarge {
                reference: self.display.clone(),
                what: what.to_string(),
                size: desc.size,
                limit,
                setting,
            });
        }
        digest::hex_part(&desc.digest).map_err(|e| ImageError::corrupt(&self.display, e))?;
        if let Some(b) = self.cache.read_blob(&desc.digest)?
            && b.len() as u64 == desc.size
        {
            return Ok(b);
        }
        let b = self.remote()?.get_blob(desc, what, limit, setting)?;
        self.cache.write_blob(&b)?;
        Ok(b)
    }
}

/// The image manifest (and its digest) `top` stands for on `platform`.
fn select(
    f: &mut Fetcher<'_>,
    top: &str,
    platform: &Platform,
) -> Result<(String, Manifest, Vec<Platform>), ImageError> {
    let bytes = f.manifest(top)?;
    match oci::parse_manifest(&bytes).map_err(|e| ImageError::corrupt(&f.display, e))? {
        AnyManifest::Image(m) => Ok((top.to_string(), m, Vec::new())),
        AnyManifest::Index(idx) => {
            let offered: Vec<Platform> = idx
                .manifests
                .iter()
                .filter_map(|d| d.platform.clone())
                .collect();
            let Some(desc) = idx
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
            else {
                let list: Vec<String> = offered.iter().map(|p| p.to_string()).collect();
                return Err(ImageError::NoPlatform {
                    reference: f.display.clone(),
                    platform: platform.to_string(),
                    available: if list.is_empty() {
                        "nothing".to_string()
                    } else {
                        list.join(", ")
                    },
                });
            };
            if desc.size > MAX_MANIFEST_BYTES {
                return Err(ImageError::TooLarge {
                    reference: f.display.clone(),
                    what: "manifest".to_string(),
                    size: desc.size,
                    limit: MAX_MANIFEST_BYTES,
                    setting: "(fixed) manifest size",
                });
            }
            let bytes = f.manifest(&desc.digest)?;
            match oci::parse_manifest(&bytes).map_err(|e| ImageError::corrupt(&f.display, e))? {
                AnyManifest::Image(m) => Ok((desc.digest.clone(), m, offered)),
                AnyManifest::Index(_) => Err(ImageError::corrupt(
                    &f.display,
                    "an index entry points at another index (nested indexes are not supported)",
                )),
            }
        }
    }
}

/// The single bytecode layer of a manifest.
fn the_layer<'m>(display: &str, m: &'m Manifest) -> Result<&'m Descriptor, ImageError> {
    match m.layers.as_slice() {
        [l] => {
            let ok = [
                oci::OCI_LAYER_GZIP,
                oci::OCI_LAYER_TAR,
                oci::DOCKER_LAYER_GZIP,
            ]
            .contains(&l.media_type.as_str());
            if !ok {
                return Err(ImageError::corrupt(
                    display,
                    format!(
                        "layer media type {} is not supported (gzip or plain tar)",
                        l.media_type
                    ),
                ));
            }
            Ok(l)
        }
        ls => Err(ImageError::corrupt(
            display,
            format!(
                "the image has {} layers; a bytecode image has exactly one",
                ls.len()
            ),
        )),
    }
}

struct Labels {
    all: BTreeMap<String, String>,
    programs: BTreeMap<String, String>,
    maps: BTreeMap<String, String>,
    platform: Option<Platform>,
}

fn read_config(f: &mut Fetcher<'_>, m: &Manifest) -> Result<Labels, ImageError> {
    let bytes = f.blob(
        &m.config,
        "image config",
        MAX_MANIFEST_BYTES,
        "(fixed) config size",
    )?;
    let c: ImageConfigBlob = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::corrupt(&f.display, format!("image config: {e}")))?;
    let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
    let programs = oci::label_map(Some(&labels), oci::LABEL_PROGRAMS)
        .map_err(|e| ImageError::corrupt(&f.display, e))?;
    let maps = oci::label_map(Some(&labels), oci::LABEL_MAPS)
        .map_err(|e| ImageError::corrupt(&f.display, e))?;
    let platform = (!c.os.is_empty() && !c.architecture.is_empty()).then_some(Platform {
        os: c.os,
        architecture: c.architecture,
        variant: c.variant,
    });
    Ok(Labels {
        all: labels,
        programs,
        maps,
        platform,
    })
}

/// Decides which digest the reference stands for, per the pull policy.
fn resolve(
    f: &mut Fetcher<'_>,
    policy: PullPolicy,
    canonical_tag: &Option<String>,
) -> Result<String, ImageError> {
    let cached = match (&f.reference.digest, canonical_tag) {
        (Some(d), _) => f.cached(d).then(|| d.clone()),
        (None, Some(t)) => f.cache.get_ref(t)?.filter(|d| f.cached(d)),
        (None, None) => None,
    };
    match (policy, cached, &f.reference.digest) {
        (PullPolicy::Never, Some(d), _) | (PullPolicy::IfNotPresent, Some(d), _) => Ok(d),
        (PullPolicy::Never, None, _) => Err(ImageError::NotCached {
            reference: f.display.clone(),
            cache_dir: f.cfg.cache_dir.clone(),
        }),
        // A digest never changes: fetch what is missing, no need to ask for it.
        (_, _, Some(d)) => Ok(d.clone()),
        _ => f.resolve_tag(),
    }
}

fn canonical_tag(r: &Reference) -> Option<String> {
    match (&r.tag, &r.digest) {
        (Some(t), None) => Some(format!("{}:{t}", r.repository_name())),
        _ => None,
    }
}

/// Fetches (or refreshes) the signature state of `top` from the registry.
fn fetch_signature(
    f: &mut Fetcher<'_>,
    top: &str,
    manifest_digest: &str,
) -> Result<SigState, ImageError> {
    let mut subjects = vec![top.to_string()];
    if manifest_digest != top {
        // `cosign sign --recursive` also signs the platform manifests.
        subjects.push(manifest_digest.to_string());
    }
    for subject in subjects {
        let legacy = fetch_legacy_signature(f, &subject)?;
        let bundles = fetch_bundles(f, &subject)?;
        if legacy.is_some() || !bundles.is_empty() {
            return Ok(SigState::Present {
                subject,
                manifest: legacy,
                bundles,
            });
        }
    }
    Ok(SigState::Absent)
}

/// The cosign `sha256-<hex>.sig` manifest of `subject` and its payloads,
/// cached; returns the manifest digest.
fn fetch_legacy_signature(
    f: &mut Fetcher<'_>,
    subject: &str,
) -> Result<Option<String>, ImageError> {
    let tag = sign::signature_tag(subject);
    let Some(found) = f.remote()?.get_manifest(&tag)? else {
        return Ok(None);
    };
    let m: Manifest =
        serde_json::from_slice(&found.bytes).map_err(|e| ImageError::SignatureInvalid {
            reference: f.display.clone(),
            digest: subject.to_string(),
            reason: format!("signature manifest {tag} is malformed: {e}"),
        })?;
    f.cache.write_blob(&found.bytes)?;
    for (layer, _) in sign::signature_layers(&m) {
        let layer = layer.clone();
        f.blob(
            &layer,
            "signature payload",
            MAX_MANIFEST_BYTES,
            "(fixed) payload size",
        )?;
    }
    Ok(Some(found.digest))
}

use crate::config::MAX_REFERRERS;

/// The Sigstore bundle referrers of `subject` (cosign v3 signatures),
/// through the referrers API or, without it, the `sha256-<hex>` referrers
/// tag; caches each manifest and bundle; returns the manifest digests.
fn fetch_bundles(f: &mut Fetcher<'_>, subject: &str) -> Result<Vec<String>, ImageError> {
    let index = match f.remote()?.get_referrers(subject)? {
        Some(b) => b,
        None => match f.remote()?.get_manifest(&subject.replacen(':', "-", 1))? {
            Some(m) => m.bytes,
            None => return Ok(Vec::new()),
        },
    };
    // Whatever is not a well-formed referrers list holds no signature of ours.
    let Ok(index) = serde_json::from_slice::<bundle::ReferrersIndex>(&index) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in index
        .manifests
        .iter()
        .filter(|e| e.may_be_bundle())
        .take(MAX_REFERRERS)
    {
        if digest::hex_part(&e.digest).is_err() {
            continue;
        }
        // A referrer the registry lost (or never had) is skipped, not fatal:
        // it cannot vouch for the image either way.
        let bytes = match f.manifest(&e.digest) {
            Ok(b) => b,
            Err(ImageError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let Ok(m) = serde_json::from_slice::<bundle::ReferrerManifest>(&bytes) else {
            continue;
        };
        let Some(layer) = m.bundle_layer(subject) else {
            continue;
        };
        let layer = layer.clone();
        match f.blob(
            &layer,
            "signature bundle",
            MAX_MANIFEST_BYTES,
            "(fixed) bundle size",
        ) {
            Ok(_) => out.push(e.digest.clone()),
            Err(ImageError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Verifies a cached signature state with the policy's key and/or keyless rules.
fn verify(
    f: &mut Fetcher<'_>,
    verifier: &sign::Verifier,
    state: &SigState,
    top: &str,
) -> Result<SignatureStatus, ImageError> {
    let policy = &f.cfg.policy;
    let (subject, manifest, bundles) = match state {
        SigState::Absent if policy.allow_unsigned => return Ok(SignatureStatus::Unsigned),
        SigState::Absent => {
            return Err(ImageError::SignatureMissing {
                reference: f.display.clone(),
                digest: top.to_string(),
            });
        }
        SigState::NotFetched => {
            return Err(ImageError::Policy(format!(
                "the signature of {} was never fetched and the pull policy is Never; \
                 pull it with IfNotPresent or Always so its signature can be checked",
                f.display
            )));
        }
        SigState::Present {
            subject,
            manifest,
            bundles,
        } => (subject.clone(), manifest.clone(), bundles.clone()),
    };
    let display = f.display.clone();
    let invalid = |reason: String| ImageError::SignatureInvalid {
        reference: display.clone(),
        digest: subject.clone(),
        reason,
    };
    let mut reasons = Vec::new();
    if let Some(manifest) = manifest {
        let bytes = f.manifest(&manifest)?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("signature manifest is malformed: {e}")))?;
        let layers: Vec<(Descriptor, BTreeMap<String, String>)> = sign::signature_layers(&m)
            .into_iter()
            .map(|(d, a)| (d.clone(), a.clone()))
            .collect();
        if layers.is_empty() {
            reasons.push("the signature manifest has no cosign simple-signing layer".to_string());
        }
        for (desc, annotations) in layers {
            let payload = f.blob(
                &desc,
                "signature payload",
                MAX_MANIFEST_BYTES,
                "(fixed) payload size",
            )?;
            match verifier.verify(&payload, &annotations, &subject) {
                Ok(status) => return Ok(status),
                Err(e) => reasons.push(e.to_string()),
            }
        }
    }
    for b in bundles {
        let bytes = f.manifest(&b)?;
        let layer = serde_json::from_slice::<bundle::ReferrerManifest>(&bytes)
            .ok()
            .and_then(|m| m.bundle_layer(&subject).cloned())
            .ok_or_else(|| invalid(format!("bundle referrer {b} is malformed")))?;
        let bytes = f.blob(
            &layer,
            "signature bundle",
            MAX_MANIFEST_BYTES,
            "(fixed) bundle size",
        )?;
        match verifier.verify_bundle(&bytes, &subject) {
            Ok(status) => return Ok(status),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    reasons.dedup();
    Err(invalid(reasons.join("; ")))
}

pub(crate) fn pull(
    cfg: &ImageConfig,
    reference: &str,
    policy: PullPolicy,
    creds: Option<&Credentials>,
) -> Result<PulledImage, ImageError> {
    let r = Reference::parse(reference)?;
    cfg.policy.validate()?;
    // A bad key or trust root fails before any download.
    let verifier = if cfg.policy.verify {
        Some(sign::Verifier::from_policy(&cfg.policy)?)
    } else {
        None
    };
    let display = r.to_string();
    let tag = canonical_tag(&r);
    let cache = Cache::open(&cfg.cache_dir, false)?;
    let mut f = Fetcher {
        cfg,
        cache: &cache,
        reference: &r,
        display: display.clone(),
        creds,
        network: policy != PullPolicy::Never,
        remote: None,
    };
    let top = resolve(&mut f, policy, &tag)?;
    let (manifest_digest, manifest, _) = select(&mut f, &top, &cfg.platform)?;
    let layer = the_layer(&display, &manifest)?.clone();
    let labels = read_config(&mut f, &manifest)?;
    let layer_bytes = f.blob(&layer, "layer", cfg.max_layer_bytes, "max_layer_bytes")?;
    let extracted =
        crate::layer::extract(&layer_bytes, cfg.max_layer_bytes).map_err(|e| match e {
            crate::layer::LayerError::TooLarge(size) => ImageError::TooLarge {
                reference: display.clone(),
                what: "unpacked layer".to_string(),
                size,
                limit: cfg.max_layer_bytes,
                setting: "max_layer_bytes",
            },
            reason => ImageError::corrupt(&display, reason),
        })?;
    if let Some(t) = &tag {
        cache.set_ref(t, &top)?;
    }

    // Signatures: never looked at when verification is off; fetched from the
    // registry only when the policy needs them and the cache cannot answer
    // (or the pull policy asks for fresh data); verified locally every time.
    let mut entry = cache.get_entry(&top)?.unwrap_or(Entry {
        digest: top.clone(),
        references: Default::default(),
        last_used: 0,
        signatures: BTreeMap::new(),
    });
    let repo = r.repository_name();
    let mut sig_state = entry
        .signatures
        .get(&repo)
        .cloned()
        .unwrap_or(SigState::NotFetched);
    if cfg.policy.verify {
        let refresh = policy == PullPolicy::Always || sig_state == SigState::NotFetched;
        if refresh && f.network {
            sig_state = fetch_signature(&mut f, &top, &manifest_digest)?;
            entry.signatures.insert(repo, sig_state.clone());
        }
    }
    entry.references.insert(display.clone());
    entry.last_used = cache::now();
    cache.put_entry(&entry)?;
    let signature = match &verifier {
        Some(v) => verify(&mut f, v, &sig_state, &top)?,
        None => SignatureStatus::NotChecked,
    };
    let from_cache = !f.used_network();
    drop(f);
    drop(cache);
    auto_prune(cfg, &top);
    Ok(PulledImage {
        reference: display,
        digest: top,
        manifest_digest,
        object: extracted.object,
        object_name: extracted.name,
        programs: labels.programs,
        maps: labels.maps,
        signature,
        from_cache,
    })
}

/// Keeps the cache under its bound after a pull; skipped when another pull
/// holds the lock (the next one will do it). Failures only cost space.
fn auto_prune(cfg: &ImageConfig, keep: &str) {
    let Ok(Some(c)) = Cache::try_open_exclusive(&cfg.cache_dir) else {
        return;
    };
    if c.total_bytes().is_ok_and(|t| t > cfg.max_cache_bytes) {
        let _ = cache::prune_locked(&c, cfg.max_cache_bytes, false, Some(keep));
    }
}

pub(crate) fn inspect(
    cfg: &ImageConfig,
    reference: &str,
    policy: PullPolicy,
    creds: Option<&Credentials>,
) -> Result<ImageInfo, ImageError> {
    let r = Reference::parse(reference)?;
    let display = r.to_string();
    let tag = canonical_tag(&r);
    let cache = Cache::open(&cfg.cache_dir, false)?;
    let mut f = Fetcher {
        cfg,
        cache: &cache,
        reference: &r,
        display: display.clone(),
        creds,
        network: policy != PullPolicy::Never,
        remote: None,
    };
    let top = resolve(&mut f, policy, &tag)?;
    let (manifest_digest, manifest, platforms) = select(&mut f, &top, &cfg.platform)?;
    let layer = the_layer(&display, &manifest)?.clone();
    let labels = read_config(&mut f, &manifest)?;
    if let Some(t) = &tag {
        cache.set_ref(t, &top)?;
    }
    Ok(ImageInfo {
        reference: display,
        digest: top,
        manifest_digest,
        platform: labels.platform,
        index_platforms: platforms,
        programs: labels.programs,
        maps: labels.maps,
        labels: labels.all,
        layer_digest: layer.digest.clone(),
        layer_size: layer.size,
        layer_cached: f.cached(&layer.digest),
    })
}
