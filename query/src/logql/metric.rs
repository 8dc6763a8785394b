//! Metric queries: range functions over log lines (or unwrapped label values), aggregations
//! across series and binary operators, evaluated at one time or at every step of a range.
//!
//! Each range function's lines are read once, over the whole span its steps need, into one
//! sample list per series (time, value); every step then takes its window `(t - offset -
//! range, t - offset]` from each list by binary search. A `sum` directly over an additive
//! range function (`count_over_time`, `rate`, `bytes_over_time`, `bytes_rate`,
//! `sum_over_time`) groups lines as they are read, so `sum by (service_name)` over lines that
//! each carry a trace id never holds a series per trace.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use skewer_storage::Storage;
use skewer_storage::log_store::{LogVisitor, ScanDirection, StreamSampleVisitor};
use skewer_storage::logs::streams::{LEVEL_LABEL, StreamLabels, is_stream_label};
use skewer_storage::model::{LogRecord, TenantId};

use super::LogqlLimits;
use super::ast::{
    BinaryOp, Grouping, LogExpr, MatchOp, MetricExpr, RangeOp, Stage, Unwrap, VectorMatching,
    VectorOp,
};
use super::error::LogqlError;
use super::labels::{ERROR_DETAILS_LABEL, ERROR_LABEL, Entry, Labels};
use super::pipeline::{run_pipeline, selector_matches, unwrap_value};
use super::pushdown::store_query;
use crate::QueryError;

const NANOS_PER_SECOND: f64 = 1e9;

/// When a metric query is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricRequest {
    /// First step, Unix ns.
    pub start_unix_nano: u64,
    /// Last step (inclusive when it falls on a step), Unix ns.
    pub end_unix_nano: u64,
    /// Step, ns; ignored for instant queries.
    pub step_nanos: u64,
    /// One evaluation at `end` (a vector) rather than every step (a matrix).
    pub instant: bool,
}

/// A metric query's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricResult {
    /// A number (instant queries of numbers only).
    Scalar(f64),
    /// One value per series at the evaluation time.
    Vector(Vec<(Labels, f64)>),
    /// Values per series at each step (time in Unix ns), series sorted by labels.
    Matrix(Vec<(Labels, Vec<(u64, f64)>)>),
}

/// The value of an expression at one step.
enum Value {
    Scalar(f64),
    Vector(Vec<(Labels, f64)>),
}

/// The samples a range function reads: one time-ordered list per series.
type SeriesSamples = Vec<(Labels, Vec<(u64, f64)>)>;

/// Runs a metric query.
pub async fn run_metric_query(
    storage: &Storage,
    tenant: &TenantId,
    expr: &MetricExpr,
    request: &MetricRequest,
    limits: &LogqlLimits,
) -> Result<MetricResult, QueryError> {
    let steps = step_times(request, limits)?;
    let (Some(&first), Some(&last)) = (steps.first(), steps.last()) else {
        return Ok(MetricResult::Matrix(Vec::new()));
    };
    let mut ranges: Vec<RangeNode<'_>> = Vec::new();
    collect_ranges(expr, None, &mut ranges);
    let mut data: HashMap<usize, SeriesSamples> = HashMap::new();
    for node in ranges {
        let (start, end) = node.scan_range(first, last);
        let query = store_query(node.log, start, end);
        let samples = if let Some(grouping) = node.stream_level_grouping() {
            let visitor = StreamRangeVisitor::new(&node, grouping, limits);
            storage
                .scan_log_stream_samples(tenant, query, visitor)
                .await?
                .finish()?
        } else {
            let visitor = RangeVisitor::new(&node, limits);
            storage
                .scan_logs(tenant, query, ScanDirection::Forward, visitor)
                .await?
                .finish()?
        };
        data.insert(node.address, samples);
    }
    Ok(evaluate(expr, request.instant, &steps, &data, limits)?)
}

/// Evaluates `expr` at `steps` over the samples read for its range functions.
fn evaluate(
    expr: &MetricExpr,
    instant: bool,
    steps: &[u64],
    data: &HashMap<usize, SeriesSamples>,
    limits: &LogqlLimits,
) -> Result<MetricResult, LogqlError> {
    let context = Context { data, limits };
    if instant {
        let time = steps.last().copied().unwrap_or(0);
        return Ok(match context.eval(expr, time)? {
            Value::Scalar(value) => MetricResult::Scalar(value),
            Value::Vector(samples) => MetricResult::Vector(samples),
        });
    }
    let mut series: HashMap<Labels, Vec<(u64, f64)>> = HashMap::new();
    for &time in steps {
        match context.eval(expr, time)? {
            Value::Scalar(value) => series
                .entry(Labels::default())
                .or_default()
                .push((time, value)),
            Value::Vector(samples) => {
                for (labels, value) in samples {
                    series.entry(labels).or_default().push((time, value));
                }
                if series.len() > limits.max_series {
                    return Err(too_many_series(limits));
                }
            }
        }
    }
    let mut matrix: Vec<(Labels, Vec<(u64, f64)>)> = series.into_iter().collect();
    matrix.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(MetricResult::Matrix(matrix))
}

