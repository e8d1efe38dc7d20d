//! What the HTTP fronts of Quiver share, so that the router and the tenant server cannot
//! drift apart on it: the CORS policy. A browser client that a tenant server lets delete
//! a collection must be let through the router too, since the router proxies the same
//! paths with the same methods.

pub mod cors;
