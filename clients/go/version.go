package downcity

// Version is this client's version: the one Downcity version of City and every
// client (the crate's, in Cargo.toml; scripts/check-version keeps them equal).
const Version = "0.1.0"