fn step_times(request: &MetricRequest, limits: &LogqlLimits) -> Result<Vec<u64>, QueryError> {
    if request.instant {
        return Ok(vec![request.end_unix_nano]);
    }
    if request.step_nanos == 0 {
        return Err(QueryError::InvalidParameter {
            parameter: "step",
            reason: "must be positive".to_owned(),
        });
    }
    if request.end_unix_nano < request.start_unix_nano {
        return Err(QueryError::InvalidParameter {
            parameter: "end",
            reason: "the end is before the start".to_owned(),
        });
    }
    let count = (request.end_unix_nano - request.start_unix_nano) / request.step_nanos + 1;
    if count > limits.max_steps as u64 {
        return Err(QueryError::InvalidParameter {
            parameter: "step",
            reason: format!(
                "exceeded maximum resolution of {} points per series: increase the step or shorten the range",
                limits.max_steps
            ),
        });
    }
    Ok((0..count)
        .map(|i| request.start_unix_nano + i * request.step_nanos)
        .collect())
}

fn too_many_series(limits: &LogqlLimits) -> LogqlError {
    LogqlError::Execution(format!(
        "maximum of series ({}) reached for a single query: aggregate with sum by (...) or narrow the selector",
        limits.max_series
    ))
}

/// One range function of the query, and how its lines group into series as they are read.
struct RangeNode<'a> {
    address: usize,
    op: RangeOp,
    log: &'a LogExpr,
    range_nanos: u64,
    offset_nanos: u64,
    unwrap: Option<&'a Unwrap>,
    grouping: Option<Grouping>,
}

fn address(expr: &MetricExpr) -> usize {
    std::ptr::from_ref(expr) as usize
}

fn seconds_to_nanos(seconds: f64) -> u64 {
    (seconds * NANOS_PER_SECOND).round().max(0.0) as u64
}

/// Finds the range functions; `sum_grouping` is the grouping of a `sum` directly above.
fn collect_ranges<'a>(
    expr: &'a MetricExpr,
    sum_grouping: Option<Grouping>,
    found: &mut Vec<RangeNode<'a>>,
) {
    match expr {
        MetricExpr::Range {
            op,
            log,
            range,
            offset,
            unwrap,
            grouping,
            ..
        } => {
            let additive = matches!(
                op,
                RangeOp::CountOverTime
                    | RangeOp::Rate
                    | RangeOp::BytesOverTime
                    | RangeOp::BytesRate
                    | RangeOp::SumOverTime
            );
            let grouping = grouping
                .clone()
                .or_else(|| sum_grouping.filter(|_| additive));
            found.push(RangeNode {
                address: address(expr),
                op: *op,
                log,
                range_nanos: seconds_to_nanos(*range),
                offset_nanos: seconds_to_nanos(*offset),
                unwrap: unwrap.as_ref(),
                grouping,
            });
        }
        MetricExpr::Vector {
            op,
            grouping,
            inner,
            ..
        } => {
            let pushed = (*op == VectorOp::Sum).then(|| {
                grouping.clone().unwrap_or(Grouping {
                    without: false,
                    labels: Vec::new(),
                })
            });
            collect_ranges(inner, pushed, found);
        }
        MetricExpr::Binary { lhs, rhs, .. } => {
            collect_ranges(lhs, None, found);
            collect_ranges(rhs, None, found);
        }
        MetricExpr::Literal(_) | MetricExpr::Vector1(_) => {}
    }
}

/// The labels `grouping` keeps of `labels`.
fn group_labels(labels: &Labels, grouping: Option<&Grouping>) -> Labels {
    match grouping {
        None => labels.clone(),
        Some(grouping) => {
            let mut grouped = labels.clone();
            grouped.retain(|name| grouping.labels.iter().any(|l| l == name) != grouping.without);
            grouped
        }
    }
}

/// Reads a range function's samples.
struct RangeVisitor {
    log: Arc<LogExpr>,
    unwrap: Option<Unwrap>,
    bytes: bool,
    grouping: Option<Grouping>,
    max_series: usize,
    series: HashMap<Labels, Vec<(u64, f64)>>,
    error: Option<LogqlError>,
}

