//! Generates the gRPC code from `proto/` with a pure-Rust protobuf compiler,
//! so building needs no system `protoc`. The output lands in OUT_DIR and is
//! never checked in, so it cannot drift from the contract.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/downcity/v1/common.proto",
    "proto/downcity/v1/ai.proto",
    "proto/downcity/v1/admin.proto",
];

/// Holds a provider API key: its Debug (src/keys.rs) redacts it, and it gets
/// no Serialize.
const SECRET_BEARING: &str = ".downcity.v1.UpsertProviderRequest";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let encoded = prost::Message::encode_to_vec(&descriptors);
    // The descriptor set also feeds server reflection and the CLI's JSON.
    std::fs::write(out_dir.join("downcity_descriptor.bin"), &encoded)?;
    let mut config = prost_build::Config::new();
    // `prost::Name` on every message: the CLI finds its descriptor by name.
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The well-known types with serde (proto3 JSON), so the messages
        // holding them can derive it too (prost's own would be prost_types).
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .skip_debug([SECRET_BEARING])
        .compile_fds_with_config(descriptors, config)?;
    // serde for every message and enum, with the proto field names and
    // every field written, unset or not.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .out_dir(&out_dir)
        .preserve_proto_field_names()
        .emit_fields()
        .exclude([SECRET_BEARING])
        .build(&[".downcity.v1"])?;
    Ok(())
}
