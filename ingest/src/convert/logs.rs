//! OTLP log records to model records, with the correlation id picked out of the attributes.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use skewer_storage::model::{Attribute, AttributeValue, LogRecord};

use super::common::{
    Converted, Rejections, convert_attributes, convert_resource, convert_scope, convert_value,
};
use super::traces::{optional_span_id, optional_trace_id};

/// Converts an export; `correlation_keys` are the attribute keys tried in order for the
/// record's correlation id. A record with neither an event nor an observed time gets the time
/// it is converted as its observed time, as the OTLP specification asks of receivers (else it
/// would be filed under 1970 and removed by the next retention sweep).
pub fn convert_logs(
    request: ExportLogsServiceRequest,
    correlation_keys: &[String],
) -> Converted<LogRecord> {
    let received_unix_nano = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut records = Vec::new();
    let mut rejections = Rejections::default();
    for resource_logs in request.resource_logs {
        let resource = convert_resource(resource_logs.resource, resource_logs.schema_url);
        for scope_logs in resource_logs.scope_logs {
            let scope = convert_scope(scope_logs.scope, scope_logs.schema_url);
            records.reserve(scope_logs.log_records.len());
            for record in scope_logs.log_records {
                let trace_id = match optional_trace_id(&record.trace_id) {
                    Ok(id) => id,
                    Err(err) => {
                        rejections.reject(|| format!("log record: {err}"));
                        continue;
                    }
                };
                let span_id = match optional_span_id(&record.span_id) {
                    Ok(id) => id,
                    Err(err) => {
                        rejections.reject(|| format!("log record: {err}"));
                        continue;
                    }
                };
                let attributes = convert_attributes(record.attributes);
                let correlation_id = find_correlation_id(&attributes, correlation_keys);
                records.push(LogRecord {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    time_unix_nano: record.time_unix_nano,
                    observed_time_unix_nano: if record.observed_time_unix_nano == 0
                        && record.time_unix_nano == 0
                    {
                        received_unix_nano
                    } else {
                        record.observed_time_unix_nano
                    },
                    severity_number: record.severity_number,
                    severity_text: record.severity_text,
                    body: convert_value(record.body),
                    attributes,
                    dropped_attributes_count: record.dropped_attributes_count,
                    flags: record.flags,
                    trace_id,
                    span_id,
                    event_name: record.event_name,
                    correlation_id,
                });
            }
        }
    }
    Converted {
        records,
        rejections,
    }
}

/// The value of the first key of `keys` present with a non-empty value.
pub fn find_correlation_id(attributes: &[Attribute], keys: &[String]) -> Option<String> {
    keys.iter().find_map(|key| {
        let value = attributes.iter().find(|a| &a.key == key)?;
        match &value.value {
            AttributeValue::Empty => None,
            AttributeValue::String(text) if text.is_empty() => None,
            other => Some(other.to_text()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{
        LogRecord as OtlpLogRecord, ResourceLogs, ScopeLogs,
    };

    fn keys() -> Vec<String> {
        vec!["correlation_id".into(), "request.id".into()]
    }

    #[test]
    fn correlation_id_is_the_first_present_key() {
        let attributes = vec![
            Attribute::string("request.id", "r-1"),
            Attribute::string("correlation_id", ""),
        ];
        assert_eq!(
            find_correlation_id(&attributes, &keys()),
            Some("r-1".into())
        );
        assert_eq!(find_correlation_id(&[], &keys()), None);
    }

    #[test]
    fn bad_ids_are_refused_empty_and_zero_ids_mean_none() {
        let record = |trace_id: Vec<u8>| OtlpLogRecord {
            trace_id,
            time_unix_nano: 5,
            ..OtlpLogRecord::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record(vec![]), record(vec![0; 16]), record(vec![9; 4])],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        let converted = convert_logs(request, &keys());
        assert_eq!(converted.records.len(), 2);
        assert!(converted.records.iter().all(|r| r.trace_id.is_none()));
        assert_eq!(converted.rejections.count, 1);
    }

    #[test]
    fn a_record_without_any_time_is_observed_at_receipt() {
        let request = |time: u64, observed: u64| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![OtlpLogRecord {
                        time_unix_nano: time,
                        observed_time_unix_nano: observed,
                        ..OtlpLogRecord::default()
                    }],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let timeless = convert_logs(request(0, 0), &keys()).records.remove(0);
        assert!(timeless.observed_time_unix_nano >= before);
        assert_eq!(timeless.time_unix_nano, 0);
        let timed = convert_logs(request(7, 0), &keys()).records.remove(0);
        assert_eq!(
            timed.observed_time_unix_nano, 0,
            "a record with an event time keeps its fields"
        );
    }
}
