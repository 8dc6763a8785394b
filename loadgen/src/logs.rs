//! Log generation: records tied to spans (trace and span ids), a share carrying only a
//! correlation id, ~200-byte bodies from a vocabulary plus ids, ~5% errors.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

use super::common::{int, scope, string, text};
use super::rng::Random;
use super::traces::Service;
use super::vocabulary::WORDS;

/// Share of records that carry only a correlation id, no trace context.
pub const CORRELATION_ONLY_SHARE: f64 = 0.2;

/// A body of about `target_len` bytes: words with ids mixed in.
pub fn body(rng: &mut Random, target_len: usize) -> String {
    let mut body = String::with_capacity(target_len + 16);
    while body.len() < target_len {
        if !body.is_empty() {
            body.push(' ');
        }
        match rng.below(8) {
            0 => body.push_str(&format!("order={:08x}", rng.next_u64() as u32)),
            1 => body.push_str(&format!("user=u{}", rng.below(100_000))),
            2 => body.push_str(&format!("took={}ms", rng.below(2_000))),
            _ => body.push_str(rng.pick::<&str>(WORDS)),
        }
    }
    body
}

/// One record of `service`; `trace` ties it to a span.
pub fn log_record(
    rng: &mut Random,
    time_unix_nano: u64,
    trace: Option<([u8; 16], [u8; 8])>,
) -> LogRecord {
    let roll = rng.unit();
    let (severity_number, severity_text) = if roll < 0.05 {
        (17, "ERROR")
    } else if roll < 0.15 {
        (13, "WARN")
    } else {
        (9, "INFO")
    };
    let request_id = format!("req-{:016x}", rng.next_u64());
    let (trace_id, span_id) = match trace {
        Some((trace_id, span_id)) => (trace_id.to_vec(), span_id.to_vec()),
        None => (Vec::new(), Vec::new()),
    };
    LogRecord {
        time_unix_nano,
        observed_time_unix_nano: time_unix_nano + 1_000_000,
        severity_number,
        severity_text: severity_text.into(),
        body: text(body(rng, 200)),
        attributes: vec![
            string("request.id", &request_id),
            string("code.function.name", "handle_request"),
            int("thread.id", rng.below(64) as i64),
        ],
        trace_id,
        span_id,
        flags: 1,
        ..LogRecord::default()
    }
}

/// Every span id the records of a request carry, rewritten on each replay.
pub fn span_ids(request: &ExportLogsServiceRequest) -> Vec<[u8; 8]> {
    request
        .resource_logs
        .iter()
        .flat_map(|r| r.scope_logs.iter().flat_map(|s| s.log_records.iter()))
        .filter_map(|record| record.span_id.as_slice().try_into().ok())
        .collect()
}

/// Every event and observed time the records of a request carry, rewritten on each replay
/// of a backfill.
pub fn record_times(request: &ExportLogsServiceRequest) -> Vec<u64> {
    request
        .resource_logs
        .iter()
        .flat_map(|r| r.scope_logs.iter().flat_map(|s| s.log_records.iter()))
        .flat_map(|record| [record.time_unix_nano, record.observed_time_unix_nano])
        .collect()
}

/// An export of `count` records spread over `services`.
pub fn logs_request(
    rng: &mut Random,
    services: &[Service],
    count: usize,
    base_unix_nano: u64,
) -> (ExportLogsServiceRequest, Vec<[u8; 16]>) {
    let mut by_service: Vec<Vec<LogRecord>> = vec![Vec::new(); services.len().max(1)];
    let mut trace_ids = Vec::new();
    for i in 0..count {
        let service = rng.below(by_service.len());
        let trace = if rng.chance(CORRELATION_ONLY_SHARE) {
            None
        } else {
            let trace_id = rng.id::<16>();
            trace_ids.push(trace_id);
            Some((trace_id, rng.id::<8>()))
        };
        let time = base_unix_nano + i as u64 * 100_000;
        by_service[service].push(log_record(rng, time, trace));
    }
    let resource_logs = by_service
        .into_iter()
        .enumerate()
        .filter(|(_, records)| !records.is_empty())
        .map(|(index, log_records)| ResourceLogs {
            resource: services.get(index).map(|s| s.resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    (ExportLogsServiceRequest { resource_logs }, trace_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_about_200_bytes_and_records_mix_trace_and_correlation_only() {
        let mut rng = Random::new(3);
        let services = vec![
            Service::new("a", 0, &mut rng),
            Service::new("b", 1, &mut rng),
        ];
        let (request, trace_ids) = logs_request(&mut rng, &services, 500, 1_000);
        let records: Vec<&LogRecord> = request
            .resource_logs
            .iter()
            .flat_map(|r| r.scope_logs.iter().flat_map(|s| s.log_records.iter()))
            .collect();
        assert_eq!(records.len(), 500);
        let without_trace = records.iter().filter(|r| r.trace_id.is_empty()).count();
        assert!((50..200).contains(&without_trace), "{without_trace}");
        assert_eq!(trace_ids.len(), 500 - without_trace);
        let errors = records.iter().filter(|r| r.severity_number == 17).count();
        assert!((5..60).contains(&errors), "{errors}");
        let body = body(&mut rng, 200);
        assert!((200..230).contains(&body.len()), "{}", body.len());
    }
}
