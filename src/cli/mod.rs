//! Command-line front ends of Downcity.
//!
//! [`admin`] is the operator's client of `AdminService`: it manages studios,
//! credentials, the model catalog and usage of a running City.

pub mod admin;
mod client;
mod render;
