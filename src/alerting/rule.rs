//! A loaded rule: its definition and its query ready to run, evaluated at one time over the
//! tenant's data (PromQL over metrics, LogQL metric queries over logs) into alert candidates
//! with their labels and annotations made as Prometheus makes them.

use std::collections::HashSet;
use std::sync::Arc;

use promql_parser::label::Matcher;
use skewer_query::logql::ast::MetricExpr;
use skewer_query::logql::{LogqlLimits, MetricRequest, MetricResult, run_metric_query};
use skewer_query::prometheus::StoreSource;
use skewer_query::promql::{QueryOptions, QueryValue, SeriesSource, instant_query};
use skewer_storage::Storage;
use skewer_storage::model::TenantId;
use skewer_storage::scan::ScanLimits;

use super::alert_state::AlertCandidate;
use super::labels::LabelSet;
use super::rule_file::{QueryLanguage, RuleDefinition, RuleKind};
use super::template::TemplateData;

/// The label naming an alert's rule.
pub const ALERT_NAME_LABEL: &str = "alertname";

enum RuleQuery {
    /// The expression and its selectors (where exemplars are looked for).
    Promql(String, Vec<Vec<Matcher>>),
    Logql(Box<MetricExpr>),
}

/// The annotation naming an example trace of an alert (an exemplar of its series).
pub const EXEMPLAR_TRACE_ANNOTATION: &str = "exemplar_trace_id";
/// The annotation linking that trace in skewer's UI.
pub const EXEMPLAR_URL_ANNOTATION: &str = "exemplar_trace_url";

/// The example trace of each alert looked up so far, by fingerprint (`None`: looked for,
/// none found; not looked for again).
pub type ExampleTraces = std::collections::HashMap<u64, Option<String>>;

/// How far back exemplars are looked for.
const EXEMPLAR_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// A rule ready to evaluate.
pub struct Rule {
    /// What the file says.
    pub definition: RuleDefinition,
    query: Option<RuleQuery>,
}

impl Rule {
    /// Prepares `definition` (already validated by the rule file reader).
    pub fn new(definition: RuleDefinition) -> Result<Self, String> {
        let query = match (definition.kind, definition.language) {
            (_, QueryLanguage::Promql) => {
                let selectors = skewer_query::promql::query_selectors(&definition.expr)
                    .map_err(|err| err.to_string())?;
                Some(RuleQuery::Promql(definition.expr.clone(), selectors))
            }
            (_, QueryLanguage::Logql) => {
                match skewer_query::logql::parse(&definition.expr).map_err(|e| e.to_string())? {
                    skewer_query::logql::ast::Expr::Metric(expr) => {
                        Some(RuleQuery::Logql(Box::new(expr)))
                    }
                    skewer_query::logql::ast::Expr::Log(_) => {
                        return Err("a LogQL rule needs a metric query".to_owned());
                    }
                }
            }
        };
        Ok(Self { definition, query })
    }

    /// Whether the rule is evaluated.
    pub fn is_evaluated(&self) -> bool {
        self.query.is_some()
    }

    /// Whether the rule records its results as a series instead of alerting on them.
    pub fn is_recording(&self) -> bool {
        self.definition.kind == RuleKind::Recording
    }

