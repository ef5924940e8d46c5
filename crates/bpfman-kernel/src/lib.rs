//! bpfman-kernel (work in progress).
