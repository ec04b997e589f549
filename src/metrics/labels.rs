//! Label sets and the label values that bound cardinality.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;

/// The value studios beyond the label budget share.
pub const OTHER: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub studio: Arc<str>,
    pub model: Arc<str>,
    pub pathway: &'static str,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StudioModelLabels {
    pub studio: Arc<str>,
    pub model: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    pub scope: &'static str,
    pub limit: &'static str,
    pub window: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: Arc<str>,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    pub method: Arc<str>,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
}

/// Interned label values, at most `max` distinct ones; later values share
/// `other`. Lookups of a known value take a read lock and clone an `Arc`:
/// no allocation per call.
pub struct BoundedValues {
    max: usize,
    known: RwLock<HashMap<Box<str>, Arc<str>>>,
    other: Arc<str>,
}

impl BoundedValues {
    pub fn new(max: usize) -> Self {
        BoundedValues {
            max,
            known: RwLock::new(HashMap::new()),
            other: Arc::from(OTHER),
        }
    }

    pub fn get(&self, value: &str) -> Arc<str> {
        if let Some(label) = self.known.read().expect("label lock").get(value) {
            return label.clone();
        }
        let mut known = self.known.write().expect("label lock");
        if let Some(label) = known.get(value) {
            return label.clone();
        }
        if known.len() >= self.max {
            return self.other.clone();
        }
        let label: Arc<str> = Arc::from(value);
        known.insert(value.into(), label.clone());
        label
    }
}

pub use crate::error::code_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_the_budget_fold_into_other() {
        let values = BoundedValues::new(2);
        assert_eq!(&*values.get("a"), "a");
        assert_eq!(&*values.get("b"), "b");
        assert_eq!(&*values.get("c"), OTHER);
        assert_eq!(&*values.get("a"), "a");
    }

    #[test]
    fn code_names_are_grpc_spellings() {
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "RESOURCE_EXHAUSTED"
        );
        assert_eq!(code_name(tonic::Code::Ok), "OK");
    }
}