    /// The query's samples at `time_ms` over `tenant`'s data: labels and value each.
    pub async fn samples(
        &self,
        series: &impl SeriesSource,
        storage: &Arc<Storage>,
        tenant: &TenantId,
        limits: ScanLimits,
        time_ms: i64,
    ) -> Result<Vec<(LabelSet, f64)>, String> {
        match &self.query {
            None => Ok(Vec::new()),
            Some(RuleQuery::Promql(query, _)) => {
                let options = QueryOptions {
                    deadline: limits.deadline,
                    ..QueryOptions::default()
                };
                let value = instant_query(series, query, time_ms, &options)
                    .await
                    .map_err(|err| err.to_string())?;
                Ok(match value {
                    QueryValue::Vector(samples) => samples
                        .into_iter()
                        .map(|sample| {
                            let labels = sample
                                .labels
                                .iter()
                                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                                .collect();
                            (labels, sample.value)
                        })
                        .collect(),
                    QueryValue::Scalar { value, .. } => vec![(LabelSet::new(), value)],
                    other => {
                        return Err(format!(
                            "a rule needs a vector or a scalar, not {}",
                            kind_of(&other)
                        ));
                    }
                })
            }
            Some(RuleQuery::Logql(expr)) => {
                let time = u64::try_from(time_ms)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000);
                let request = MetricRequest {
                    start_unix_nano: time,
                    end_unix_nano: time,
                    step_nanos: 0,
                    instant: true,
                };
                let result =
                    run_metric_query(storage, tenant, expr, &request, &LogqlLimits::default())
                        .await
                        .map_err(|err| err.to_string())?;
                Ok(match result {
                    MetricResult::Scalar(value) => vec![(LabelSet::new(), value)],
                    MetricResult::Vector(samples) => samples
                        .into_iter()
                        .map(|(labels, value)| {
                            let labels = labels
                                .iter()
                                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                                .collect();
                            (labels, value)
                        })
                        .collect(),
                    MetricResult::Matrix(_) => {
                        return Err("an instant LogQL query answered a matrix".to_owned());
                    }
                })
            }
        }
    }

    /// Names an example trace on each candidate without one: the newest exemplar, recorded
    /// in the 5 minutes before `time_ms`, of a series the rule's selectors select whose labels
    /// agree with the candidate's (a label the series lacks, aggregated away, agrees). `known`
    /// holds the trace ids alerts already carry (by fingerprint); the store is read only when
    /// a candidate has none. PromQL rules only.
    pub async fn name_example_traces(
        &self,
        candidates: &mut [AlertCandidate],
        known: &mut ExampleTraces,
        source: &StoreSource<'_>,
        time_ms: i64,
        deadline: tokio::time::Instant,
        external_url: &str,
    ) {
        let Some(RuleQuery::Promql(_, selectors)) = &self.query else {
            return;
        };
        if self
            .definition
            .annotations
            .contains_key(EXEMPLAR_TRACE_ANNOTATION)
        {
            return;
        }
        let mut unknown = Vec::new();
        for (index, candidate) in candidates.iter_mut().enumerate() {
            match known.get(&super::labels::fingerprint(&candidate.labels)) {
                Some(Some(trace_id)) => set_example(candidate, trace_id, external_url),
                Some(None) => {}
                None => unknown.push(index),
            }
        }
        if unknown.is_empty() || selectors.is_empty() {
            return;
        }
        let lookup = source.exemplars(selectors, time_ms - EXEMPLAR_LOOKBACK_MS, time_ms);
        let Ok(Ok(found)) = tokio::time::timeout_at(deadline, lookup).await else {
            // Too slow or failed: these alerts go without, and are not looked up again.
            for index in unknown {
                known.insert(super::labels::fingerprint(&candidates[index].labels), None);
            }
            return;
        };
        for index in unknown {
            let candidate = &mut candidates[index];
            let newest = found
                .iter()
                .filter(|(series, _)| {
                    candidate.labels.iter().all(|(name, value)| {
                        let theirs = series.get(name);
                        theirs.is_empty() || theirs == value
                    })
                })
                .flat_map(|(_, exemplars)| exemplars.iter())
                .filter(|exemplar| exemplar.trace_id().is_some())
                .max_by(|a, b| a.timestamp_ms.total_cmp(&b.timestamp_ms));
            let trace_id = newest.and_then(|e| e.trace_id()).map(str::to_owned);
            if let Some(trace_id) = &trace_id {
                set_example(candidate, trace_id, external_url);
            }
            known.insert(super::labels::fingerprint(&candidate.labels), trace_id);
        }
    }

    /// The alerts `samples` make: the sample's labels without `__name__`, the rule's labels
    /// (expanded) and `alertname`; annotations expanded with the sample's labels and value.
    /// Two samples that end with the same labels are an error, as in Prometheus.
    /// The series a recording rule writes for its query's samples, labels sorted by name:
    /// each sample's labels without `__name__`, the rule's labels set (as Prometheus: not
    /// templated), and `__name__` the rule's name. Two samples ending with the same labels
    /// are an error, as in Prometheus.
    pub fn recorded_series(
        &self,
        samples: Vec<(LabelSet, f64)>,
    ) -> Result<Vec<(LabelSet, f64)>, String> {
        let mut seen = HashSet::with_capacity(samples.len());
        let mut series = Vec::with_capacity(samples.len());
        for (mut labels, value) in samples {
            labels.remove("__name__");
            for (name, template) in &self.definition.labels {
                labels.insert(name.clone(), template.source().to_owned());
            }
            labels.insert("__name__".to_owned(), self.definition.name.clone());
            if !seen.insert(super::labels::fingerprint(&labels)) {
                return Err(
                    "the query's result has two series with the same labels once the rule's \
                     labels are applied"
                        .to_owned(),
                );
            }
            series.push((labels, value));
        }
        Ok(series)
    }

    pub fn candidates(
        &self,
        samples: Vec<(LabelSet, f64)>,
        external_url: &str,
    ) -> Result<Vec<AlertCandidate>, String> {
        let mut seen = HashSet::with_capacity(samples.len());
        let mut candidates = Vec::with_capacity(samples.len());
        for (sample_labels, value) in samples {
            let data = TemplateData {
                labels: &sample_labels,
                value,
                external_url,
            };
            let mut labels = sample_labels.clone();
            labels.remove("__name__");
            for (name, template) in &self.definition.labels {
                let expanded = template.expand(&data);
                if expanded.is_empty() {
                    labels.remove(name);
                } else {
                    labels.insert(name.clone(), expanded);
                }
            }
            labels.insert(ALERT_NAME_LABEL.to_owned(), self.definition.name.clone());
            let annotations = self
                .definition
                .annotations
                .iter()
                .map(|(name, template)| (name.clone(), template.expand(&data)))
                .collect();
            if !seen.insert(super::labels::fingerprint(&labels)) {
                return Err(
                    "the query's result has two series with the same labels once the rule's \
                     labels are applied"
                        .to_owned(),
                );
            }
            candidates.push(AlertCandidate {
                labels,
                annotations,
                value,
            });
        }
        Ok(candidates)
    }
}