impl LogVisitor for RangeVisitor {
    fn visit(&mut self, record: &LogRecord) -> ControlFlow<()> {
        let mut entry = Entry::from_record(record);
        if !selector_matches(&self.log, &entry) || !run_pipeline(&self.log.pipeline, &mut entry) {
            return ControlFlow::Continue(());
        }
        let value = match &self.unwrap {
            Some(unwrap) => match unwrap_value(unwrap, &mut entry) {
                Some(value) => value,
                None => return ControlFlow::Continue(()),
            },
            None if self.bytes => entry.line.len() as f64,
            None => 1.0,
        };
        if let Some(error) = entry.label(ERROR_LABEL) {
            let mut labels = entry.all_labels();
            labels.remove(ERROR_DETAILS_LABEL);
            self.error = Some(LogqlError::Execution(format!(
                "pipeline error: '{error}' for series: '{}'. Use a label filter to intentionally skip this error (e.g. | __error__!=\"{error}\", or | __error__=\"\" to skip all errors); the filter may also follow unwrap",
                labels.to_selector()
            )));
            return ControlFlow::Break(());
        }
        let labels = group_labels(&entry.all_labels(), self.grouping.as_ref());
        let series_count = self.series.len();
        match self.series.get_mut(&labels) {
            Some(samples) => samples.push((entry.time_unix_nano, value)),
            None if series_count >= self.max_series => {
                self.error = Some(LogqlError::Execution(format!(
                    "maximum of series ({}) reached for a single query: aggregate with sum by (...) or drop labels with | drop",
                    self.max_series
                )));
                return ControlFlow::Break(());
            }
            None => {
                self.series
                    .insert(labels, vec![(entry.time_unix_nano, value)]);
            }
        }
        ControlFlow::Continue(())
    }
}

impl RangeNode<'_> {
    /// The grouping of the node's series when they depend on stream labels alone, so the
    /// store's stream-level scan (index columns, no record loaded) can feed it: a function
    /// of line counts or lengths, no pipeline, grouped by stream labels only. `absent_over_time`
    /// needs only whether lines exist, so one group does.
    fn stream_level_grouping(&self) -> Option<Grouping> {
        // `| drop` of labels the grouping does not keep changes nothing here (Grafana's log
        // volume query drops `__error__`).
        let harmless = |stage: &Stage| match stage {
            Stage::Drop(names) => self
                .grouping
                .as_ref()
                .is_none_or(|grouping| !names.iter().any(|name| grouping.labels.contains(name))),
            _ => false,
        };
        if !self.log.pipeline.iter().all(harmless) || self.unwrap.is_some() {
            return None;
        }
        if self.op == RangeOp::AbsentOverTime {
            return Some(Grouping {
                without: false,
                labels: Vec::new(),
            });
        }
        let counts_lines = matches!(
            self.op,
            RangeOp::CountOverTime | RangeOp::Rate | RangeOp::BytesOverTime | RangeOp::BytesRate
        );
        let grouping = self.grouping.as_ref()?;
        (counts_lines
            && !grouping.without
            && grouping
                .labels
                .iter()
                .all(|label| is_stream_label(label) || label == LEVEL_LABEL))
        .then(|| grouping.clone())
    }

    /// The span of all steps' windows, `(first - offset - range, last - offset]`, as a
    /// half-open `[start, end)` of Unix ns.
    fn scan_range(&self, first_step: u64, last_step: u64) -> (u64, u64) {
        let start = first_step
            .saturating_sub(self.offset_nanos)
            .saturating_sub(self.range_nanos)
            .saturating_add(1);
        let end = last_step
            .saturating_sub(self.offset_nanos)
            .saturating_add(1);
        (start, end)
    }
}

impl RangeVisitor {
    fn new(node: &RangeNode<'_>, limits: &LogqlLimits) -> Self {
        Self {
            log: Arc::new(node.log.clone()),
            unwrap: node.unwrap.cloned(),
            bytes: matches!(node.op, RangeOp::BytesOverTime | RangeOp::BytesRate),
            grouping: node.grouping.clone(),
            max_series: limits.max_series,
            series: HashMap::new(),
            error: None,
        }
    }

    /// The series read, sorted by labels, or why reading stopped.
    fn finish(self) -> Result<SeriesSamples, LogqlError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut series: SeriesSamples = self.series.into_iter().collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(series)
    }
}

