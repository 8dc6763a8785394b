//! OTLP metric names and units as Prometheus metric names, after the OpenTelemetry
//! specification's "Prometheus and OpenMetrics compatibility" section and Prometheus's own
//! OTLP translator (`prometheus/otlptranslator`, `normalizeName` with suffixes): the name is
//! cut into tokens at every character outside `[a-zA-Z0-9:]` (so runs of `_` collapse), the
//! UCUM unit is spelled out and appended unless the name already holds it, monotonic sums
//! get `_total` and unit-`1` gauges `_ratio`, and a leading digit gets a `_` in front.
//!
//! Pure string work: no labels (see [`super::labels`]) and no values.

use skewer_storage::model::{MetricDescriptor, MetricKind};

/// The suffix of a histogram's cumulative bucket series.
pub const BUCKET_SUFFIX: &str = "_bucket";
/// The suffix of a histogram's or summary's sum series.
pub const SUM_SUFFIX: &str = "_sum";
/// The suffix of a histogram's or summary's count series.
pub const COUNT_SUFFIX: &str = "_count";

/// The Prometheus metric type of a family, as `TYPE` metadata and `/api/v1/metadata` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrometheusType {
    /// Only goes up (resets aside): monotonic sums.
    Counter,
    /// Goes up and down: gauges and non-monotonic sums.
    Gauge,
    /// Cumulative buckets with `_sum` and `_count`: both OTLP histogram kinds.
    Histogram,
    /// Quantiles with `_sum` and `_count`.
    Summary,
    /// No known type.
    Unknown,
}

impl PrometheusType {
    /// The type of the family an OTLP metric becomes.
    pub fn of(descriptor: &MetricDescriptor) -> Self {
        match descriptor.kind {
            MetricKind::Gauge => Self::Gauge,
            MetricKind::Sum if descriptor.is_monotonic => Self::Counter,
            MetricKind::Sum => Self::Gauge,
            MetricKind::Histogram | MetricKind::ExponentialHistogram => Self::Histogram,
            MetricKind::Summary => Self::Summary,
        }
    }

    /// The lower-case name Prometheus uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
            Self::Unknown => "unknown",
        }
    }
}

/// The Prometheus family name of an OTLP metric; `None` when nothing valid is left of the
/// name (it had no letter or digit), and the metric cannot be shown to Prometheus.
pub fn family_name(descriptor: &MetricDescriptor) -> Option<String> {
    normalize_metric_name(
        &descriptor.name,
        &descriptor.unit,
        descriptor.kind,
        descriptor.is_monotonic,
    )
}

/// The Prometheus name of an OTLP metric `name` with UCUM `unit`, of `kind`: sanitised,
/// with the unit suffix and the type suffix (`_total`, `_ratio`). `None` when the result
/// would be empty or all underscores.
pub fn normalize_metric_name(
    name: &str,
    unit: &str,
    kind: MetricKind,
    is_monotonic: bool,
) -> Option<String> {
    let mut tokens: Vec<String> = metric_name_tokens(name).map(str::to_owned).collect();
    let (main_unit, per_unit) = unit_suffixes(unit);
    for suffix in [main_unit, per_unit].into_iter().flatten() {
        let suffix_tokens: Vec<&str> = metric_name_tokens(&suffix).collect();
        if !suffix_tokens.is_empty() && !contains_run(&tokens, &suffix_tokens) {
            tokens.extend(suffix_tokens.into_iter().map(str::to_owned));
        }
    }
    if kind == MetricKind::Sum && is_monotonic {
        move_to_end(&mut tokens, "total");
    }
    if kind == MetricKind::Gauge && unit == "1" {
        move_to_end(&mut tokens, "ratio");
    }
    let mut normalized = tokens.join("_");
    if normalized.starts_with(|c: char| c.is_ascii_digit()) {
        normalized.insert(0, '_');
    }
    (!normalized.is_empty()).then_some(normalized)
}

/// The unit as Prometheus `UNIT` metadata spells it: `s` → `seconds`, `By/s` →
/// `bytes_per_second`, annotations dropped, and `ratio` for a unit-`1` gauge (the suffix its
/// name got); empty when there is none.
pub fn prometheus_unit(descriptor: &MetricDescriptor) -> String {
    if descriptor.kind == MetricKind::Gauge && descriptor.unit == "1" {
        return "ratio".to_owned();
    }
    let (main_unit, per_unit) = unit_suffixes(&descriptor.unit);
    let tokens: Vec<&str> = main_unit
        .iter()
        .chain(per_unit.iter())
        .flat_map(|part| metric_name_tokens(part))
        .collect();
    tokens.join("_")
}

/// The metric names a family's series carry: the family name for counters and gauges,
/// `_bucket`, `_sum` and `_count` for histograms, and the bare name (quantiles), `_sum` and
/// `_count` for summaries.
pub fn family_metric_names(family: &str, kind: MetricKind) -> Vec<String> {
    match kind {
        MetricKind::Gauge | MetricKind::Sum => vec![family.to_owned()],
        MetricKind::Histogram | MetricKind::ExponentialHistogram => {
            [BUCKET_SUFFIX, SUM_SUFFIX, COUNT_SUFFIX]
                .iter()
                .map(|suffix| format!("{family}{suffix}"))
                .collect()
        }
        MetricKind::Summary => vec![
            family.to_owned(),
            format!("{family}{SUM_SUFFIX}"),
            format!("{family}{COUNT_SUFFIX}"),
        ],
    }
}

