//! The evaluator: fetch every selector's series (see [`super::plan`]), then evaluate the
//! expression over all steps at once. Instant vectors are held series by series, one optional
//! value per step; range vectors as samples with a window per step.
//!
//! Semantics follow Prometheus 2.x: an instant selector takes the newest sample in
//! `[t - lookback, t]` unless it is a staleness marker; a range selector `[r]` takes the
//! samples in `[t - r, t]` without staleness markers.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use promql_parser::parser::{
    AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, UnaryExpr, VectorSelector,
};

use super::error::PromqlError;
use super::plan::{FetchPlan, PlanContext, SelectorKey, duration_millis, selector_key};
use super::series::{Labels, Sample, Series, SeriesSource, is_stale};
use super::time::{at_millis, offset_millis};
use super::value::{InstantSample, QueryValue};
use super::{aggregate, binary, dialect, functions};

/// Bounds and settings of one evaluation.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// How far back an instant selector looks for a sample, ms (Prometheus: 5 minutes).
    pub lookback_ms: i64,
    /// Step of subqueries that name none, ms (Prometheus: the evaluation interval, 1 m).
    pub default_subquery_step_ms: i64,
    /// Most values (samples read plus step values computed) one node of the evaluation may
    /// hold.
    pub max_samples: usize,
    /// Most steps a range query may have (Prometheus: 11,000).
    pub max_steps: usize,
    /// When to give up.
    pub deadline: Option<Instant>,
    /// The longest window a range selector or subquery may span, ms (the tenant's
    /// `query_max_range_hours`); `None` for any.
    pub max_range_ms: Option<i64>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            lookback_ms: 5 * 60 * 1000,
            default_subquery_step_ms: 60 * 1000,
            max_samples: 50_000_000,
            max_steps: 11_000,
            deadline: None,
            max_range_ms: None,
        }
    }
}

/// Evaluates `query` at `time_ms`.
pub async fn instant_query<S: SeriesSource>(
    source: &S,
    query: &str,
    time_ms: i64,
    options: &QueryOptions,
) -> Result<QueryValue, PromqlError> {
    let expr = dialect::parse(query)?;
    let evaluator = Evaluator::prepare(source, &expr, time_ms, time_ms, options).await?;
    match evaluator.eval(&expr, &[time_ms])? {
        Value::Scalar(values) => Ok(QueryValue::Scalar {
            timestamp_ms: time_ms,
            value: values.first().copied().unwrap_or(f64::NAN),
        }),
        Value::String(value) => Ok(QueryValue::String {
            timestamp_ms: time_ms,
            value,
        }),
        Value::Vector(vector) => Ok(QueryValue::Vector(
            vector
                .into_iter()
                .filter_map(|series| {
                    let value = series.values.first().copied().flatten()?;
                    Some(InstantSample {
                        labels: series.labels,
                        timestamp_ms: time_ms,
                        value,
                    })
                })
                .collect(),
        )),
        Value::Matrix(range) => {
            let mut series: Vec<Series> = range
                .series
                .iter()
                .map(|one| Series {
                    labels: one.labels.clone(),
                    samples: range.window(one, 0).to_vec(),
                })
                .filter(|one| !one.samples.is_empty())
                .collect();
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(QueryValue::Matrix(series))
        }
    }
}

/// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms` (both included).
pub async fn range_query<S: SeriesSource>(
    source: &S,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    options: &QueryOptions,
) -> Result<QueryValue, PromqlError> {
    if step_ms <= 0 {
        return Err(PromqlError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end_ms < start_ms {
        return Err(PromqlError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let steps = (end_ms - start_ms) / step_ms + 1;
    if usize::try_from(steps).map_or(true, |steps| steps > options.max_steps) {
        return Err(PromqlError::BadData(format!(
            "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
            options.max_steps
        )));
    }
    let times: Vec<i64> = (0..steps).map(|i| start_ms + i * step_ms).collect();
    let expr = dialect::parse(query)?;
    let evaluator = Evaluator::prepare(source, &expr, start_ms, end_ms, options).await?;
    let series = match evaluator.eval(&expr, &times)? {
        Value::Scalar(values) => vec![scalar_series(&times, values)],
        Value::Vector(vector) => vector
            .into_iter()
            .map(|series| Series {
                samples: series.samples_at(&times),
                labels: series.labels,
            })
            .filter(|series| !series.samples.is_empty())
            .collect(),
        other => {
            return Err(PromqlError::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                other.type_name()
            )));
        }
    };
    let mut series = series;
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(QueryValue::Matrix(series))
}

/// An instant vector's series: its labels and a value per step, `None` where it has none.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StepSeries {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
}

impl StepSeries {
    /// The steps with a value as samples.
    fn samples_at(&self, times: &[i64]) -> Vec<Sample> {
        times
            .iter()
            .zip(&self.values)
            .filter_map(|(&timestamp_ms, value)| {
                value.map(|value| Sample {
                    timestamp_ms,
                    value,
                })
            })
            .collect()
    }
}

/// A range vector: series with their samples and, per step, the end of the window; the
/// window of step `i` is `[ends[i] - range_ms, ends[i]]`.
#[derive(Debug, Clone)]
pub(super) struct RangeVector {
    pub series: Vec<Series>,
    pub range_ms: i64,
    pub ends: Vec<i64>,
}

impl RangeVector {
    /// The samples of `series` in the window of step `step`.
    pub fn window<'a>(&self, series: &'a Series, step: usize) -> &'a [Sample] {
        let end = self.ends[step];
        let start = end - self.range_ms;
        let from = series.samples.partition_point(|s| s.timestamp_ms < start);
        let to = series.samples.partition_point(|s| s.timestamp_ms <= end);
        &series.samples[from..to.max(from)]
    }
}

