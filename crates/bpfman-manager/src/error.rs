//! The manager's error: one code per failure class, mapped once to gRPC
//! statuses and CLI exit messages at the edges.

use bpfman_core::CoreError;
use bpfman_kernel::KernelError;
use bpfman_net::NetError;
use bpfman_store::StoreError;
use thiserror::Error;

/// Failure classes, aligned with gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Bad input.
    InvalidArgument,
    /// Something named does not exist.
    NotFound,
    /// Conflicts with current state.
    FailedPrecondition,
    /// Already there.
    AlreadyExists,
    /// Temporarily impossible (e.g. lock held too long).
    Unavailable,
    /// Not supported (by us, or by this kernel).
    Unimplemented,
    /// A bug or an unexpected system failure.
    Internal,
}

/// An error from a manager operation; `Display` is the one line a person reads.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct ManagerError {
    /// Failure class.
    pub code: Code,
    /// One line, actionable.
    pub message: String,
}

impl ManagerError {
    /// Builds an error of a class.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ManagerError {
            code,
            message: message.into(),
        }
    }
    /// Shorthand for NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
    /// Shorthand for INVALID_ARGUMENT.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    /// Shorthand for FAILED_PRECONDITION.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }
    /// Shorthand for INTERNAL.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }
}

impl From<CoreError> for ManagerError {
    fn from(e: CoreError) -> Self {
        let code = match e {
            CoreError::InvalidArgument(_) => Code::InvalidArgument,
            CoreError::FailedPrecondition(_) => Code::FailedPrecondition,
            CoreError::NotFound(_) => Code::NotFound,
        };
        ManagerError::new(code, e.to_string())
    }
}

impl From<StoreError> for ManagerError {
    fn from(e: StoreError) -> Self {
        ManagerError::internal(format!("store: {e}"))
    }
}

/// The verifier's reason: the last log line that is not an instruction,
/// source annotation or statistics line.
fn verifier_reason(tail: &str) -> &str {
    tail.lines()
        .rev()
        .map(str::trim)
        .find(|l| {
            !l.is_empty()
                && !l.starts_with(|c: char| c.is_ascii_digit() || c == ';')
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                && !l.starts_with("processed ")
                && !l.starts_with("R0 min value")
        })
        .unwrap_or("see the verifier log")
}

impl From<KernelError> for ManagerError {
    fn from(e: KernelError) -> Self {
        if let KernelError::Verifier { program, log_tail } = &e {
            // One line to act on; the log tail follows on continuation lines.
            return ManagerError::invalid(format!(
                "the verifier rejected program '{program}': {}\n{log_tail}",
                verifier_reason(log_tail)
            ));
        }
        let code = match &e {
            KernelError::NotBpf(_) => Code::InvalidArgument,
            KernelError::ProgramNotFound { .. } => Code::NotFound,
            KernelError::Verifier { .. } => Code::InvalidArgument,
            KernelError::Unsupported(_) => Code::Unimplemented,
            KernelError::NotFound(_) => Code::NotFound,
            _ => Code::Internal,
        };
        ManagerError::new(code, e.to_string())
    }
}

/// Result of manager operations.
pub type Result<T> = std::result::Result<T, ManagerError>;

impl From<NetError> for ManagerError {
    fn from(e: NetError) -> Self {
        let code = match &e {
            NetError::Unsupported(_) => Code::Unimplemented,
            NetError::NotFound(_) => Code::NotFound,
            NetError::InvalidArgument(_) => Code::InvalidArgument,
            NetError::Conflict(_) | NetError::TooMany(_) => Code::FailedPrecondition,
            _ => Code::Internal,
        };
        ManagerError::new(code, e.to_string())
    }
}
