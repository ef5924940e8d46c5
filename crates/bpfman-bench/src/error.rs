//! The benchmark's error type: every failure says what was being done.

use std::io;

use thiserror::Error;

/// Why a benchmark run stopped.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A manager call (in-process mode) failed.
    #[error("{op}: {source}")]
    Manager {
        /// What was being done.
        op: String,
        /// The manager's one-line error.
        #[source]
        source: bpfman_manager::ManagerError,
    },
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A child process (bpfman CLI, bpftool) exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for a person to re-run.
        command: String,
        /// Exit status as text.
        status: String,
        /// Last line(s) of its standard error.
        stderr: String,
    },
    /// A gRPC call failed.
    #[error("gRPC {op}: {code:?}: {message}")]
    Grpc {
        /// RPC name.
        op: &'static str,
        /// Status code.
        code: tonic::Code,
        /// Status message.
        message: String,
    },
    /// A result did not match what the benchmark set up (e.g. `list` returned
    /// the wrong number of programs): the numbers would be meaningless.
    #[error("check failed: {0}")]
    Check(String),
    /// The environment cannot run the benchmark (not root, missing file...).
    #[error("{0}")]
    Setup(String),
    /// SIGINT or SIGTERM arrived; the run stops and cleans up.
    #[error("interrupted by a signal")]
    Interrupted,
}

impl BenchError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }

    /// Wraps a manager error with the operation name.
    pub fn manager(op: impl Into<String>, source: bpfman_manager::ManagerError) -> Self {
        BenchError::Manager {
            op: op.into(),
            source,
        }
    }

    /// Wraps a gRPC status.
    pub fn grpc(op: &'static str, s: tonic::Status) -> Self {
        BenchError::Grpc {
            op,
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

/// Result alias for the benchmark.
pub type Result<T> = std::result::Result<T, BenchError>;
