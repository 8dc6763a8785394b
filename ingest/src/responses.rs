//! The OTLP export responses, shared by the gRPC and HTTP receivers: success, or partial
//! success with the number of rejected records and the first reason.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::pipeline::ExportOutcome;

/// The answer to a trace export.
pub fn trace_response(outcome: ExportOutcome) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: partial(outcome, |rejected_spans, error_message| {
            ExportTracePartialSuccess {
                rejected_spans,
                error_message,
            }
        }),
    }
}

/// The answer to a log export.
pub fn logs_response(outcome: ExportOutcome) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: partial(outcome, |rejected_log_records, error_message| {
            ExportLogsPartialSuccess {
                rejected_log_records,
                error_message,
            }
        }),
    }
}

/// The answer to a metric export.
pub fn metrics_response(outcome: ExportOutcome) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: partial(outcome, |rejected_data_points, error_message| {
            ExportMetricsPartialSuccess {
                rejected_data_points,
                error_message,
            }
        }),
    }
}

/// A partial success only when something was rejected or there is a warning to pass on.
fn partial<P>(outcome: ExportOutcome, build: impl FnOnce(i64, String) -> P) -> Option<P> {
    (outcome.rejected > 0 || outcome.message.is_some()).then(|| {
        build(
            i64::try_from(outcome.rejected).unwrap_or(i64::MAX),
            outcome.message.unwrap_or_default(),
        )
    })
}