/// The suffixes a UCUM unit adds: the main unit spelled out (`ms` → `milliseconds`, an
/// unknown unit as it is) and, after a `/`, the per unit (`s` → `per_second`). A part
/// holding a `{…}` annotation, and the unit `1`, add nothing.
fn unit_suffixes(unit: &str) -> (Option<String>, Option<String>) {
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main, Some(per)),
        None => (unit, None),
    };
    let is_plain = |part: &str| !part.is_empty() && !part.contains(['{', '}']);
    let main = main.trim();
    let main_suffix = is_plain(main)
        .then(|| main_unit_word(main).to_owned())
        .filter(|word| !word.is_empty());
    let per_suffix = per
        .map(str::trim)
        .filter(|per| is_plain(per))
        .map(|per| format!("per_{}", per_unit_word(per)));
    (main_suffix, per_suffix)
}

/// The word for a main unit, or the unit itself when it has none (the translator's map).
fn main_unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The word for a per unit, or the unit itself when it has none.
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// The runs of valid metric name characters (`[a-zA-Z0-9:]`) in `text`.
fn metric_name_tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|token| !token.is_empty())
}

/// Whether `run` appears in `tokens` as consecutive tokens: a name already holding a unit
/// (`bytes`, or `per_second` as `per`, `second`) does not get it again.
fn contains_run(tokens: &[String], run: &[&str]) -> bool {
    tokens
        .windows(run.len())
        .any(|window| window.iter().zip(run).all(|(a, b)| a == b))
}

