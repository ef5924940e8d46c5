//! Compiles `proto/*.proto` with protox (pure Rust, so no `protoc` is needed on
//! the build machine), then generates messages, servers and clients with
//! tonic-prost-build. The encoded descriptor set is written next to the
//! generated code for gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/bpfman.proto", "proto/bpfman_ext.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(protos)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("bpfman_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Metadata maps are stored ordered in the core; keep the same order here
        // so conversions are plain moves and output is stable.
        .btree_map(".")
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
