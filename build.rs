//! Generates the gRPC code from `proto/` with a pure-Rust protobuf compiler,
//! so building needs no system `protoc`. The output lands in OUT_DIR and is
//! never checked in, so it cannot drift from the contract.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/downcity/v1/common.proto",
    "proto/downcity/v1/ai.proto",
    "proto/downcity/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set also feeds server reflection.
    std::fs::write(
        out_dir.join("downcity_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Holds a provider API key: its Debug (src/keys.rs) redacts it.
        .skip_debug(["downcity.v1.UpsertProviderRequest"])
        .compile_fds(descriptors)?;
    Ok(())
}
