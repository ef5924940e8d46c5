//! bpfman-api (work in progress).
