//! Downcity's benchmark harness: a fast OpenAI-compatible mock upstream, a
//! closed-loop load generator with HDR histograms for gRPC (City) and HTTP
//! (the upstream directly, LiteLLM), and the scenarios of BENCHMARKS.md.

pub mod city;
pub mod http;
pub mod launch;
pub mod load;
pub mod machine;
pub mod procs;
pub mod replicas;
pub mod report;
pub mod scenarios;
pub mod table;
pub mod upstream;
