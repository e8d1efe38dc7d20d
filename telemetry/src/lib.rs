//! Logs, traces and trace context for the Quiver binaries.
//!
//! - [`Telemetry::init`]: `tracing` logs (text or JSON, levels from `RUST_LOG`) and, when
//!   the standard `OTEL_EXPORTER_OTLP_*` variables ask for it, OpenTelemetry traces
//!   exported over OTLP/HTTP. Without them nothing but the log layer is installed.
//! - [`http`]: the server span of each HTTP request (OpenTelemetry HTTP semantic
//!   conventions), continuing the caller's W3C `traceparent`, and the trace id every log
//!   line of the request carries.
//! - [`metrics`]: the HTTP request metrics every binary serves under the same names.
//! - [`propagation`]: reading and writing W3C trace context on HTTP headers.
//! - [`shutdown`]: the signal every binary stops on.

pub mod http;
mod init;
pub mod metrics;
pub mod propagation;
pub mod shutdown;

pub use init::{otel_requested, Telemetry};
