//! bpfman-csi (work in progress).
