//! Errors raised by the store.

use std::path::PathBuf;

use rusqlite::ErrorCode;
use thiserror::Error;

/// A failure to read or write the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database file could not be opened or first used (missing
    /// directory, permissions, not a database, a file system without the
    /// locks or shared memory SQLite needs).
    #[error("cannot open store {}: {}", path.display(), describe_open_failure(source))]
    Open {
        /// Database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// Any other SQLite error.
    #[error("store: {0}")]
    Sqlite(rusqlite::Error),
    /// Another writer held the database longer than the busy timeout.
    #[error("store is busy (another writer held it too long): {0}")]
    Busy(String),
    /// A row is already recorded under this key (program id, map, volume id or target path).
    #[error("{0}")]
    AlreadyExists(String),
    /// A row refers to something the store does not hold (e.g. a link to an unknown program).
    #[error("{0}")]
    NotFound(String),
    /// A stored row could not be decoded; the message names the row.
    #[error("corrupt store row: {0}")]
    Corrupt(String),
    /// A record could not be encoded for storage.
    #[error("cannot encode {0}")]
    Encode(String),
    /// The schema could not be brought to the current version.
    #[error("store migration: {0}")]
    Migration(String),
}

impl From<rusqlite::Error> for StoreError {
    // Lock contention gets its own variant so callers can tell "try again later"
    // apart from real failures without digging into SQLite codes.
    fn from(e: rusqlite::Error) -> Self {
        if is_busy(&e) {
            StoreError::Busy(e.to_string())
        } else {
            StoreError::Sqlite(e)
        }
    }
}

/// Shorthand for results of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What kept SQLite from using a database file, as a person can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// File locks or the shared-memory WAL index do not work where the file
    /// is: typical of 9p, NFS, SMB and FUSE mounts.
    Locking,
    /// The file cannot be created or opened (missing directory, permissions).
    CantOpen,
    /// The file or its file system is read-only, or its WAL index is.
    ReadOnly,
    /// The file is not an SQLite database.
    NotADatabase,
    /// The database is damaged.
    Corrupt,
    /// No space left.
    Full,
    /// Another I/O error.
    Io,
    /// Anything else.
    Other,
}

impl OpenFailure {
    /// Classifies an SQLite error by its (extended) result code.
    pub fn of(e: &rusqlite::Error) -> OpenFailure {
        use rusqlite::ffi;
        let Some(f) = e.sqlite_error() else {
            return OpenFailure::Other;
        };
        match f.extended_code {
            ffi::SQLITE_IOERR_LOCK
            | ffi::SQLITE_IOERR_RDLOCK
            | ffi::SQLITE_IOERR_UNLOCK
            | ffi::SQLITE_IOERR_CHECKRESERVEDLOCK
            | ffi::SQLITE_IOERR_SHMOPEN
            | ffi::SQLITE_IOERR_SHMSIZE
            | ffi::SQLITE_IOERR_SHMLOCK
            | ffi::SQLITE_IOERR_SHMMAP
            | ffi::SQLITE_READONLY_CANTLOCK
            | ffi::SQLITE_READONLY_CANTINIT
            | ffi::SQLITE_READONLY_RECOVERY
            | ffi::SQLITE_PROTOCOL
            | ffi::SQLITE_NOLFS => return OpenFailure::Locking,
            _ => {}
        }
        match f.code {
            ErrorCode::CannotOpen => OpenFailure::CantOpen,
            ErrorCode::ReadOnly => OpenFailure::ReadOnly,
            ErrorCode::NotADatabase => OpenFailure::NotADatabase,
            ErrorCode::DatabaseCorrupt => OpenFailure::Corrupt,
            ErrorCode::DiskFull => OpenFailure::Full,
            ErrorCode::SystemIoFailure => OpenFailure::Io,
            _ => OpenFailure::Other,
        }
    }

    /// What to tell a person.
    pub fn hint(self) -> &'static str {
        match self {
            OpenFailure::Locking => {
                "SQLite cannot lock it or map its WAL index on this file system \
                 (network and shared file systems such as 9p, NFS, SMB or FUSE do not \
                 provide that); put the runtime dir on a local file system, e.g. tmpfs \
                 or ext4 (--runtime-dir or BPFMAN_RUNTIME_DIR)"
            }
            OpenFailure::CantOpen => {
                "SQLite cannot create or open the file: check that its directory exists \
                 and this user may write there"
            }
            OpenFailure::ReadOnly => {
                "the file or its file system is read-only, or SQLite cannot write its WAL \
                 index (the -shm file) there; put the runtime dir on a writable local file \
                 system, e.g. tmpfs or ext4 (--runtime-dir or BPFMAN_RUNTIME_DIR)"
            }
            OpenFailure::NotADatabase => {
                "the file is not an SQLite database: move it aside and bpfman creates a new one"
            }
            OpenFailure::Corrupt => "the database is corrupt: move it aside (then run gc --prune)",
            OpenFailure::Full => "the file system is full",
            OpenFailure::Io => "I/O error",
            OpenFailure::Other => "unexpected SQLite error",
        }
    }
}

fn describe_open_failure(e: &rusqlite::Error) -> String {
    format!("{} (SQLite: {e})", OpenFailure::of(e).hint())
}

/// True when `e` says another connection holds a lock we need.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// True when `e` is a UNIQUE or PRIMARY KEY violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error().map(|f| f.extended_code),
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
    )
}

/// True when `e` is a FOREIGN KEY violation.
pub(crate) fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error().map(|f| f.extended_code) == Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}
