//! The one error type of the kernel adapter, and helpers that turn aya's
//! nested errors into messages a person can act on.

use std::error::Error as StdError;
use std::io;
use std::path::Path;

/// Everything that can go wrong talking to the kernel, bpffs or mounts.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The bytes are not an ELF file, or not a BPF ELF file.
    #[error("not a BPF object: {0}")]
    NotBpf(String),

    /// A requested program is not in the object.
    #[error("program '{name}' is not in the object (it has: {})", list_or_none(.available))]
    ProgramNotFound {
        /// Name asked for.
        name: String,
        /// Programs the object holds.
        available: Vec<String>,
    },

    /// The verifier refused a program.
    #[error("the verifier rejected program '{program}':\n{log_tail}")]
    Verifier {
        /// Program name.
        program: String,
        /// The last useful lines of the verifier log.
        log_tail: String,
    },

    /// The kernel lacks the feature (or a host policy forbids it).
    #[error("{0}")]
    Unsupported(String),

    /// Something named does not exist (tracepoint, uprobe target, symbol, pin).
    #[error("{0}")]
    NotFound(String),

    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A directory to remove still holds something (someone else's pins).
    #[error("{} is not empty", .0.display())]
    DirectoryNotEmpty(std::path::PathBuf),

    /// Anything else, already phrased for a person.
    #[error("{0}")]
    Other(String),
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "no programs".to_string()
    } else {
        names.join(", ")
    }
}

impl KernelError {
    /// An [`KernelError::Io`] with its context.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        KernelError::Io {
            context: context.into(),
            source,
        }
    }

    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Maps a failed `BPF_OBJ_GET`-like lookup of `path`: a missing file is
/// `NotFound`, the rest keeps its errno.
pub(crate) fn pin_lookup_error(what: &str, path: &Path, e: io::Error) -> KernelError {
    if e.kind() == io::ErrorKind::NotFound {
        KernelError::NotFound(format!("{what} pin {} does not exist", path.display()))
    } else {
        KernelError::io(format!("opening pinned {what} {}", path.display()), e)
    }
}

/// The error and all its sources on one line (`a: b: c`), skipping repeats:
/// aya's errors are often layers whose own text says little.
pub(crate) fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The first `io::Error` in the source chain of `e` (aya wraps errnos in
/// several layers; the errno decides how we classify the failure).
pub(crate) fn find_io<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// Symbolic name of an errno (`EPERM`), for plain messages.
pub(crate) fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINVAL => "EINVAL",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTSUP => "ENOTSUP",
        libc::E2BIG => "E2BIG",
        libc::ENOSPC => "ENOSPC",
        libc::ENOMEM => "ENOMEM",
        libc::ESRCH => "ESRCH",
        libc::EBADF => "EBADF",
        libc::EROFS => "EROFS",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// Number of verifier log lines kept in [`KernelError::Verifier`].
const VERIFIER_TAIL_LINES: usize = 20;

/// The last useful lines of a verifier log: blank lines dropped, at most
/// [`VERIFIER_TAIL_LINES`], since the reason is at the end of the log.
pub(crate) fn verifier_tail(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let start = lines.len().saturating_sub(VERIFIER_TAIL_LINES);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_tail_keeps_last_lines() {
        let log: String = (0..30).map(|i| format!("line {i}\n\n")).collect();
        let tail = verifier_tail(&log);
        assert_eq!(tail.lines().count(), VERIFIER_TAIL_LINES);
        assert!(tail.starts_with("line 10"));
        assert!(tail.ends_with("line 29"));
    }

    #[test]
    fn program_not_found_lists_names() {
        let e = KernelError::ProgramNotFound {
            name: "x".into(),
            available: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            e.to_string(),
            "program 'x' is not in the object (it has: a, b)"
        );
    }

    #[test]
    fn chain_joins_sources() {
        let inner = io::Error::from_raw_os_error(libc::EPERM);
        let e = KernelError::io("pinning", inner);
        assert!(chain(&e).starts_with("pinning: "));
        assert_eq!(
            find_io(&e).and_then(io::Error::raw_os_error),
            Some(libc::EPERM)
        );
        assert_eq!(e.errno(), Some(libc::EPERM));
        assert_eq!(errno_name(libc::EPERM), "EPERM");
    }
}

thread_local! {
    /// True while this thread runs inside [`aya_guard`].
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs aya code over untrusted bytes. aya-obj 0.3 (pinned with aya 0.14)
/// unwraps and slices unchecked in its BTF reader, so a malformed object
/// panics inside it (found by the ELF fuzz harness): such a panic becomes
/// a plain error for that one object instead of a crashed CLI or a daemon
/// call that dies. Everything aya opened is closed by the unwinding.
pub(crate) fn aya_guard<T>(f: impl FnOnce() -> Result<T, KernelError>) -> Result<T, KernelError> {
    // The panic becomes the error message: keep the default hook from also
    // printing it (and a backtrace) for guarded calls; every other panic
    // goes to the hook that was installed before.
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(std::cell::Cell::get) {
                prev(info);
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    match r {
        Ok(r) => r,
        Err(p) => {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            Err(KernelError::NotBpf(format!(
                "aya cannot read this object (malformed ELF or BTF; aya-obj failed with: {why})"
            )))
        }
    }
}