/// A stream (by the address of its shared labels) and a level.
type StreamLevel = (usize, &'static str);

/// Reads a stream-level range function's samples: one (time, 1 or line bytes) per line,
/// grouped by the stream labels the grouping keeps.
struct StreamRangeVisitor {
    selector: Vec<super::ast::Matcher>,
    grouping: Grouping,
    bytes: bool,
    max_series: usize,
    /// Per stream and level seen (by the stream's shared labels, kept alive so the address
    /// stays unique): the index of its series, or `None` when the selector rejects it.
    by_stream: HashMap<StreamLevel, (Arc<StreamLabels>, Option<usize>)>,
    series: Vec<(Labels, Vec<(u64, f64)>)>,
    positions: HashMap<Labels, usize>,
    error: Option<LogqlError>,
}

impl StreamRangeVisitor {
    fn new(node: &RangeNode<'_>, grouping: Grouping, limits: &LogqlLimits) -> Self {
        Self {
            selector: node.log.selector.clone(),
            grouping,
            bytes: matches!(node.op, RangeOp::BytesOverTime | RangeOp::BytesRate),
            max_series: limits.max_series,
            by_stream: HashMap::new(),
            series: Vec::new(),
            positions: HashMap::new(),
            error: None,
        }
    }

    /// The series of `stream`, `None` if the selector rejects it or the series limit is hit.
    fn series_of(&mut self, stream: &Arc<StreamLabels>, level: &'static str) -> Option<usize> {
        let key = (Arc::as_ptr(stream) as usize, level);
        if let Some((_, position)) = self.by_stream.get(&key) {
            return *position;
        }
        let mut labels = Labels::from_sorted(stream.as_ref().clone());
        let admitted = self
            .selector
            .iter()
            .all(|matcher| matcher.matches(labels.get(&matcher.name).unwrap_or("")));
        let position = if admitted {
            labels.insert(LEVEL_LABEL.to_owned(), level.to_owned());
            let grouped = group_labels(&labels, Some(&self.grouping));
            match self.positions.get(&grouped) {
                Some(&position) => Some(position),
                None if self.series.len() >= self.max_series => {
                    self.error.get_or_insert_with(|| {
                        LogqlError::Execution(format!(
                            "maximum of series ({}) reached for a single query",
                            self.max_series
                        ))
                    });
                    None
                }
                None => {
                    self.series.push((grouped.clone(), Vec::new()));
                    self.positions.insert(grouped, self.series.len() - 1);
                    Some(self.series.len() - 1)
                }
            }
        } else {
            None
        };
        self.by_stream.insert(key, (Arc::clone(stream), position));
        position
    }

    /// The series read, each in time order, sorted by labels.
    fn finish(self) -> Result<SeriesSamples, LogqlError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut series = self.series;
        for (_, samples) in &mut series {
            samples.sort_unstable_by_key(|&(time, _)| time);
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(series)
    }
}

impl StreamSampleVisitor for StreamRangeVisitor {
    fn visit(
        &mut self,
        stream: &Arc<StreamLabels>,
        time_unix_nano: u64,
        line_bytes: u64,
        level: &'static str,
    ) {
        if let Some(position) = self.series_of(stream, level) {
            let value = if self.bytes { line_bytes as f64 } else { 1.0 };
            self.series[position].1.push((time_unix_nano, value));
        }
    }
}

struct Context<'a> {
    data: &'a HashMap<usize, SeriesSamples>,
    limits: &'a LogqlLimits,
}

impl Context<'_> {
    fn eval(&self, expr: &MetricExpr, time: u64) -> Result<Value, LogqlError> {
        match expr {
            MetricExpr::Literal(value) => Ok(Value::Scalar(*value)),
            MetricExpr::Vector1(value) => Ok(Value::Vector(vec![(Labels::default(), *value)])),
            MetricExpr::Range {
                op,
                log,
                range,
                offset,
                parameter,
                ..
            } => {
                let empty = Vec::new();
                let series = self.data.get(&address(expr)).unwrap_or(&empty);
                let window_end = time.saturating_sub(seconds_to_nanos(*offset));
                let window_start = window_end.saturating_sub(seconds_to_nanos(*range));
                let mut samples = Vec::new();
                let mut any_in_window = false;
                for (labels, points) in series {
                    let first = points.partition_point(|&(t, _)| t <= window_start);
                    let after = points.partition_point(|&(t, _)| t <= window_end);
                    any_in_window |= first < after;
                    if first < after
                        && let Some(value) =
                            window_value(*op, &points[first..after], *range, *parameter)
                    {
                        samples.push((labels.clone(), value));
                    }
                }
                if *op == RangeOp::AbsentOverTime {
                    return Ok(Value::Vector(if !any_in_window {
                        vec![(absent_labels(log), 1.0)]
                    } else {
                        Vec::new()
                    }));
                }
                Ok(Value::Vector(samples))
            }
            MetricExpr::Vector {
                op,
                grouping,
                parameter,
                inner,
            } => {
                let Value::Vector(samples) = self.eval(inner, time)? else {
                    return Err(LogqlError::Execution(
                        "aggregations need a vector, not a scalar".to_owned(),
                    ));
                };
                let aggregated = aggregate(*op, grouping.as_ref(), *parameter, samples);
                if aggregated.len() > self.limits.max_series {
                    return Err(too_many_series(self.limits));
                }
                Ok(Value::Vector(aggregated))
            }
            MetricExpr::Binary {
                op,
                return_bool,
                matching,
                lhs,
                rhs,
            } => {
                let left = self.eval(lhs, time)?;
                let right = self.eval(rhs, time)?;
                binary(*op, *return_bool, matching.as_ref(), left, right)
            }
        }
    }
}

/// The labels `absent_over_time` reports: the selector's equality matchers.
fn absent_labels(log: &LogExpr) -> Labels {
    Labels::from_pairs(
        log.selector
            .iter()
            .filter(|m| m.op == MatchOp::Equal)
            .map(|m| (m.name.clone(), m.value.clone())),
    )
}

