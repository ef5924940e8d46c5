//! bpfman-store (work in progress).
