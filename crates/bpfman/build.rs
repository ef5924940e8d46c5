//! Links the unwinder statically (build/static_unwinder.rs says why); the
//! binary's one libm function is defined in src/nolibs.rs. Together they keep
//! libgcc_s.so.1 and libm.so.6 out of every `bpfman` process.

#[path = "build/static_unwinder.rs"]
mod static_unwinder;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/static_unwinder.rs");
    static_unwinder::link();
}