/// A value during evaluation.
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// One number per step.
    Scalar(Vec<f64>),
    /// A string literal.
    String(String),
    /// An instant vector.
    Vector(Vec<StepSeries>),
    /// A range vector.
    Matrix(RangeVector),
}

impl Value {
    /// The PromQL type name, for errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Scalar(_) => "scalar",
            Self::String(_) => "string",
            Self::Vector(_) => "instant vector",
            Self::Matrix(_) => "range vector",
        }
    }
}

/// Evaluates one parsed query over the series fetched for it.
pub(super) struct Evaluator {
    data: HashMap<SelectorKey, Vec<Series>>,
    query_start: i64,
    query_end: i64,
    options: QueryOptions,
}

impl Evaluator {
    /// Fetches what `expr` needs when evaluated from `query_start` to `query_end`.
    async fn prepare<S: SeriesSource>(
        source: &S,
        expr: &Expr,
        query_start: i64,
        query_end: i64,
        options: &QueryOptions,
    ) -> Result<Self, PromqlError> {
        let plan = FetchPlan::of(
            expr,
            PlanContext {
                query_start,
                query_end,
                lookback_ms: options.lookback_ms,
                max_range_ms: options.max_range_ms,
            },
        )?;
        let mut data = HashMap::with_capacity(plan.selections.len());
        let mut held = 0usize;
        for (key, selection) in plan.selections {
            let mut series = source.select(&selection).await?;
            // Prometheus's storage selects series sorted by labels, which sets the order of
            // an instant query's answer.
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            held += series.iter().map(|s| s.samples.len()).sum::<usize>();
            if held > options.max_samples {
                return Err(PromqlError::TooManySamples("query loading"));
            }
            data.insert(key, series);
        }
        let evaluator = Self {
            data,
            query_start,
            query_end,
            options: options.clone(),
        };
        evaluator.check_deadline()?;
        Ok(evaluator)
    }