/// Removes every `token` and appends one: the type suffix comes last, once.
fn move_to_end(tokens: &mut Vec<String>, token: &str) {
    tokens.retain(|t| t != token);
    tokens.push(token.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;
    use skewer_storage::model::Temporality;

    fn name(name: &str, unit: &str, kind: MetricKind, monotonic: bool) -> String {
        normalize_metric_name(name, unit, kind, monotonic).unwrap()
    }

    fn gauge(otlp_name: &str, unit: &str) -> String {
        name(otlp_name, unit, MetricKind::Gauge, false)
    }

    #[test]
    fn invalid_characters_become_single_underscores() {
        assert_eq!(gauge("http.server.duration", ""), "http_server_duration");
        assert_eq!(
            gauge("metric@with#special$chars", ""),
            "metric_with_special_chars"
        );
        assert_eq!(gauge("metric@@##$$name", ""), "metric_name");
        assert_eq!(gauge("a__b...c", ""), "a_b_c");
        assert_eq!(gauge("_leading.trailing_", ""), "leading_trailing");
        assert_eq!(gauge("ns:sub.name", ""), "ns:sub_name", "colons are kept");
        assert_eq!(
            gauge("métric", ""),
            "m_tric",
            "non-ASCII letters are invalid"
        );
    }

    #[test]
    fn a_leading_digit_gets_an_underscore() {
        assert_eq!(gauge("123metric", ""), "_123metric");
        assert_eq!(gauge("9.lives", ""), "_9_lives");
    }

    #[test]
    fn nothing_valid_left_is_no_name() {
        assert_eq!(
            normalize_metric_name("@#$%", "", MetricKind::Gauge, false),
            None
        );
        assert_eq!(
            normalize_metric_name("_._", "", MetricKind::Gauge, false),
            None
        );
        assert_eq!(
            normalize_metric_name("", "", MetricKind::Gauge, false),
            None
        );
    }

    #[test]
    fn units_are_spelled_out_as_suffixes() {
        assert_eq!(gauge("response_time", "ms"), "response_time_milliseconds");
        assert_eq!(gauge("memory.usage", "By"), "memory_usage_bytes");
        assert_eq!(gauge("duration", "s"), "duration_seconds");
        assert_eq!(gauge("uptime", "d"), "uptime_days");
        assert_eq!(gauge("heap", "MiBy"), "heap_mebibytes");
        assert_eq!(gauge("temperature", "Cel"), "temperature_celsius");
        assert_eq!(gauge("cpu", "%"), "cpu_percent");
        assert_eq!(
            gauge("custom_metric", "custom_unit"),
            "custom_metric_custom_unit"
        );
        assert_eq!(
            gauge("metric__with__underscores", "unit__with__underscores"),
            "metric_with_underscores_unit_with_underscores"
        );
    }

    #[test]
    fn per_units_become_per_suffixes() {
        assert_eq!(gauge("throughput", "By/s"), "throughput_bytes_per_second");
        assert_eq!(gauge("requests", "1/s"), "requests_per_second");
        assert_eq!(gauge("distance", "m/h"), "distance_meters_per_hour");
        assert_eq!(gauge("rate", "{packet}/mo"), "rate_per_month");
        assert_eq!(gauge("custom", "unit@x/chars"), "custom_unit_x_per_chars");
        assert_eq!(gauge("custom", "By/{custom}"), "custom_bytes");
    }

    #[test]
    fn annotations_are_dropped() {
        assert_eq!(gauge("custom_metric", "{custom}"), "custom_metric");
        assert_eq!(
            name(
                "http.server.active_requests",
                "{request}",
                MetricKind::Sum,
                false
            ),
            "http_server_active_requests"
        );
    }

    #[test]
    fn a_unit_already_in_the_name_is_not_repeated() {
        assert_eq!(gauge("response_time_seconds", "s"), "response_time_seconds");
        assert_eq!(
            gauge("process.memory.bytes.used", "By"),
            "process_memory_bytes_used"
        );
        assert_eq!(
            gauge("net.bytes_per_second", "By/s"),
            "net_bytes_per_second"
        );
        assert_eq!(
            name("otelcol_process_cpu_seconds", "s", MetricKind::Sum, true),
            "otelcol_process_cpu_seconds_total"
        );
    }

    #[test]
    fn monotonic_sums_end_in_total_once() {
        assert_eq!(
            name("requests", "", MetricKind::Sum, true),
            "requests_total"
        );
        assert_eq!(
            name("requests_total", "", MetricKind::Sum, true),
            "requests_total"
        );
        assert_eq!(name("items", "1", MetricKind::Sum, true), "items_total");
        assert_eq!(
            name("cpu_seconds_total", "s", MetricKind::Sum, true),
            "cpu_seconds_total"
        );
        assert_eq!(
            name("total.requests", "By", MetricKind::Sum, true),
            "requests_bytes_total",
            "the unit comes before the type suffix"
        );
        assert_eq!(
            name("queue.size", "", MetricKind::Sum, false),
            "queue_size",
            "non-monotonic sums get no _total"
        );
        assert_eq!(
            name("requests", "", MetricKind::Histogram, false),
            "requests",
            "histograms get no _total"
        );
    }

    #[test]
    fn unit_one_is_a_ratio_on_gauges_only() {
        assert_eq!(gauge("cpu_usage", "1"), "cpu_usage_ratio");
        assert_eq!(gauge("cpu_usage_ratio", "1"), "cpu_usage_ratio");
        assert_eq!(gauge("ratio.of.hits", "1"), "of_hits_ratio");
        assert_eq!(name("errors", "1", MetricKind::Sum, false), "errors");
        assert_eq!(name("sizes", "1", MetricKind::Histogram, false), "sizes");
    }

    #[test]
    fn family_names_come_from_the_descriptor() {
        let descriptor = MetricDescriptor {
            name: "http.server.request.duration".into(),
            description: String::new(),
            unit: "s".into(),
            kind: MetricKind::Histogram,
            temporality: Temporality::Cumulative,
            is_monotonic: false,
        };
        assert_eq!(
            family_name(&descriptor).as_deref(),
            Some("http_server_request_duration_seconds")
        );
        assert_eq!(
            family_metric_names("h", MetricKind::ExponentialHistogram),
            ["h_bucket", "h_sum", "h_count"]
        );
        assert_eq!(
            family_metric_names("s", MetricKind::Summary),
            ["s", "s_sum", "s_count"]
        );
        assert_eq!(family_metric_names("c", MetricKind::Sum), ["c"]);
    }

    #[test]
    fn types_follow_kind_and_monotonicity() {
        let mut descriptor = MetricDescriptor {
            name: "x".into(),
            description: String::new(),
            unit: String::new(),
            kind: MetricKind::Sum,
            temporality: Temporality::Delta,
            is_monotonic: true,
        };
        assert_eq!(PrometheusType::of(&descriptor), PrometheusType::Counter);
        descriptor.is_monotonic = false;
        assert_eq!(PrometheusType::of(&descriptor).as_str(), "gauge");
        descriptor.kind = MetricKind::ExponentialHistogram;
        assert_eq!(PrometheusType::of(&descriptor).as_str(), "histogram");
        descriptor.kind = MetricKind::Summary;
        assert_eq!(PrometheusType::of(&descriptor).as_str(), "summary");
    }

    #[test]
    fn metadata_units_are_spelled_out() {
        let descriptor = |unit: &str, kind| MetricDescriptor {
            name: "x".into(),
            description: String::new(),
            unit: unit.into(),
            kind,
            temporality: Temporality::Cumulative,
            is_monotonic: false,
        };
        assert_eq!(
            prometheus_unit(&descriptor("By/s", MetricKind::Gauge)),
            "bytes_per_second"
        );
        assert_eq!(
            prometheus_unit(&descriptor("ms", MetricKind::Histogram)),
            "milliseconds"
        );
        assert_eq!(
            prometheus_unit(&descriptor("1", MetricKind::Gauge)),
            "ratio"
        );
        assert_eq!(prometheus_unit(&descriptor("1", MetricKind::Sum)), "");
        assert_eq!(
            prometheus_unit(&descriptor("{request}", MetricKind::Sum)),
            ""
        );
    }
}
