//! Downcity: one long-running City serving many AI studios.

// The library's public face: what the binary, the tests and embedders use.
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod keys;
pub mod server;
pub mod store;

// City's inside, layered (each uses only those listed before it):
// services, then the gateway, then the doors.
pub(crate) mod auth;
pub(crate) mod catalog;
pub(crate) mod hooks;
pub(crate) mod outbound;
pub(crate) mod providers;
pub(crate) mod quota;
pub(crate) mod usage;

pub(crate) mod gateway;

pub(crate) mod api;

pub mod proto {
    //! Code generated from `proto/downcity/v1`; never edited by hand.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("downcity.v1");
    // serde (proto3 JSON, proto field names) for the messages the CLI shows.
    include!(concat!(env!("OUT_DIR"), "/downcity.v1.serde.rs"));

    /// Encoded descriptors of every Downcity proto file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/downcity_descriptor.bin"));
}
