//! The bytecode layer: a (gzip) tar holding the BPF ELF object.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;

use crate::config::MAX_LAYER_ENTRIES;
use crate::elf;

/// The ELF found in a layer.
pub(crate) struct Extracted {
    pub object: Vec<u8>,
    pub name: String,
}

/// Why a layer yields no loadable object.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LayerError {
    /// The unpacked stream went over the bound; the size is the first one
    /// over it (the layer is not unpacked further).
    #[error("the unpacked layer is over {0} bytes")]
    TooLarge(u64),
    /// Not a tar (or tar.gz) stream at all.
    #[error("layer is not a tar{}: {source}", if *.gz { ".gz" } else { "" })]
    NotTar {
        /// Whether it started as gzip.
        gz: bool,
        /// The reader's error.
        source: std::io::Error,
    },
    /// More entries than any bytecode layer needs.
    #[error(
        "the layer holds more than {MAX_LAYER_ENTRIES} tar entries; a bytecode layer holds one file"
    )]
    TooManyEntries,
    /// A tar header that does not parse.
    #[error("bad tar entry: {0}")]
    BadEntry(std::io::Error),
    /// An entry's data cannot be read (truncated or bad gzip).
    #[error("cannot read {name} from the layer: {source}")]
    Read {
        /// The entry's path.
        name: String,
        /// The reader's error.
        source: std::io::Error,
    },
    /// No regular file starts with the ELF magic.
    #[error("the layer holds no ELF file")]
    NoElf,
    /// More than one candidate and not exactly one `*.o` among them.
    #[error("the layer holds several ELF files ({0}); a bytecode image holds one")]
    SeveralElf(String),
    /// The object is not a BPF ELF this host loads.
    #[error("{name}: {source}")]
    Elf {
        /// The entry's path.
        name: String,
        /// What is wrong with it.
        source: elf::ElfError,
    },
}

/// Unpacks `layer` (gzip tar, or plain tar) and returns its BPF ELF. The
/// unpacked stream is bounded by `limit` so a gzip bomb stops early.
pub(crate) fn extract(layer: &[u8], limit: u64) -> Result<Extracted, LayerError> {
    let gz = layer.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read + '_> = if gz {
        Box::new(GzDecoder::new(layer))
    } else {
        Box::new(layer)
    };
    let mut bounded = Bounded {
        inner: reader,
        left: limit,
        over: false,
    };
    let mut candidates: Vec<Extracted> = Vec::new();
    let res = (|| -> Result<(), LayerError> {
        let mut ar = tar::Archive::new(&mut bounded);
        let entries = ar
            .entries()
            .map_err(|source| LayerError::NotTar { gz, source })?;
        for (n, entry) in entries.enumerate() {
            if n == MAX_LAYER_ENTRIES {
                return Err(LayerError::TooManyEntries);
            }
            let mut entry = entry.map_err(LayerError::BadEntry)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let name = entry
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Whiteouts and hidden files are never the object.
            let base = name.rsplit('/').next().unwrap_or("");
            if base.starts_with('.') {
                continue;
            }
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|source| LayerError::Read {
                    name: name.clone(),
                    source,
                })?;
            if data.starts_with(b"\x7fELF") {
                candidates.push(Extracted { object: data, name });
            }
        }
        Ok(())
    })();
    if bounded.over {
        return Err(LayerError::TooLarge(limit.saturating_add(1)));
    }
    res?;
    let pick = match candidates.len() {
        0 => return Err(LayerError::NoElf),
        1 => 0,
        _ => {
            let objs: Vec<usize> = (0..candidates.len())
                .filter(|&i| candidates[i].name.ends_with(".o"))
                .collect();
            if objs.len() != 1 {
                let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
                return Err(LayerError::SeveralElf(names.join(", ")));
            }
            objs[0]
        }
    };
    let found = candidates.swap_remove(pick);
    if let Err(source) = elf::check_loadable(&found.object) {
        return Err(LayerError::Elf {
            name: found.name,
            source,
        });
    }
    Ok(found)
}

