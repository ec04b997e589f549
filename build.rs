//! Generates the gRPC code from `proto/` with a pure-Rust protobuf compiler,
//! so building needs no system `protoc`. The output lands in OUT_DIR and is
//! never checked in, so it cannot drift from the contract.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/downcity/v1/common.proto",
    "proto/downcity/v1/ai.proto",
    "proto/downcity/v1/admin.proto",
];

/// Holds a provider API key: its Debug (src/keys.rs) redacts it.
const SECRET_BEARING: &str = ".downcity.v1.UpsertProviderRequest";

/// The messages and enums the admin CLI prints as JSON: only they get serde,
/// as its generated code is twice the size of the messages' own. A message
/// shown or nested in one shown fails to compile until it is listed here.
const SHOWN: &[&str] = &[
    ".downcity.v1.Studio",
    ".downcity.v1.StudioStatus",
    ".downcity.v1.StudioKey",
    ".downcity.v1.UserToken",
    ".downcity.v1.Provider",
    ".downcity.v1.ProviderKind",
    ".downcity.v1.Model",
    ".downcity.v1.Pathway",
    ".downcity.v1.UsageRecord",
    ".downcity.v1.UsageAggregate",
    ".downcity.v1.Limits",
    ".downcity.v1.LimitStanding",
    ".downcity.v1.Hook",
    ".downcity.v1.HookEvent",
    ".downcity.v1.HookFailurePolicy",
    ".downcity.v1.HookDelivery",
    ".downcity.v1.HookDeliveryState",
];

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
        // prost's codec, but a message that does not decode is INVALID_ARGUMENT.
        .codec_path("crate::api::codec::ProtoCodec")
        .compile_fds_with_config(descriptors, config)?;
    // serde with the proto field names and every field written, unset or not.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .out_dir(&out_dir)
        .preserve_proto_field_names()
        .emit_fields()
        .build(SHOWN)?;
    Ok(())
}