/// A range function over the samples of one window (never empty).
fn window_value(
    op: RangeOp,
    samples: &[(u64, f64)],
    range_seconds: f64,
    parameter: Option<f64>,
) -> Option<f64> {
    let values = samples.iter().map(|&(_, v)| v);
    let count = samples.len() as f64;
    let sum: f64 = values.clone().sum();
    Some(match op {
        RangeOp::CountOverTime => count,
        RangeOp::Rate | RangeOp::BytesRate => sum / range_seconds,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum,
        RangeOp::AbsentOverTime => return None,
        RangeOp::AvgOverTime => sum / count,
        RangeOp::MinOverTime => values.fold(f64::INFINITY, f64::min),
        RangeOp::MaxOverTime => values.fold(f64::NEG_INFINITY, f64::max),
        RangeOp::FirstOverTime => samples.first()?.1,
        RangeOp::LastOverTime => samples.last()?.1,
        RangeOp::StdvarOverTime => variance(values),
        RangeOp::StddevOverTime => variance(values).sqrt(),
        RangeOp::QuantileOverTime => quantile(parameter.unwrap_or(0.5), values.collect()),
    })
}

fn variance(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let count = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / count;
    values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / count
}

/// The φ-quantile with linear interpolation, as Prometheus computes `quantile`.
fn quantile(phi: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let rank = phi * (values.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

fn aggregate(
    op: VectorOp,
    grouping: Option<&Grouping>,
    parameter: Option<f64>,
    samples: Vec<(Labels, f64)>,
) -> Vec<(Labels, f64)> {
    let all = Grouping {
        without: false,
        labels: Vec::new(),
    };
    let grouping = grouping.unwrap_or(&all);
    match op {
        VectorOp::Sort | VectorOp::SortDesc => {
            let mut sorted = samples;
            sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
            if op == VectorOp::SortDesc {
                sorted.reverse();
            }
            return sorted;
        }
        VectorOp::Topk | VectorOp::Bottomk => {
            let k = parameter.unwrap_or(1.0) as usize;
            let mut groups: HashMap<Labels, Vec<(Labels, f64)>> = HashMap::new();
            for (labels, value) in samples {
                groups
                    .entry(group_labels(&labels, Some(grouping)))
                    .or_default()
                    .push((labels, value));
            }
            let mut kept = Vec::new();
            for (_, mut members) in groups {
                members.retain(|(_, v)| !v.is_nan());
                members.sort_by(|a, b| b.1.total_cmp(&a.1));
                if op == VectorOp::Bottomk {
                    members.reverse();
                }
                members.truncate(k);
                kept.extend(members);
            }
            return kept;
        }
        _ => {}
    }
    let mut groups: HashMap<Labels, Vec<f64>> = HashMap::new();
    for (labels, value) in samples {
        groups
            .entry(group_labels(&labels, Some(grouping)))
            .or_default()
            .push(value);
    }
    groups
        .into_iter()
        .map(|(labels, values)| {
            let count = values.len() as f64;
            let sum: f64 = values.iter().sum();
            let value = match op {
                VectorOp::Sum => sum,
                VectorOp::Avg => sum / count,
                VectorOp::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                VectorOp::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                VectorOp::Count => count,
                VectorOp::Stdvar => variance(values.iter().copied()),
                VectorOp::Stddev => variance(values.iter().copied()).sqrt(),
                VectorOp::Topk | VectorOp::Bottomk | VectorOp::Sort | VectorOp::SortDesc => sum,
            };
            (labels, value)
        })
        .collect()
}

/// `left op right` for numbers: arithmetic, or a comparison as 0/1 (`bool`) or a filter.
fn arithmetic(op: BinaryOp, left: f64, right: f64) -> Option<f64> {
    Some(match op {
        BinaryOp::Add => left + right,
        BinaryOp::Sub => left - right,
        BinaryOp::Mul => left * right,
        BinaryOp::Div => left / right,
        BinaryOp::Mod => left % right,
        BinaryOp::Pow => left.powf(right),
        BinaryOp::Compare(_) | BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => return None,
    })
}

/// The value `op` gives a pair of samples, `None` when a comparison filters the pair out.
/// `keep_left` says which side's value a passing comparison keeps.
fn combine(op: BinaryOp, return_bool: bool, left: f64, right: f64, keep_left: bool) -> Option<f64> {
    match op {
        BinaryOp::Compare(comparison) => {
            let holds = comparison.holds(left, right);
            if return_bool {
                Some(if holds { 1.0 } else { 0.0 })
            } else if holds {
                Some(if keep_left { left } else { right })
            } else {
                None
            }
        }
        _ => arithmetic(op, left, right),
    }
}

fn signature(labels: &Labels, matching: Option<&VectorMatching>) -> Labels {
    match matching {
        None => labels.clone(),
        Some(matching) => {
            let mut signature = labels.clone();
            signature.retain(|name| matching.labels.iter().any(|l| l == name) == matching.on);
            signature
        }
    }
}

fn binary(
    op: BinaryOp,
    return_bool: bool,
    matching: Option<&VectorMatching>,
    left: Value,
    right: Value,
) -> Result<Value, LogqlError> {
    match (left, right) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            combine(op, true, l, r, true).unwrap_or(f64::NAN),
        )),
        (Value::Vector(samples), Value::Scalar(r)) => Ok(Value::Vector(
            samples
                .into_iter()
                .filter_map(|(labels, l)| combine(op, return_bool, l, r, true).map(|v| (labels, v)))
                .collect(),
        )),
        (Value::Scalar(l), Value::Vector(samples)) => Ok(Value::Vector(
            samples
                .into_iter()
                .filter_map(|(labels, r)| {
                    combine(op, return_bool, l, r, false).map(|v| (labels, v))
                })
                .collect(),
        )),
        (Value::Vector(left), Value::Vector(right)) => {
            if op.is_set_operator() {
                return Ok(Value::Vector(set_operation(op, matching, left, right)));
            }
            let right_by_signature = unique_signatures(&right, matching, "right")?;
            unique_signatures(&left, matching, "left")?;
            // One-to-one matching: the result keeps the matched labels (those of `on`, or all
            // but those of `ignoring`), as Prometheus does.
            Ok(Value::Vector(
                left.into_iter()
                    .filter_map(|(labels, l)| {
                        let key = signature(&labels, matching);
                        let r = *right_by_signature.get(&key)?;
                        combine(op, return_bool, l, r, true).map(|value| (key, value))
                    })
                    .collect(),
            ))
        }
    }
}

