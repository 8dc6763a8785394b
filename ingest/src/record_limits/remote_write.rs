//! Applying [`RecordLimits`] to Prometheus remote write requests: a series' labels are its
//! points' attributes, so at most `max_attributes` of them are kept (besides `__name__`) and
//! each value is cut to `max_attribute_value_bytes`.

use super::RecordLimits;
use super::otlp::{LimitedCounts, char_boundary_at_or_below};
use crate::remote_write::proto::WriteRequest;

impl RecordLimits {
    /// Limits a write request in place.
    pub fn remote_write(&self, request: &mut WriteRequest) -> LimitedCounts {
        let mut counts = LimitedCounts::default();
        for series in &mut request.timeseries {
            let mut kept = 0usize;
            let before = series.labels.len();
            series.labels.retain(|label| {
                if label.name == "__name__" {
                    return true;
                }
                kept += 1;
                kept <= self.max_attributes
            });
            counts.attributes += (before - series.labels.len()) as u64;
            for label in &mut series.labels {
                if label.value.len() > self.max_attribute_value_bytes {
                    let end =
                        char_boundary_at_or_below(&label.value, self.max_attribute_value_bytes);
                    label.value.truncate(end);
                    counts.values += 1;
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::proto::{Label, TimeSeries};

    #[test]
    fn labels_past_the_limits_are_dropped_or_cut_and_the_name_kept() {
        let limits = RecordLimits {
            max_attributes: 2,
            max_attribute_value_bytes: 4,
            ..RecordLimits::default()
        };
        let label = |name: &str, value: &str| Label {
            name: name.into(),
            value: value.into(),
        };
        let mut request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    label("a", "1"),
                    label("b", "héllo"),
                    label("c", "3"),
                    label("__name__", "up"),
                ],
                ..TimeSeries::default()
            }],
            ..WriteRequest::default()
        };
        let counts = limits.remote_write(&mut request);
        assert_eq!((counts.attributes, counts.values), (1, 1));
        let labels: Vec<(&str, &str)> = request.timeseries[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(labels, [("a", "1"), ("b", "hél"), ("__name__", "up")]);
    }
}
