//! Installing the global `tracing` subscriber and, when configured, the OTLP exporter.

use std::env;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What becomes a span when exporting (override with `QUIVER_TRACE_FILTER`, `RUST_LOG`
/// syntax): Quiver's spans, not the HTTP clients' own (the exporter's requests would
/// otherwise trace themselves).
const DEFAULT_TRACE_FILTER: &str = "info,h2=off,hyper=off,hyper_util=off,reqwest=off,tower=off,\
     opentelemetry=off,opentelemetry_sdk=off,opentelemetry_http=off,\
     kube=off,kube_client=off,kube_runtime=off";

/// Whether the environment asks for trace export: an OTLP endpoint is set, and neither
/// `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise.
pub fn otel_requested() -> bool {
    let set = |k: &str| env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled =
        env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let exporter_none =
        env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("none"));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !disabled
        && !exporter_none
}

/// Owns the trace pipeline; dropping it flushes the spans not yet exported.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global subscriber: an `EnvFilter` from `RUST_LOG` (else
    /// `default_filter`), the log output (`log_format` `json` or text) and, if
    /// [`otel_requested`], the OpenTelemetry layer exporting to the configured endpoint
    /// (`OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf`, the default, or `http/json`).
    /// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the service and
    /// `OTEL_TRACES_SAMPLER`/`_ARG` pick the sampler (parent-based always-on by default).
    pub fn init(
        default_service_name: &'static str,
        log_format: &str,
        default_filter: &str,
    ) -> Telemetry {
        // RUST_LOG picks what is logged, not what is traced: a quiet log (RUST_LOG=warn)
        // must not silence the request spans, so each layer has its own filter
        let log_filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
        let fmt = if log_format == "json" {
            tracing_subscriber::fmt::layer()
                .json()
                // the whole span list: a line logged inside a store span still shows the
                // request span's trace_id
                .with_current_span(true)
                .with_span_list(true)
                .with_filter(log_filter)
                .boxed()
        } else {
            tracing_subscriber::fmt::layer()
                .with_filter(log_filter)
                .boxed()
        };
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

        let (provider, otel_error) = if otel_requested() {
            match build_provider(default_service_name) {
                Ok(p) => (Some(p), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        let otel_layer = provider.as_ref().map(|p| {
            let trace_filter = env::var("QUIVER_TRACE_FILTER")
                .ok()
                .and_then(|f| EnvFilter::try_new(f).ok())
                .unwrap_or_else(|| EnvFilter::new(DEFAULT_TRACE_FILTER));
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer(default_service_name))
                .with_error_records_to_exceptions(true)
                .with_filter(trace_filter)
        });
        tracing_subscriber::registry()
            .with(fmt)
            .with(otel_layer)
            .init();
        if let Some(e) = otel_error {
            tracing::error!("OpenTelemetry export disabled: {e}");
        } else if provider.is_some() {
            tracing::info!("exporting traces over OTLP");
        }
        Telemetry { provider }
    }

    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter (also done on drop).
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.force_flush();
            let _ = p.shutdown_with_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn build_provider(default_service_name: &'static str) -> Result<SdkTracerProvider, String> {
    let protocol = env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|_| "http/protobuf".into());
    let protocol = match protocol.trim() {
        "http/protobuf" => opentelemetry_otlp::Protocol::HttpBinary,
        "http/json" => opentelemetry_otlp::Protocol::HttpJson,
        other => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported (use http/protobuf or http/json)"
            ))
        }
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let mut resource = Resource::builder();
    if env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty()) {
        resource = resource.with_service_name(default_service_name);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}
