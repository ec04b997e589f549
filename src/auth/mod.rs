//! Who is calling: credentials, the in-memory directory, and the
//! interceptors that resolve the caller before any handler runs.

mod directory;
mod interceptor;
mod origin;
pub mod secret;

use std::sync::Arc;

pub use directory::{Directory, StudioChanges};
pub use interceptor::{AdminAuth, RequestId, UserAuth};
pub use origin::WebOrigins;

/// An authenticated end user of an active studio, in request extensions.
#[derive(Debug, Clone)]
pub struct UserCaller {
    pub studio_id: Arc<str>,
    pub user_id: Arc<str>,
}

/// An authenticated admin caller, in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCaller {
    /// The City operator: may do everything.
    Operator,
    /// A studio's backend: may do studio-scoped calls for this studio only.
    Studio(Arc<str>),
}
