//! The load floor must start the way `bpfman` does, so it links the same
//! static unwinder (crates/bpfman/build/static_unwinder.rs).

#[path = "../bpfman/build/static_unwinder.rs"]
mod static_unwinder;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../bpfman/build/static_unwinder.rs");
    static_unwinder::link();
}