/// Reader that stops (with an error) after `left` bytes.
struct Bounded<R> {
    inner: R,
    left: u64,
    over: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // Is there more? Then the stream is over the bound.
            let mut one = [0u8; 1];
            return match self.inner.read(&mut one)? {
                0 => Ok(0),
                _ => {
                    self.over = true;
                    Err(std::io::Error::other(
                        "unpacked layer exceeds the size limit",
                    ))
                }
            };
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..n])?;
        self.left -= got as u64;
        Ok(got)
    }
}

/// Builds a deterministic gzip tar with one file; returns (gzip bytes,
/// uncompressed tar bytes) so the caller can compute both digests.
pub(crate) fn build(name: &str, object: &[u8]) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut tarball = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tarball);
        let mut h = tar::Header::new_gnu();
        h.set_size(object.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, object)?;
        b.finish()?;
    }
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    gz.write_all(&tarball)?;
    let gz = gz.finish()?;
    Ok((gz, tarball))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bpf() -> Vec<u8> {
        let mut h = elf::tests::header(2, if cfg!(target_endian = "little") { 1 } else { 2 }, 247);
        h.extend_from_slice(&[0u8; 100]);
        h
    }

    #[test]
    fn roundtrip_is_deterministic() {
        let (a, _) = build("x.o", &bpf()).unwrap();
        let (b, _) = build("x.o", &bpf()).unwrap();
        assert_eq!(a, b);
        let e = extract(&a, 1 << 20).ok().unwrap();
        assert_eq!(e.object, bpf());
        assert_eq!(e.name, "x.o");
    }

    #[test]
    fn plain_tar_is_accepted() {
        let (_, t) = build("x.o", &bpf()).unwrap();
        assert_eq!(extract(&t, 1 << 20).ok().unwrap().object, bpf());
    }

    /// A tar of `n` empty regular files and then the object.
    fn many(n: usize) -> Vec<u8> {
        let mut tarball = Vec::new();
        let mut b = tar::Builder::new(&mut tarball);
        for i in 0..n {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("f{i}"), &[][..]).unwrap();
        }
        let obj = bpf();
        let mut h = tar::Header::new_gnu();
        h.set_size(obj.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "x.o", &obj[..]).unwrap();
        b.finish().unwrap();
        drop(b);
        tarball
    }

    #[test]
    fn entry_count_limit_just_over_the_edge() {
        assert!(extract(&many(MAX_LAYER_ENTRIES - 1), 1 << 30).is_ok());
        let e = extract(&many(MAX_LAYER_ENTRIES), 1 << 30).err().unwrap();
        assert!(
            e.to_string().contains("more than 1024 tar entries"),
            "{e:?}"
        );
    }

    #[test]
    fn refusals() {
        // Not gzip nor tar.
        assert!(
            matches!(extract(b"garbage garbage", 1 << 20), Err(e) if !matches!(e, LayerError::TooLarge(_)))
        );
        // Truncated gzip.
        let (gz, _) = build("x.o", &bpf()).unwrap();
        assert!(
            matches!(extract(&gz[..gz.len() / 2], 1 << 20), Err(e) if !matches!(e, LayerError::TooLarge(_)))
        );
        // No ELF inside.
        let (gz, _) = build("readme", b"hello").unwrap();
        assert!(matches!(extract(&gz, 1 << 20), Err(e) if e.to_string().contains("no ELF")));
        // Over the unpacked bound.
        let (gz, _) = build("x.o", &vec![0u8; 100_000]).unwrap();
        assert!(matches!(extract(&gz, 10_000), Err(LayerError::TooLarge(_))));
        // Foreign byte order.
        let mut other =
            elf::tests::header(2, if cfg!(target_endian = "little") { 2 } else { 1 }, 247);
        other.extend_from_slice(&[0u8; 10]);
        let (gz, _) = build("x.o", &other).unwrap();
        assert!(matches!(extract(&gz, 1 << 20), Err(e) if e.to_string().contains("endian")));
    }
}