    /// Fails once the deadline has passed.
    pub fn check_deadline(&self) -> Result<(), PromqlError> {
        match self.options.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                Err(PromqlError::Timeout("query evaluation"))
            }
            _ => Ok(()),
        }
    }

    /// Fails when `series` series over `steps` steps are more values than allowed.
    pub fn check_size(&self, series: usize, steps: usize) -> Result<(), PromqlError> {
        if series.saturating_mul(steps) > self.options.max_samples {
            return Err(PromqlError::TooManySamples("expression evaluation"));
        }
        Ok(())
    }

    /// Evaluates `expr` at `times`.
    pub fn eval(&self, expr: &Expr, times: &[i64]) -> Result<Value, PromqlError> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(number) => Ok(Value::Scalar(vec![number.val; times.len()])),
            Expr::StringLiteral(string) => Ok(Value::String(string.val.clone())),
            Expr::Paren(paren) => self.eval(&paren.expr, times),
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.select_instant(vs, times, false)?)),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.select_range(ms, times)?)),
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq, times)?)),
            Expr::Unary(unary) => self.unary(unary, times),
            Expr::Binary(bin) => {
                let lhs = self.eval(&bin.lhs, times)?;
                let rhs = self.eval(&bin.rhs, times)?;
                binary::evaluate(bin, lhs, rhs)
            }
            Expr::Aggregate(agg) => aggregate::evaluate(self, agg, times),
            Expr::Call(call) => functions::call(self, call, times),
            Expr::Extension(_) => Err(PromqlError::Execution(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluation times of a selector or subquery after its `@` and `offset`.
    fn shifted(
        &self,
        times: &[i64],
        at: Option<&AtModifier>,
        offset: Option<&Offset>,
    ) -> Result<Vec<i64>, PromqlError> {
        let offset = offset_millis(offset)?;
        Ok(match at {
            Some(at) => {
                let t = at_millis(at, self.query_start, self.query_end)? - offset;
                vec![t; times.len()]
            }
            None => times.iter().map(|t| t - offset).collect(),
        })
    }

    fn fetched(&self, vs: &VectorSelector) -> Result<&[Series], PromqlError> {
        self.data
            .get(&selector_key(vs))
            .map(Vec::as_slice)
            .ok_or_else(|| PromqlError::Execution("selector was not planned (a bug)".into()))
    }

    /// An instant selector at `times`: per series, the newest sample within the lookback,
    /// unless it is a staleness marker. With `sample_times`, the values are the samples'
    /// times in seconds (for `timestamp()`).
    pub fn select_instant(
        &self,
        vs: &VectorSelector,
        times: &[i64],
        sample_times: bool,
    ) -> Result<Vec<StepSeries>, PromqlError> {
        let refs = self.shifted(times, vs.at.as_ref(), vs.offset.as_ref())?;
        let fetched = self.fetched(vs)?;
        self.check_size(fetched.len(), times.len())?;
        let lookback = self.options.lookback_ms;
        let mut out = Vec::with_capacity(fetched.len());
        for series in fetched {
            let values: Vec<Option<f64>> = refs
                .iter()
                .map(|&t| {
                    let at = series.samples.partition_point(|s| s.timestamp_ms <= t);
                    let sample = series.samples[..at].last()?;
                    if sample.timestamp_ms < t - lookback || is_stale(sample.value) {
                        return None;
                    }
                    Some(if sample_times {
                        sample.timestamp_ms as f64 / 1000.0
                    } else {
                        sample.value
                    })
                })
                .collect();
            if values.iter().any(Option::is_some) {
                out.push(StepSeries {
                    labels: series.labels.clone(),
                    values,
                });
            }
        }
        Ok(out)
    }

    fn select_range(&self, ms: &MatrixSelector, times: &[i64]) -> Result<RangeVector, PromqlError> {
        let ends = self.shifted(times, ms.vs.at.as_ref(), ms.vs.offset.as_ref())?;
        let series = self
            .fetched(&ms.vs)?
            .iter()
            .map(|series| Series {
                labels: series.labels.clone(),
                samples: series
                    .samples
                    .iter()
                    .filter(|s| !is_stale(s.value))
                    .copied()
                    .collect(),
            })
            .collect();
        Ok(RangeVector {
            series,
            range_ms: duration_millis(&ms.range)?,
            ends,
        })
    }

    fn subquery(&self, sq: &SubqueryExpr, times: &[i64]) -> Result<RangeVector, PromqlError> {
        let ends = self.shifted(times, sq.at.as_ref(), sq.offset.as_ref())?;
        let range_ms = duration_millis(&sq.range)?;
        let step_ms = match &sq.step {
            Some(step) => duration_millis(step)?,
            None => self.options.default_subquery_step_ms,
        };
        if step_ms <= 0 {
            return Err(PromqlError::BadData(
                "a subquery step must be positive".into(),
            ));
        }
        let first = ends.iter().copied().min().unwrap_or(0) - range_ms;
        let last = ends.iter().copied().max().unwrap_or(0);
        // The first multiple of the step at or after the window's start, as Prometheus aligns.
        let start = first.div_euclid(step_ms) * step_ms
            + if first.rem_euclid(step_ms) == 0 {
                0
            } else {
                step_ms
            };
        let count = if last < start {
            0
        } else {
            (last - start) / step_ms + 1
        };
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        self.check_size(1, count)?;
        let inner_times: Vec<i64> = (0..count as i64).map(|i| start + i * step_ms).collect();
        let series = match self.eval(&sq.expr, &inner_times)? {
            Value::Vector(vector) => vector
                .into_iter()
                .map(|series| Series {
                    samples: series
                        .samples_at(&inner_times)
                        .into_iter()
                        .filter(|s| !is_stale(s.value))
                        .collect(),
                    labels: series.labels,
                })
                .collect(),
            Value::Scalar(values) => vec![scalar_series(&inner_times, values)],
            other => {
                return Err(PromqlError::Execution(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )));
            }
        };
        Ok(RangeVector {
            series,
            range_ms,
            ends,
        })
    }

    fn unary(&self, unary: &UnaryExpr, times: &[i64]) -> Result<Value, PromqlError> {
        match self.eval(&unary.expr, times)? {
            Value::Scalar(values) => Ok(Value::Scalar(values.into_iter().map(|v| -v).collect())),
            Value::Vector(vector) => {
                let negated = vector
                    .into_iter()
                    .map(|series| StepSeries {
                        labels: series.labels.without_metric_name(),
                        values: series.values.into_iter().map(|v| v.map(|v| -v)).collect(),
                    })
                    .collect();
                Ok(Value::Vector(distinct_labels(negated)?))
            }
            other => Err(PromqlError::Execution(format!(
                "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                other.type_name()
            ))),
        }
    }
}

