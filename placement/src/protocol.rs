//! Header names that router, tenant server and operator agree on.

/// Set by a tenant server on a `503` for a project that cannot take the request right now.
/// Value [`PROJECT_PAUSED`]: writes are paused for a move, the router retries the same shard
/// after a short backoff. Value [`PROJECT_MOVED`]: the project has moved away (this copy is
/// fenced), the router re-reads its placement table and retries at the new home.
pub const PROJECT_STATE_HEADER: &str = "x-quiver-project-state";
pub const PROJECT_PAUSED: &str = "paused";
pub const PROJECT_MOVED: &str = "moved";

/// Added by the router to every proxied response: the ordinal of the shard that answered.
pub const SHARD_HEADER: &str = "x-quiver-shard";

/// Correlates one request across router and tenant server logs; generated when absent.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";
pub const TRACESTATE_HEADER: &str = "tracestate";

/// The key of the placement table in the operator's ConfigMap (and the file name used when
/// that ConfigMap is mounted as a volume).
pub const CONFIGMAP_KEY: &str = "placement.json";
