//! Command-line front ends of Downcity.
//!
//! [`admin`] is the operator's client of `AdminService`: it manages studios,
//! credentials, the model catalog and usage of a running City. Its plumbing
//! lies beside it and points one way: `output` (tables, JSON, CSV) uses
//! `paging` (following page tokens), which uses `connection` (the channel
//! and the bearer key); both `output` and `connection` use `status` (a gRPC
//! code by name, a refused call as one line).

pub(crate) mod admin;
mod connection;
mod output;
mod paging;
mod status;