/// Fails when two series with a value share labels, at any steps: Prometheus checks the
/// whole result of a range-vector function and of unary minus this way (other operations
/// step by step, see [`merge_same_labels`]).
pub(super) fn distinct_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, PromqlError> {
    let mut seen: HashSet<&Labels> = HashSet::with_capacity(series.len());
    let duplicate = series
        .iter()
        .filter(|one| one.values.iter().any(Option::is_some))
        .any(|one| !seen.insert(&one.labels));
    if duplicate {
        return Err(PromqlError::Execution(
            "vector cannot contain metrics with the same labelset".into(),
        ));
    }
    Ok(series)
}

/// A scalar's value at each of `times` as one series without labels.
fn scalar_series(times: &[i64], values: Vec<f64>) -> Series {
    Series {
        labels: Labels::default(),
        samples: times
            .iter()
            .zip(values)
            .map(|(&timestamp_ms, value)| Sample {
                timestamp_ms,
                value,
            })
            .collect(),
    }
}

/// Joins series that share labels (after a name was dropped, say) into one; two values at
/// one step are an error, as in Prometheus.
pub(super) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, PromqlError> {
    let mut at: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for one in series {
        match at.get(&one.labels) {
            Some(&index) => {
                let target = &mut out[index];
                for (slot, value) in target.values.iter_mut().zip(one.values) {
                    if value.is_some() {
                        if slot.is_some() {
                            return Err(PromqlError::Execution(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        *slot = value;
                    }
                }
            }
            None => {
                at.insert(one.labels.clone(), out.len());
                out.push(one);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::MemorySource;

    fn source() -> MemorySource {
        let mut source = MemorySource::default();
        for (instance, step) in [("a", 1.0), ("b", 2.0)] {
            source.add(
                Labels::from_pairs([("__name__", "requests_total"), ("instance", instance)]),
                (0..=10).map(|i| Sample {
                    timestamp_ms: i * 60_000,
                    value: i as f64 * step * 60.0,
                }),
            );
        }
        source
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|runtime| runtime.block_on(future))
            .unwrap_or_else(|err| panic!("runtime: {err}"))
    }

    fn instant(query: &str, time_ms: i64) -> QueryValue {
        block_on(instant_query(
            &source(),
            query,
            time_ms,
            &QueryOptions::default(),
        ))
        .unwrap_or_else(|err| panic!("{query}: {err}"))
    }

    fn vector_values(value: QueryValue) -> Vec<(String, f64)> {
        let QueryValue::Vector(samples) = value else {
            panic!("not a vector: {value:?}");
        };
        let mut out: Vec<(String, f64)> = samples
            .into_iter()
            .map(|s| (s.labels.get("instance").to_owned(), s.value))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn rate_of_steady_counters() {
        let got = vector_values(instant("rate(requests_total[5m])", 600_000));
        assert_eq!(got, [("a".to_owned(), 1.0), ("b".to_owned(), 2.0)]);
    }

    #[test]
    fn sum_by_drops_other_labels() {
        let QueryValue::Vector(got) = instant("sum(requests_total)", 300_000) else {
            panic!("not a vector");
        };
        assert_eq!(got.len(), 1);
        assert!(got[0].labels.is_empty());
        assert_eq!(got[0].value, 900.0);
    }

    #[test]
    fn lookback_ends_five_minutes_after_the_last_sample() {
        assert_eq!(vector_values(instant("requests_total", 900_000)).len(), 2);
        assert!(vector_values(instant("requests_total", 900_001)).is_empty());
    }

    #[test]
    fn range_query_of_a_scalar_is_one_unlabelled_series() {
        let value = block_on(range_query(
            &source(),
            "1 + 1",
            0,
            120_000,
            60_000,
            &QueryOptions::default(),
        ))
        .unwrap_or_else(|err| panic!("{err}"));
        let QueryValue::Matrix(series) = value else {
            panic!("not a matrix");
        };
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].samples.len(), 3);
        assert!(series[0].samples.iter().all(|s| s.value == 2.0));
    }

    #[test]
    fn vector_matching_divides_series_with_equal_labels() {
        let got = vector_values(instant(
            "requests_total / on(instance) requests_total",
            300_000,
        ));
        assert_eq!(got, [("a".to_owned(), 1.0), ("b".to_owned(), 1.0)]);
    }
}
