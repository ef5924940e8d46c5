//! Errors raised by pure validation and planning.

use thiserror::Error;

/// A problem with user input or with a plan, found without touching the system.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// Input that does not parse or violates a rule; the message says which and how to fix it.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request conflicts with current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something named in the request does not exist.
    #[error("{0}")]
    NotFound(String),
}

/// Shorthand for an invalid-argument error.
pub fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(msg.into())
}
