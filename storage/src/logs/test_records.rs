//! Test fixtures for the log index (records built from a number, a realistic generator, an OTLP
//! size estimate) and the index size measurement.
//!
//! Test-only; nothing here is compiled into the library.

use std::sync::Arc;

use crate::model::{
    Attribute, AttributeValue, InstrumentationScope, LogRecord, Resource, SpanId, TraceId,
};

/// Base time of the fixtures: 2024-01-01T00:00:00Z in Unix nanoseconds.
pub(crate) const BASE_UNIX_NANO: u64 = 1_704_067_200_000_000_000;

/// A record of service `checkout`, severity INFO (9), event time `BASE + n s`, trace `n`,
/// span `n`, correlation id `req-n`, attributes `http.method=GET`, `http.status_code=200`.
pub(crate) fn record(n: u64, body: &str) -> LogRecord {
    let resource = Resource {
        attributes: vec![
            Attribute::string("service.name", "checkout"),
            Attribute::string("host.name", "web-1"),
        ],
        ..Resource::default()
    };
    LogRecord {
        resource: Arc::new(resource),
        scope: Arc::new(InstrumentationScope {
            name: "skewer.test".into(),
            version: "1.0".into(),
            ..InstrumentationScope::default()
        }),
        time_unix_nano: BASE_UNIX_NANO + n * 1_000_000_000,
        observed_time_unix_nano: BASE_UNIX_NANO + n * 1_000_000_000 + 5,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AttributeValue::String(body.into()),
        attributes: vec![
            Attribute::string("http.method", "GET"),
            Attribute {
                key: "http.status_code".into(),
                value: AttributeValue::Int(200),
            },
        ],
        dropped_attributes_count: 0,
        flags: 1,
        trace_id: Some(trace_id(n)),
        span_id: Some(span_id(n)),
        event_name: String::new(),
        correlation_id: Some(format!("req-{n}")),
    }
}

