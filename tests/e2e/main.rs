//! City's end-to-end tests, one module per area, in one test binary: one
//! link instead of one per file, and helpers shared without dead-code
//! allowances. Each test starts a real City (in process on 127.0.0.1:0, or
//! the real binary) with a real SQLite file, and talks to it over real gRPC.

mod common;
mod fake_upstream;

mod admin_api;
mod admin_races;
mod ai_calls;
mod ai_errors;
mod authz;
mod binary;
mod cancel;
mod cli_hooks;
mod cli_quotas;
mod config_limits;
mod console;
mod crash;
mod drain;
mod fuzz;
mod fuzz_config;
mod fuzz_upstream;
mod hooks;
mod metrics;
mod openai_face;
mod provider_keys;
mod providers_anthropic;
mod providers_gemini;
mod providers_openai;
mod quotas;
mod replicas;
mod replicas_kill;
mod replicas_quota;
mod rust_client;
mod secrets;
mod store_conformance;
mod store_postgres;
mod telemetry;
mod transport;
mod usage_retention;
mod web;
