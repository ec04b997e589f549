//! What a listener serves: known to the routes and to the console, which
//! sits beside AdminService wherever that is served.

/// The services one listener offers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// AIService, AdminService, health and reflection: the one listener.
    Everything,
    /// AIService, health and reflection of them (with a separate admin listener).
    Ai,
    /// AdminService, health and reflection of them.
    Admin,
}