/// A non-zero trace id derived from `n`.
pub(crate) fn trace_id(n: u64) -> TraceId {
    let mut bytes = [0xA5u8; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    TraceId(bytes)
}

/// A non-zero span id derived from `n`.
pub(crate) fn span_id(n: u64) -> SpanId {
    SpanId((n | 1 << 63).to_be_bytes())
}

/// A deterministic xorshift generator, so the size measurement is repeatable.
pub(crate) struct Noise(pub(crate) u64);

impl Noise {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Realistic records of one service: ~200-byte templated bodies with variable ids, paths and
/// durations, three attributes, microsecond-granular times. Each request (trace and correlation
/// id) logs `logs_per_trace` records, with a new span every two records.
pub(crate) fn realistic_records(count: u64, logs_per_trace: u64) -> Vec<LogRecord> {
    let resource = Arc::new(Resource {
        attributes: vec![
            Attribute::string("service.name", "checkout"),
            Attribute::string("service.version", "1.14.2"),
            Attribute::string("host.name", "checkout-7d9f8c6b5-x2x4q"),
            Attribute::string("k8s.namespace.name", "shop"),
        ],
        ..Resource::default()
    });
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let (mut trace, mut span, mut correlation) = (None, None, String::new());
    (0..count)
        .map(|n| {
            if n % logs_per_trace == 0 {
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&noise.next().to_le_bytes());
                bytes[8..].copy_from_slice(&noise.next().to_le_bytes());
                trace = TraceId::from_slice(&bytes).ok();
                correlation = format!("req-{:016x}", noise.next());
            }
            if (n % logs_per_trace).is_multiple_of(2) {
                span = SpanId::from_slice(&noise.next().to_le_bytes()).ok();
            }
            let mut record = realistic_record(&mut noise, &resource, n);
            (record.trace_id, record.span_id) = (trace, span);
            // As OTLP sends it: the request id is an attribute the correlation id is read from.
            record
                .attributes
                .push(Attribute::string("request.id", correlation.clone()));
            record.correlation_id = Some(correlation.clone());
            record
        })
        .collect()
}

fn realistic_record(noise: &mut Noise, resource: &Arc<Resource>, n: u64) -> LogRecord {
    let paths = [
        "/api/cart",
        "/api/checkout",
        "/api/orders/history",
        "/healthz",
        "/api/payments/authorize",
    ];
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let user = noise.next() % 100_000;
    let millis = noise.next() % 5_000;
    let path = noise.pick(&paths);
    let method = noise.pick(&methods);
    let body = match noise.next() % 4 {
        0 => format!(
            "request completed method={method} path={path} status=200 duration_ms={millis} \
             user_id=u{user} bytes_out={} cache=miss region=eu-west-1 upstream=cart-service:8080",
            noise.next() % 65_536
        ),
        1 => format!(
            "failed to authorize payment for user u{user}: upstream payments-gateway returned \
             503 Service Unavailable after {millis} ms (attempt {} of 3), will retry with backoff",
            noise.next() % 3 + 1
        ),
        2 => format!(
            "slow database query detected on orders_db: SELECT * FROM orders WHERE user_id = \
             {user} ORDER BY created_at DESC LIMIT 50 took {millis} ms, rows={}",
            noise.next() % 50
        ),
        _ => format!(
            "cache eviction completed for shard {} in {millis} ms: evicted {} keys, memory \
             now {} MiB of 4096 MiB, next run scheduled in 60 s by scheduler worker-{}",
            noise.next() % 16,
            noise.next() % 10_000,
            noise.next() % 4096,
            noise.next() % 8
        ),
    };
    let time = BASE_UNIX_NANO + n * 3_217_000 + (noise.next() % 1000) * 1000;
    let severity = [9, 9, 9, 13, 17][(noise.next() % 5) as usize];
    LogRecord {
        resource: Arc::clone(resource),
        scope: Arc::new(InstrumentationScope {
            name: "io.opentelemetry.checkout".into(),
            version: "2.3.1".into(),
            ..InstrumentationScope::default()
        }),
        time_unix_nano: time,
        observed_time_unix_nano: time + 150_000,
        severity_number: severity,
        severity_text: match severity {
            9 => "INFO",
            13 => "WARN",
            _ => "ERROR",
        }
        .into(),
        body: AttributeValue::String(body),
        attributes: vec![
            Attribute::string("http.request.method", method),
            Attribute::string("url.path", path),
            Attribute {
                key: "http.response.status_code".into(),
                value: AttributeValue::Int([200, 200, 404, 503][(noise.next() % 4) as usize]),
            },
        ],
        dropped_attributes_count: 0,
        flags: 1,
        trace_id: None,
        span_id: None,
        event_name: String::new(),
        correlation_id: None,
    }
}

/// The OTLP protobuf size of `record` inside a `ScopeLogs` (resource and scope sent once per
/// batch, so not counted): field tags, lengths and values, as `prost` encodes them.
pub(crate) fn otlp_protobuf_bytes(record: &LogRecord) -> usize {
    fn varint(value: u64) -> usize {
        (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
    }
    fn length_delimited(len: usize) -> usize {
        1 + varint(len as u64) + len
    }
    fn any_value(value: &AttributeValue) -> usize {
        match value {
            AttributeValue::String(text) => length_delimited(text.len()),
            AttributeValue::Int(number) => 1 + varint(*number as u64),
            AttributeValue::Bool(_) => 2,
            AttributeValue::Double(_) => 9,
            _ => 0,
        }
    }
    let mut len = 9 + 9; // time_unix_nano, observed_time_unix_nano (fixed64)
    len += 1 + varint(record.severity_number as u64);
    len += length_delimited(record.severity_text.len());
    len += length_delimited(any_value(&record.body));
    for attribute in &record.attributes {
        let key_value =
            length_delimited(attribute.key.len()) + length_delimited(any_value(&attribute.value));
        len += length_delimited(key_value);
    }
    len += 5; // flags (fixed32)
    len += length_delimited(16) + length_delimited(8);
    length_delimited(len)
}

/// [`fixture`] as OTLP sends such records: with the correlation id also as the attribute it is
/// read from (`request.id`; `x-request-id` for record 7).
pub(crate) fn fixture_with_request_ids() -> Vec<LogRecord> {
    let mut records = fixture();
    for (n, record) in records.iter_mut().enumerate() {
        let key = if n == 6 { "x-request-id" } else { "request.id" };
        let id = record.correlation_id.clone().unwrap_or_default();
        record.attributes.push(Attribute::string(key, id));
    }
    records
}

/// Ten records, `req-1` to `req-10`, one second apart; 2 is service `cart`, 3 is ERROR,
/// 6 is WARN, 4 has no trace or span, 5 has only an observed time.
pub(crate) fn fixture() -> Vec<LogRecord> {
    let bodies = [
        "user login succeeded for alice",
        "cart updated with 3 items",
        "payment declined by issuer bank",
        "background job finished without trace",
        "connection reset by peer while reading response",
        "slow response from payment gateway",
        "payment accepted for order 77",
        "connection timeout to payment gateway",
        "user logout for bob",
        "declined by issuer: insufficient funds",
    ];
    let mut records: Vec<LogRecord> = (1..=10u64)
        .map(|n| record(n, bodies[n as usize - 1]))
        .collect();
    records[1].resource = Arc::new(Resource {
        attributes: vec![Attribute::string("service.name", "cart")],
        ..Resource::default()
    });
    (records[2].severity_number, records[2].severity_text) = (17, "ERROR".into());
    (records[5].severity_number, records[5].severity_text) = (13, "WARN".into());
    (records[3].trace_id, records[3].span_id) = (None, None);
    records[4].time_unix_nano = 0;
    records
}

mod tests {
    use super::*;
    use crate::logs::{LogIndex, LogIndexConfig};

    /// Prints index bytes per record for realistic logs, with every record its own trace (the
    /// worst case for the id terms) and with five records per trace; asserts nothing.
    #[test]
    fn measure_bytes_per_record() {
        const NUM_RECORDS: u64 = 2000;
        for logs_per_trace in [1, 5] {
            let records = realistic_records(NUM_RECORDS, logs_per_trace);
            let protobuf_bytes: usize = records.iter().map(otlp_protobuf_bytes).sum();
            let dir = tempfile::tempdir().unwrap();
            let index = LogIndex::open(dir.path(), &LogIndexConfig::default()).unwrap();
            index.add(records.iter().map(|r| (r, 0))).unwrap();
            index.commit().unwrap();
            assert_eq!(index.num_docs(), NUM_RECORDS);

            let mut by_extension = std::collections::BTreeMap::<String, u64>::new();
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let extension = path.extension().unwrap_or_default().to_string_lossy();
                let len = std::fs::metadata(&path).unwrap().len();
                *by_extension.entry(extension.into_owned()).or_default() += len;
            }
            let per_record = by_extension.values().sum::<u64>() as f64 / NUM_RECORDS as f64;
            let protobuf_per_record = protobuf_bytes as f64 / NUM_RECORDS as f64;
            println!(
                "log index, {logs_per_trace} logs/trace: {per_record:.1} bytes/record on disk, \
                 OTLP protobuf {protobuf_per_record:.1} bytes/record, ratio {:.3}; \
                 bytes by file type: {by_extension:?}",
                per_record / protobuf_per_record
            );
        }
    }
}
