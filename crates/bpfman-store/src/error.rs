//! Errors raised by the store.

use std::path::PathBuf;

use rusqlite::ErrorCode;
use thiserror::Error;

/// A failure to read or write the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database file could not be opened (missing directory, permissions, not a database).
    #[error("cannot open store {}: {source}", path.display())]
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