fn set_example(candidate: &mut AlertCandidate, trace_id: &str, external_url: &str) {
    candidate
        .annotations
        .insert(EXEMPLAR_TRACE_ANNOTATION.to_owned(), trace_id.to_owned());
    candidate.annotations.insert(
        EXEMPLAR_URL_ANNOTATION.to_owned(),
        format!("{external_url}/#/request/{trace_id}"),
    );
}

fn kind_of(value: &QueryValue) -> &'static str {
    match value {
        QueryValue::Scalar { .. } => "a scalar",
        QueryValue::String { .. } => "a string",
        QueryValue::Vector(_) => "a vector",
        _ => "a matrix",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::alerting::rule_file::parse_file;

    #[test]
    fn candidates_carry_rule_labels_alertname_and_annotations() {
        let groups = parse_file(
            Path::new("r.yml"),
            r#"groups:
  - name: g
    rules:
      - alert: Slow
        expr: latency > 1
        labels: {severity: page, service: "{{ $labels.job }}"}
        annotations: {summary: "{{ $labels.job }} takes {{ $value }}s"}
"#,
        )
        .expect("valid");
        let rule = Rule::new(groups[0].rules[0].clone()).expect("compiles");
        let sample: LabelSet = [("__name__", "latency"), ("job", "api")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let candidates = rule
            .candidates(vec![(sample.clone(), 2.5)], "http://x")
            .expect("one");
        let labels: Vec<(&str, &str)> = candidates[0]
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("alertname", "Slow"),
                ("job", "api"),
                ("service", "api"),
                ("severity", "page")
            ]
        );
        assert_eq!(candidates[0].annotations["summary"], "api takes 2.5s");
        let mut other = sample.clone();
        other.insert("__name__".into(), "other_latency".into());
        let duplicate = rule.candidates(vec![(sample, 1.0), (other, 1.0)], "http://x");
        assert!(
            duplicate.is_err(),
            "two series that differ only in their name make the same alert"
        );
    }

    #[test]
    fn recorded_series_take_the_rules_name_and_labels() {
        let groups = parse_file(
            Path::new("r.yml"),
            "groups:\n  - name: g\n    rules:\n      - record: job:errors:rate5m\n        expr: rate(errors[5m])\n        labels: {team: shop}\n",
        )
        .expect("valid");
        let rule = Rule::new(groups[0].rules[0].clone()).unwrap();
        assert!(rule.is_recording() && rule.is_evaluated());
        let sample = |job: &str, team: &str| -> LabelSet {
            [("__name__", "errors"), ("job", job), ("team", team)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        let series = rule
            .recorded_series(vec![(sample("api", "core"), 0.5)])
            .unwrap();
        let expected: LabelSet = [
            ("__name__", "job:errors:rate5m"),
            ("job", "api"),
            ("team", "shop"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(series, vec![(expected, 0.5)]);
        // Two results that the rule's labels make one series: an error, as in Prometheus.
        let clash =
            rule.recorded_series(vec![(sample("api", "a"), 1.0), (sample("api", "b"), 2.0)]);
        assert!(clash.unwrap_err().contains("same labels"));
    }
}
