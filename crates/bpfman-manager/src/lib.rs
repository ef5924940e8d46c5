//! bpfman-manager (work in progress).
