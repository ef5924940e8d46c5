//! Output: tables for people, stable JSON for programs (docs/json.md).

use std::fmt::Write as _;

use bpfman_core::gc::GcItem;
use bpfman_core::model::{LinkView, ProgramView};
use bpfman_core::spec::{BytecodeSource, to_hex};
use bpfman_manager::image::{BuiltImage, ImageInfo, PruneSummary, PulledImageInfo};
use serde::Serialize;

use crate::cli::Output;

/// Renders a value as pretty JSON.
pub fn json<T: Serialize>(v: &T) -> String {
    // Serialising our own plain structs cannot fail; fall back to an error object just in case.
    crate::pretty::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A simple left-aligned table.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let _ = write!(s, "{:<w$}  ", c, w = widths[i]);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn kv(pairs: &std::collections::BTreeMap<String, String>) -> String {
    if pairs.is_empty() {
        return "-".into();
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `list`, written to `w`. JSON is streamed rather than held whole first (a
/// thousand programs are over a megabyte, which cost more to allocate and
/// fault in than to format); the table needs every row for its widths.
pub fn programs_to(
    out: Output,
    list: &[ProgramView],
    w: &mut impl std::io::Write,
) -> std::io::Result<()> {
    if out == Output::Json {
        return crate::pretty::to_writer(w, list).map_err(std::io::Error::from);
    }
    w.write_all(programs_table(list).as_bytes())
}

fn programs_table(list: &[ProgramView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let (links, md, maps) = match &p.record {
                Some(r) => (
                    if p.links.is_empty() {
                        "-".to_string()
                    } else {
                        p.links
                            .iter()
                            .map(|l| format!("{}:{}", l.id, l.attach_point))
                            .collect::<Vec<_>>()
                            .join("; ")
                    },
                    kv(&r.metadata),
                    r.map_pin_path.clone(),
                ),
                None if p.owned_by.is_some() => (
                    "(bpfman dispatcher)".to_string(),
                    "-".to_string(),
                    "-".to_string(),
                ),
                None => (
                    "(not managed)".to_string(),
                    "-".to_string(),
                    "-".to_string(),
                ),
            };
            vec![
                p.id.to_string(),
                p.name.clone(),
                p.program_type.clone(),
                links,
                md,
                maps,
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "TYPE", "LINKS", "METADATA", "MAP PIN PATH"],
        &rows,
    )
}

/// `get` and `load`.
pub fn program_details(out: Output, list: &[ProgramView], single: bool) -> String {
    if out == Output::Json {
        return if single && list.len() == 1 {
            json(&list[0])
        } else {
            json(&list)
        };
    }
    let mut s = String::new();
    for (i, p) in list.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&program_detail(p));
    }
    s
}

/// One `  Key:           value` line of a detail view: the key and its colon
/// padded to 16 columns so the values line up.
fn field(s: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(s, "  {:<16}{value}", format!("{key}:"));
}

/// The items joined by commas (empty when there are none).
fn joined<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `-` for an empty value: a detail line never ends at its colon.
fn or_dash(v: String) -> String {
    if v.is_empty() { "-".into() } else { v }
}

/// A section of a detail view: its title, then `text` indented two spaces
/// (`(none)` when empty).
fn section(s: &mut String, title: &str, text: &str) {
    let _ = writeln!(s, "{title}");
    if text.is_empty() {
        s.push_str("  (none)\n");
    }
    for l in text.lines() {
        let _ = writeln!(s, "  {l}");
    }
}

fn program_detail(p: &ProgramView) -> String {
    let mut s = format!("Program {}\n", p.id);
    field(&mut s, "Name", &p.name);
    field(&mut s, "Type", &p.program_type);
    field(&mut s, "Managed", if p.managed { "yes" } else { "no" });
    if let Some(r) = &p.record {
        field(&mut s, "Section", &r.section);
        if let Some(a) = &r.attach_fn {
            field(&mut s, "Attach function", a);
        }
        let source = match &r.source {
            BytecodeSource::File { path } => format!("file {path}"),
            BytecodeSource::Image { url, digest } => {
                format!(
                    "image {url}{}",
                    digest
                        .as_deref()
                        .map(|d| format!("@{d}"))
                        .unwrap_or_default()
                )
            }
        };
        field(&mut s, "Source", source);
        field(&mut s, "Pin", &r.pin_path);
        field(&mut s, "Metadata", kv(&r.metadata));
        let globals = r
            .global_data
            .iter()
            .map(|(k, v)| format!("{k}={}", to_hex(v)));
        field(&mut s, "Global data", or_dash(joined(globals)));
        field(&mut s, "Map pin path", &r.map_pin_path);
        field(&mut s, "Map owner", r.map_owner_id);
        field(&mut s, "Maps used by", joined(&p.map_used_by));
    }
    match &p.kernel {
        Some(k) => kernel_detail(&mut s, k),
        None => s.push_str("Kernel\n  (program not found in the kernel)\n"),
    }
    if p.record.is_some() {
        let maps = if p.maps.is_empty() {
            String::new()
        } else {
            maps_table(&p.maps)
        };
        section(&mut s, "Maps", &maps);
        let links = if p.links.is_empty() {
            String::new()
        } else {
            links_table(&p.links)
        };
        section(&mut s, "Links", &links);
    }
    s
}

/// The `Kernel` section of `get program`.
fn kernel_detail(s: &mut String, k: &bpfman_core::KernelProgramInfo) {
    s.push_str("Kernel\n");
    field(s, "Kernel name", &k.name);
    field(s, "Tag", &k.tag);
    field(s, "Loaded at", &k.loaded_at);
    field(s, "GPL compatible", k.gpl_compatible);
    field(s, "Map IDs", or_dash(joined(&k.map_ids)));
    field(s, "BTF ID", k.btf_id);
    field(s, "Xlated bytes", k.bytes_xlated);
    field(s, "JITed", k.jited);
    field(s, "JITed bytes", k.bytes_jited);
    field(s, "Memlock bytes", k.bytes_memlock);
    field(s, "Verified insns", k.verified_insns);
}

/// The maps of a program, one row each (`-` and `?` where the kernel has no facts).
fn maps_table(maps: &[bpfman_core::model::MapView]) -> String {
    let rows: Vec<Vec<String>> = maps
        .iter()
        .map(|m| match &m.kernel {
            Some(k) => vec![
                m.name.clone(),
                k.id.to_string(),
                k.map_type.clone(),
                k.key_size.to_string(),
                k.value_size.to_string(),
                k.max_entries.to_string(),
                m.pin_path.clone(),
            ],
            None => vec![
                m.name.clone(),
                "-".into(),
                "?".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                m.pin_path.clone(),
            ],
        })
        .collect();
    table(
        &[
            "NAME",
            "ID",
            "TYPE",
            "KEY",
            "VALUE",
            "MAX ENTRIES",
            "PIN PATH",
        ],
        &rows,
    )
}

fn links_table(links: &[LinkView]) -> String {
    let rows: Vec<Vec<String>> = links
        .iter()
        .map(|l| {
            vec![
                l.id.to_string(),
                format!("{} ({})", l.program_id, l.program_name),
                l.link_type.clone(),
                l.attach_point.clone(),
                l.pin_path.clone(),
            ]
        })
        .collect();
    table(
        &["LINK ID", "PROGRAM", "TYPE", "ATTACH POINT", "PIN PATH"],
        &rows,
    )
}

/// `list links`.
pub fn links(out: Output, links: &[LinkView]) -> String {
    if out == Output::Json {
        return json(&links);
    }
    links_table(links)
}

/// `get link` and `attach`.
pub fn link(out: Output, l: &LinkView) -> String {
    if out == Output::Json {
        return json(l);
    }
    let mut s = format!("Link {}\n", l.id);
    field(
        &mut s,
        "Program",
        format!("{} ({})", l.program_id, l.program_name),
    );
    field(&mut s, "Type", &l.link_type);
    field(&mut s, "Attach point", &l.attach_point);
    field(&mut s, "Pin", &l.pin_path);
    let kernel_id = l.kernel_link_id.map(|i| i.to_string());
    field(
        &mut s,
        "Kernel link ID",
        kernel_id.unwrap_or_else(|| "-".into()),
    );
    field(&mut s, "Metadata", kv(&l.metadata));
    s
}

/// `gc`.
pub fn gc(out: Output, items: &[GcItem], pruned: bool) -> String {
    if out == Output::Json {
        #[derive(Serialize)]
        struct Gc<'a> {
            pruned: bool,
            items: &'a [GcItem],
        }
        return json(&Gc { pruned, items });
    }
    if items.is_empty() {
        return "Nothing to collect.\n".into();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| vec![i.kind.to_string(), i.subject.clone(), i.reason.clone()])
        .collect();
    let mut s = table(&["KIND", "SUBJECT", "REASON"], &rows);
    if pruned {
        let _ = writeln!(s, "Removed {} stale item(s).", items.len());
    } else {
        let _ = writeln!(
            s,
            "{} stale item(s); run `bpfman gc --prune` to remove them.",
            items.len()
        );
    }
    s
}

/// Confirmation for unload/detach.
pub fn done(out: Output, what: &str, id: u32) -> String {
    if out == Output::Json {
        return json(&serde_json::json!({ "id": id, "result": what }));
    }
    format!("{} {id}\n", what)
}

/// `image pull`.
pub fn pulled_image(out: Output, i: &PulledImageInfo) -> String {
    if out == Output::Json {
        return json(i);
    }
    let mut s = format!("Image {}\n", i.reference);
    field(&mut s, "Digest", i.digest.clone());
    if i.manifest_digest != i.digest {
        field(&mut s, "Manifest digest", i.manifest_digest.clone());
    }
    field(
        &mut s,
        "Object",
        format!("{} ({} bytes)", i.object_name, i.object_bytes),
    );
    field(&mut s, "Programs", kv(&i.programs));
    field(&mut s, "Maps", kv(&i.maps));
    field(
        &mut s,
        "Signature",
        match (&i.signed_by, &i.keyless) {
            (Some(k), _) => format!("{} (key {k})", i.signature),
            (None, Some(k)) => format!(
                "{} (keyless: {}, issuer {}, Rekor entry {})",
                i.signature, k.identity, k.issuer, k.rekor_log_index
            ),
            (None, None) => i.signature.clone(),
        },
    );
    field(
        &mut s,
        "From cache",
        if i.from_cache { "yes" } else { "no" },
    );
    s
}

/// `image inspect`.
pub fn image_info(out: Output, i: &ImageInfo) -> String {
    if out == Output::Json {
        return json(i);
    }
    let mut s = format!("Image {}\n", i.reference);
    field(&mut s, "Digest", i.digest.clone());
    if i.manifest_digest != i.digest {
        field(&mut s, "Manifest digest", i.manifest_digest.clone());
    }
    field(
        &mut s,
        "Platform",
        i.platform
            .as_ref()
            .map_or_else(|| "-".into(), ToString::to_string),
    );
    if !i.index_platforms.is_empty() {
        let offers: Vec<String> = i.index_platforms.iter().map(ToString::to_string).collect();
        field(&mut s, "Index offers", offers.join(", "));
    }
    field(&mut s, "Programs", kv(&i.programs));
    field(&mut s, "Maps", kv(&i.maps));
    field(
        &mut s,
        "Layer",
        format!(
            "{} ({} bytes{})",
            i.layer_digest,
            i.layer_size,
            if i.layer_cached { ", cached" } else { "" }
        ),
    );
    let _ = writeln!(s, "Labels");
    if i.labels.is_empty() {
        s.push_str("  (none)\n");
    }
    for (k, v) in &i.labels {
        let _ = writeln!(s, "  {k}={v}");
    }
    s
}

/// `image build`.
pub fn built_image(out: Output, b: &BuiltImage) -> String {
    if out == Output::Json {
        return json(b);
    }
    let mut s = format!("Built {}\n", b.reference);
    field(&mut s, "Digest", b.digest.clone());
    for i in &b.images {
        field(&mut s, "Image", format!("{} {}", i.platform, i.digest));
    }
    field(&mut s, "Programs", kv(&b.programs));
    field(&mut s, "Maps", kv(&b.maps));
    field(
        &mut s,
        "Signature",
        b.signature.clone().unwrap_or_else(|| "(unsigned)".into()),
    );
    s
}

/// `image prune`.
pub fn pruned(out: Output, p: &PruneSummary) -> String {
    if out == Output::Json {
        return json(p);
    }
    format!(
        "Pruned {}: removed {} image(s) and {} blob(s), freed {} bytes; {} bytes cached.\n",
        p.cache_dir,
        p.images_removed.len(),
        p.blobs_removed,
        p.bytes_freed,
        p.bytes_kept
    )
}
