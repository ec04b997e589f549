//! Usage: one row per AI call, written by a group-commit writer, and the cost
//! of a call from the catalog's prices.

mod writer;

pub use writer::{Committed, Durability, RowKind, UsageWriter, WriterHandle};

use crate::domain::ModelRecord;

/// Cost in micro-units: prices are per million tokens and per image.
/// Rounded up, so a call never costs less than it used.
pub fn cost_micros(model: &ModelRecord, input_tokens: u64, output_tokens: u64, images: u64) -> i64 {
    let per_mtok =
        |tokens: u64, price: i64| (tokens as u128 * price.max(0) as u128).div_ceil(1_000_000);
    let total = per_mtok(input_tokens, model.input_micros_per_mtok)
        + per_mtok(output_tokens, model.output_micros_per_mtok)
        + images as u128 * model.micros_per_image.max(0) as u128;
    i64::try_from(total).unwrap_or(i64::MAX)
}
