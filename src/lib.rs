//! Downcity: one long-running City serving many AI studios.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod client;
pub mod config;
pub mod error;
pub mod gateway;
pub mod hooks;
pub mod keys;
pub mod providers;
pub mod quota;
pub mod server;
pub mod store;
pub mod usage;

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
