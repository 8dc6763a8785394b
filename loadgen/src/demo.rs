//! `--scenario demo`: a small e-commerce story to look at after a first `serve`: requests
//! flow frontend → checkout → payment / inventory, every server span logs a line, some
//! requests fail, metrics arrive every few seconds, and `payment`'s clock runs 250 ms ahead.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

use super::common::{scope, string};
use super::logs::log_record;
use super::metrics::MetricSeriesGenerator;
use super::rng::Random;
use super::traces::{Service, TraceShape, generate_trace, hex};
use super::transport::{Endpoints, Outcome, Sender};
use super::{LoadgenArgs, Signal, encode, now_unix_nano};

const DEMO_SERVICES: [&str; 4] = ["frontend", "checkout", "payment", "inventory"];

/// Sends the story until `--duration` (or `--count` traces) is reached.
pub async fn run(args: &LoadgenArgs, endpoints: &Endpoints) -> Result<(), crate::LoadgenError> {
    let mut rng = Random::new(args.seed);
    let mut services: Vec<Service> = DEMO_SERVICES
        .iter()
        .enumerate()
        .map(|(i, name)| Service::new(name, i, &mut rng))
        .collect();
    let skewed = args.skew_service.as_deref().unwrap_or("payment");
    let skew_ms = if args.skew_ms == 0 { 250 } else { args.skew_ms };
    for service in &mut services {
        if service.name == skewed {
            service.clock_offset_nanos = skew_ms * 1_000_000;
        }
    }
    let shape = TraceShape {
        services: services.clone(),
        depth: 2,
        fan_out: 2,
        error_rate: 0.1,
    };
    let encoding = args.transport.encoding();
    let connect = |signal| Sender::connect(args.transport, signal, endpoints);
    let mut trace_sender = connect(Signal::Traces).await?;
    let mut log_sender = connect(Signal::Logs).await?;
    let mut metric_sender = connect(Signal::Metrics).await?;
    let mut metrics =
        MetricSeriesGenerator::new(services.clone(), 24, 5_000_000_000, now_unix_nano());

    let started = Instant::now();
    let max_traces = args.count.unwrap_or(u64::MAX);
    let mut sent_traces = 0u64;
    let mut failures = 0u64;
    let mut last_metrics = Instant::now() - Duration::from_secs(10);
    let mut example_trace = None;
    while started.elapsed().as_secs_f64() < args.duration && sent_traces < max_traces {
        let (trace_id, spans) = generate_trace(&mut rng, &shape, now_unix_nano());
        let mut by_service: Vec<Vec<_>> = vec![Vec::new(); services.len()];
        let mut logs: Vec<Vec<_>> = vec![Vec::new(); services.len()];
        for (service, span) in spans {
            if span.kind == SpanKind::Server as i32 {
                let span_id: [u8; 8] = span.span_id.as_slice().try_into().unwrap_or([1; 8]);
                let mut record = log_record(
                    &mut rng,
                    span.start_time_unix_nano + 1_000_000,
                    Some((trace_id, span_id)),
                );
                let failed = span.status.as_ref().is_some_and(|s| s.code == 2);
                record.severity_number = if failed { 17 } else { 9 };
                record.severity_text = if failed {
                    "ERROR".into()
                } else {
                    "INFO".into()
                };
                record.body = super::common::text(format!(
                    "{} handled {}{}",
                    services[service].name,
                    span.name,
                    if failed {
                        ": upstream failed, returning 500"
                    } else {
                        ""
                    }
                ));
                record.attributes.push(string("http.route", &span.name));
                logs[service].push(record);
            }
            by_service[service].push(span);
        }
        let traces = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .enumerate()
                .filter(|(_, spans)| !spans.is_empty())
                .map(
                    |(i, spans)| opentelemetry_proto::tonic::trace::v1::ResourceSpans {
                        resource: Some(services[i].resource.clone()),
                        scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                            scope: Some(scope()),
                            spans,
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    },
                )
                .collect(),
        };
        let log_request = ExportLogsServiceRequest {
            resource_logs: logs
                .into_iter()
                .enumerate()
                .filter(|(_, records)| !records.is_empty())
                .map(|(i, log_records)| ResourceLogs {
                    resource: Some(services[i].resource.clone()),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope()),
                        log_records,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        };
        failures += u64::from(send(&mut trace_sender, encoding, &traces).await);
        failures += u64::from(send(&mut log_sender, encoding, &log_request).await);
        if last_metrics.elapsed() >= Duration::from_secs(5) {
            let request = metrics.next_request(&mut rng);
            failures += u64::from(send(&mut metric_sender, encoding, &request).await);
            last_metrics = Instant::now();
        }
        sent_traces += 1;
        example_trace.get_or_insert(trace_id);
        if sent_traces.is_multiple_of(10) {
            eprintln!("demo: {sent_traces} requests traced, {failures} failed exports");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "demo: sent {sent_traces} traces with their logs, and metrics every 5 s; {failures} exports failed"
    );
    if let Some(trace_id) = example_trace {
        println!(
            "demo: look at one: curl {}/api/traces/{}",
            args.query_url(),
            hex(&trace_id)
        );
    }
    println!("demo: {skewed}'s clock runs {skew_ms} ms ahead of the others");
    if sent_traces > 0 && failures >= sent_traces * 2 {
        return Err(crate::LoadgenError::DemoFailed);
    }
    Ok(())
}

/// Sends one export; true when it was not accepted.
async fn send<M: Message + serde::Serialize>(
    sender: &mut Sender,
    encoding: super::pool::Encoding,
    message: &M,
) -> bool {
    let body = match encode(encoding, message) {
        Ok(body) => body,
        Err(_) => return true,
    };
    !matches!(sender.send(body.into()).await, Outcome::Accepted { .. })
}