/// `and`, `or`, `unless`: series chosen by whether their signature is on the other side.
fn set_operation(
    op: BinaryOp,
    matching: Option<&VectorMatching>,
    left: Vec<(Labels, f64)>,
    right: Vec<(Labels, f64)>,
) -> Vec<(Labels, f64)> {
    let signatures = |samples: &[(Labels, f64)]| -> std::collections::HashSet<Labels> {
        samples
            .iter()
            .map(|(labels, _)| signature(labels, matching))
            .collect()
    };
    match op {
        BinaryOp::And => {
            let right = signatures(&right);
            left.into_iter()
                .filter(|(labels, _)| right.contains(&signature(labels, matching)))
                .collect()
        }
        BinaryOp::Unless => {
            let right = signatures(&right);
            left.into_iter()
                .filter(|(labels, _)| !right.contains(&signature(labels, matching)))
                .collect()
        }
        _ => {
            let in_left = signatures(&left);
            let mut result = left;
            result.extend(
                right
                    .into_iter()
                    .filter(|(labels, _)| !in_left.contains(&signature(labels, matching))),
            );
            result
        }
    }
}

fn unique_signatures(
    samples: &[(Labels, f64)],
    matching: Option<&VectorMatching>,
    side: &str,
) -> Result<HashMap<Labels, f64>, LogqlError> {
    let mut by_signature = HashMap::with_capacity(samples.len());
    for (labels, value) in samples {
        if by_signature
            .insert(signature(labels, matching), *value)
            .is_some()
        {
            return Err(LogqlError::Execution(format!(
                "found duplicate series for the match group {} on the {side} side of the operation: many-to-one matching must be explicit (group_left/group_right), which skewer does not support",
                signature(labels, matching).to_selector()
            )));
        }
    }
    Ok(by_signature)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use skewer_storage::logs::streams::{detected_level, line_bytes, stream_labels};
    use skewer_storage::model::{Attribute, AttributeValue, InstrumentationScope, Resource};

    use super::*;
    use crate::logql::ast::Expr;
    use crate::logql::parse;

    const T0: u64 = 1_700_000_000;
    const SECOND: u64 = 1_000_000_000;

    fn record(service: &str, second: u64, line: &str, severity_number: i32) -> LogRecord {
        LogRecord {
            resource: Arc::new(Resource {
                attributes: vec![Attribute::string("service.name", service)],
                ..Resource::default()
            }),
            scope: Arc::new(InstrumentationScope::default()),
            time_unix_nano: (T0 + second) * SECOND,
            observed_time_unix_nano: 0,
            severity_number,
            severity_text: String::new(),
            body: AttributeValue::String(line.to_owned()),
            attributes: vec![Attribute::string("request.id", format!("r{second}"))],
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            correlation_id: None,
        }
    }

    fn records() -> Vec<LogRecord> {
        vec![
            record("api", 10, "GET /a status=200 took=10ms", 9),
            record("web", 15, "render ok", 9),
            record("api", 20, "GET /b status=200 took=30ms", 9),
            record("web", 25, "render ok", 9),
            record("api", 30, "POST /c status=500 took=1.5s", 17),
        ]
    }

    /// Evaluates `query` over `records` at steps `start..=end` (seconds after T0), the way
    /// the store would feed it.
    fn eval_with(
        records: &[LogRecord],
        query: &str,
        (start, end, step): (u64, u64, u64),
        instant: bool,
        limits: &LogqlLimits,
    ) -> Result<MetricResult, LogqlError> {
        let Expr::Metric(expr) = parse(query).unwrap() else {
            panic!("not a metric query: {query}");
        };
        let request = MetricRequest {
            start_unix_nano: (T0 + start) * SECOND,
            end_unix_nano: (T0 + end) * SECOND,
            step_nanos: step * SECOND,
            instant,
        };
        let steps = step_times(&request, limits).unwrap();
        let mut ranges = Vec::new();
        collect_ranges(&expr, None, &mut ranges);
        let mut data = HashMap::new();
        for node in ranges {
            let (from, to) = node.scan_range(steps[0], *steps.last().unwrap());
            let in_range = records.iter().filter(|record| {
                let time = record.effective_time_unix_nano();
                time >= from && time < to
            });
            // The path the store would take: stream-level when the node allows it.
            let samples = if let Some(grouping) = node.stream_level_grouping() {
                let mut visitor = StreamRangeVisitor::new(&node, grouping, limits);
                let mut streams = HashMap::new();
                for record in in_range {
                    let stream = streams
                        .entry(Arc::as_ptr(&record.resource) as usize)
                        .or_insert_with(|| Arc::new(stream_labels(&record.resource)));
                    let time = record.effective_time_unix_nano();
                    let level = detected_level(record.severity_number, &record.severity_text);
                    visitor.visit(stream, time, line_bytes(&record.body), level);
                }
                visitor.finish()?
            } else {
                let mut visitor = RangeVisitor::new(&node, limits);
                for record in in_range {
                    if visitor.visit(record).is_break() {
                        break;
                    }
                }
                visitor.finish()?
            };
            data.insert(node.address, samples);
        }
        evaluate(&expr, instant, &steps, &data, limits)
    }

    /// An instant query at `at` seconds, as `labels => value` lines, sorted.
    fn instant(query: &str, at: u64) -> Vec<String> {
        match eval_with(
            &records(),
            query,
            (at, at, 1),
            true,
            &LogqlLimits::default(),
        )
        .unwrap()
        {
            MetricResult::Vector(samples) => {
                let mut lines: Vec<String> = samples
                    .iter()
                    .map(|(labels, value)| format!("{} => {value}", labels.to_selector()))
                    .collect();
                lines.sort();
                lines
            }
            MetricResult::Scalar(value) => vec![format!("scalar {value}")],
            MetricResult::Matrix(_) => panic!("matrix for an instant query"),
        }
    }

    #[test]
    fn range_functions_count_lines_bytes_and_values_in_left_open_windows() {
        assert_eq!(
            instant(
                r#"sum by (service_name) (count_over_time({service_name=~".+"}[20s]))"#,
                30
            ),
            [
                r#"{service_name="api"} => 2"#,
                r#"{service_name="web"} => 2"#
            ]
        );
        // The window is left-open: the line at 10 s is out of (10 s, 30 s].
        assert_eq!(
            instant(r#"sum(rate({service_name="api"}[20s]))"#, 30),
            ["{} => 0.1"]
        );
        assert_eq!(
            instant(r#"sum(bytes_over_time({service_name="web"}[1m]))"#, 30),
            ["{} => 18"]
        );
        assert_eq!(
            instant(
                r#"avg_over_time({service_name="api"} | logfmt | unwrap duration(took) [1m]) by (status)"#,
                30
            ),
            [r#"{status="200"} => 0.02"#, r#"{status="500"} => 1.5"#]
        );
        assert_eq!(
            instant(
                r#"max_over_time({service_name="api"} | logfmt | unwrap status [1m]) by (service_name)"#,
                30
            ),
            [r#"{service_name="api"} => 500"#]
        );
        assert_eq!(
            instant(r#"absent_over_time({service_name="nope"}[1m])"#, 30),
            [r#"{service_name="nope"} => 1"#]
        );
        assert!(instant(r#"absent_over_time({service_name="api"}[1m])"#, 30).is_empty());
    }

    #[test]
    fn without_aggregation_every_label_makes_a_series() {
        let found = instant(r#"count_over_time({service_name="api"} |= "GET" [1m])"#, 30);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains(r#"request_id="r10""#), "{found:?}");
        assert!(found[0].contains(r#"detected_level="info""#), "{found:?}");
    }

    #[test]
    fn aggregations_and_binary_operators_follow_promql() {
        let by_service = r#"sum by (service_name) (count_over_time({service_name=~".+"}[1m]))"#;
        assert_eq!(
            instant(&format!("{by_service} > 2"), 30),
            [r#"{service_name="api"} => 3"#]
        );
        assert_eq!(
            instant(&format!("{by_service} > bool 2"), 30),
            [
                r#"{service_name="api"} => 1"#,
                r#"{service_name="web"} => 0"#
            ]
        );
        assert_eq!(
            instant(&format!("topk(1, {by_service})"), 30),
            [r#"{service_name="api"} => 3"#]
        );
        assert_eq!(
            instant(
                &format!("{by_service} / on (service_name) {by_service}"),
                30
            ),
            [
                r#"{service_name="api"} => 1"#,
                r#"{service_name="web"} => 1"#
            ]
        );
        assert_eq!(
            instant(
                r#"sum(count_over_time({service_name="api"} | logfmt | status >= 500 [1m])) * 100"#,
                30
            ),
            ["{} => 100"]
        );
        assert_eq!(
            instant(&format!("{by_service} unless {by_service} < 3"), 30),
            [r#"{service_name="api"} => 3"#]
        );
        assert_eq!(
            instant(
                r#"sum by (detected_level) (count_over_time({service_name="api"} | drop __error__ [1m]))"#,
                30
            ),
            [
                r#"{detected_level="error"} => 1"#,
                r#"{detected_level="info"} => 2"#
            ]
        );
        assert_eq!(instant("vector(1) + vector(1)", 30), ["{} => 2"]);
        assert_eq!(instant("2 * 3 + 1", 30), ["scalar 7"]);
        assert_eq!(instant(&format!("count({by_service})"), 30), ["{} => 2"]);
        assert_eq!(instant(&format!("avg({by_service})"), 30), ["{} => 2.5"]);
        assert_eq!(instant(&format!("min({by_service})"), 30), ["{} => 2"]);
        assert_eq!(instant(&format!("max({by_service})"), 30), ["{} => 3"]);
        // By service and level: api info 2, api error 1, web info 2.
        let by_level =
            r#"sum by (service_name, detected_level) (count_over_time({service_name=~".+"}[1m]))"#;
        assert_eq!(
            instant(&format!("avg by (detected_level) ({by_level})"), 30),
            [
                r#"{detected_level="error"} => 1"#,
                r#"{detected_level="info"} => 2"#
            ]
        );
        assert_eq!(
            instant(&format!("min by (service_name) ({by_level})"), 30),
            [
                r#"{service_name="api"} => 1"#,
                r#"{service_name="web"} => 2"#
            ]
        );
        assert_eq!(
            instant(&format!("max without (service_name) ({by_level})"), 30),
            [
                r#"{detected_level="error"} => 1"#,
                r#"{detected_level="info"} => 2"#
            ]
        );
    }

    #[test]
    fn line_counts_by_stream_labels_read_the_stream_level_scan() {
        let stream_level = |query: &str| {
            let Expr::Metric(expr) = parse(query).unwrap() else {
                panic!("not a metric query");
            };
            let mut ranges = Vec::new();
            collect_ranges(&expr, None, &mut ranges);
            ranges[0].stream_level_grouping().is_some()
        };
        assert!(stream_level(
            r#"sum by (service_name) (rate({service_name=~".+"}[1m]))"#
        ));
        assert!(stream_level(
            r#"sum(bytes_over_time({k8s_pod_name="p"}[1m]))"#
        ));
        assert!(stream_level(r#"absent_over_time({service_name="x"}[1m])"#));
        // Grafana's log volume query: levels are a column too.
        assert!(stream_level(
            r#"sum by (detected_level) (count_over_time({a="b"} | drop __error__ [1m]))"#
        ));
        // Anything that needs a record's line or metadata reads the records.
        assert!(!stream_level(
            r#"sum by (trace_id) (count_over_time({a="b"}[1m]))"#
        ));
        assert!(!stream_level(
            r#"sum by (detected_level) (count_over_time({a="b"} | drop detected_level [1m]))"#
        ));
        assert!(!stream_level(
            r#"sum(count_over_time({a="b"} |= "x" [1m]))"#
        ));
        assert!(!stream_level(
            r#"max by (service_name) (count_over_time({a="b"}[1m]))"#
        ));
        assert!(!stream_level(r#"count_over_time({a="b"}[1m])"#));
        assert!(!stream_level(
            r#"sum without (x) (count_over_time({a="b"}[1m]))"#
        ));
    }

    #[test]
    fn range_queries_give_a_value_per_step_where_lines_exist() {
        let result = eval_with(
            &records(),
            r#"sum by (service_name) (count_over_time({service_name="api"}[10s]))"#,
            (10, 40, 10),
            false,
            &LogqlLimits::default(),
        )
        .unwrap();
        let MetricResult::Matrix(series) = result else {
            panic!("not a matrix");
        };
        assert_eq!(series.len(), 1);
        let points: Vec<(u64, f64)> = series[0]
            .1
            .iter()
            .map(|&(t, v)| (t / SECOND - T0, v))
            .collect();
        assert_eq!(points, [(10, 1.0), (20, 1.0), (30, 1.0)]);
    }

    #[test]
    fn pipeline_errors_and_limits_fail_the_query_with_advice() {
        let error = eval_with(
            &records(),
            r#"sum(count_over_time({service_name="api"} | json [1m]))"#,
            (30, 30, 1),
            true,
            &LogqlLimits::default(),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("pipeline error: 'JSONParserErr'"),
            "{error}"
        );
        assert!(
            instant(
                r#"sum(count_over_time({service_name="api"} | json | __error__="" [1m]))"#,
                30
            )
            .is_empty()
        );
        let tight = LogqlLimits {
            max_series: 2,
            ..LogqlLimits::default()
        };
        let error = eval_with(
            &records(),
            r#"count_over_time({service_name=~".+"}[1m])"#,
            (30, 30, 1),
            true,
            &tight,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("maximum of series (2)"),
            "{error}"
        );
        // Grouping pushed into the read keeps the same query within the limit.
        assert!(
            eval_with(
                &records(),
                r#"sum by (service_name) (count_over_time({service_name=~".+"}[1m]))"#,
                (30, 30, 1),
                true,
                &tight,
            )
            .is_ok()
        );
    }
}
