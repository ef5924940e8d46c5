//! Compiles `proto/csi.proto` with protox (pure Rust, so the build machine
//! needs no `protoc`; protox also ships the google/protobuf well-known files
//! the proto imports) and generates messages, servers and clients with
//! tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/csi.proto";
    println!("cargo:rerun-if-changed={PROTO}");

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true);
    compiler.open_file(PROTO)?;

    tonic_prost_build::configure()
        // Both sides are generated: the server for the plugin, the client for
        // the protocol tests (and for any tool that wants to probe the socket).
        .build_server(true)
        .build_client(true)
        // Ordered maps keep attribute order stable in logs and make them a
        // plain move into `PublishRequest::attributes`.
        .btree_map(".")
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
