//! The LogQL syntax tree: log queries (a stream selector and a pipeline) and metric queries
//! over them.

use regex::Regex;

/// A parsed query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Log lines: `{selector} | pipeline`.
    Log(LogExpr),
    /// Samples computed from log lines, or numbers.
    Metric(MetricExpr),
}

/// A stream selector and the pipeline applied to each of its lines.
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// The `{…}` matchers; all must hold.
    pub selector: Vec<Matcher>,
    /// The stages, in order.
    pub pipeline: Vec<Stage>,
}

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    Regex,
    /// `!~` (fully anchored)
    NotRegex,
}

/// `name op "value"`; a missing label has the empty value.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value as written.
    pub value: String,
    /// For regex operators: the value anchored at both ends.
    pub regex: Option<Regex>,
}

impl Matcher {
    /// Whether `value` (empty when the label is missing) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(value),
            (_, None) => false,
        }
    }
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// `|= "a"`, `!= "a"`, `|~ "re"`, `!~ "re"`, with `or` alternatives.
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp "…"`: labels extracted from the line.
    Parser(LineParser),
    /// `| label op value`, combined with `and`, `or` and `,`.
    LabelFilter(LabelFilter),
    /// `| keep a, b`: only these labels remain.
    Keep(Vec<String>),
    /// `| drop a, b`: these labels go.
    Drop(Vec<String>),
    /// `| decolorize`: ANSI colour codes removed from the line.
    Decolorize,
}

/// A line filter: its operator and the strings or patterns it tries.
#[derive(Debug, Clone)]
pub struct LineFilter {
    /// Whether a line passes when it contains/matches one alternative (`|=`, `|~`) or none.
    pub negated: bool,
    /// The alternatives (`|= "a" or "b"`).
    pub alternatives: Vec<LinePattern>,
}

/// What a line filter looks for.
#[derive(Debug, Clone)]
pub enum LinePattern {
    /// A substring, case-sensitive.
    Contains(String),
    /// A regular expression, unanchored.
    Regex(Regex),
}

impl LineFilter {
    /// Whether `line` passes the filter.
    pub fn passes(&self, line: &str) -> bool {
        let found = self.alternatives.iter().any(|pattern| match pattern {
            LinePattern::Contains(text) => line.contains(text.as_str()),
            LinePattern::Regex(regex) => regex.is_match(line),
        });
        found != self.negated
    }
}

/// A parser stage.
#[derive(Debug, Clone)]
pub enum LineParser {
    /// Every JSON field, nested keys joined with `_`.
    Json,
    /// Every `key=value` pair.
    Logfmt,
    /// The named groups of a regular expression.
    Regexp(Regex),
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `==` (or `=`)
    Equal,
    /// `!=`
    NotEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
}

impl Comparison {
    /// `left op right`.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Self::Equal => left == right,
            Self::NotEqual => left != right,
            Self::Greater => left > right,
            Self::GreaterOrEqual => left >= right,
            Self::Less => left < right,
            Self::LessOrEqual => left <= right,
        }
    }
}

/// How a numeric label filter reads the label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKind {
    /// A plain number.
    Number,
    /// A duration (`250ms`, `1.5s`), compared in seconds.
    Duration,
    /// A byte size (`10KB`), compared in bytes.
    Bytes,
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    /// Both hold.
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// Either holds.
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// A string matcher.
    Matcher(Matcher),
    /// A numeric comparison.
    Number {
        /// The label.
        name: String,
        /// The comparison.
        op: Comparison,
        /// The right-hand side (seconds for durations, bytes for sizes).
        value: f64,
        /// How the label's value is read.
        kind: NumberKind,
    },
}

/// Functions over a range of log lines (or of unwrapped values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    /// Lines in the range.
    CountOverTime,
    /// Lines per second.
    Rate,
    /// Bytes of the lines in the range.
    BytesOverTime,
    /// Bytes per second.
    BytesRate,
    /// 1 for selectors with no line in the range.
    AbsentOverTime,
    /// Sum of unwrapped values.
    SumOverTime,
    /// Mean of unwrapped values.
    AvgOverTime,
    /// Least unwrapped value.
    MinOverTime,
    /// Greatest unwrapped value.
    MaxOverTime,
    /// First unwrapped value.
    FirstOverTime,
    /// Last unwrapped value.
    LastOverTime,
    /// Population standard deviation of unwrapped values.
    StddevOverTime,
    /// Population variance of unwrapped values.
    StdvarOverTime,
    /// φ-quantile of unwrapped values.
    QuantileOverTime,
}

impl RangeOp {
    /// The function of this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "count_over_time" => Self::CountOverTime,
            "rate" => Self::Rate,
            "bytes_over_time" => Self::BytesOverTime,
            "bytes_rate" => Self::BytesRate,
            "absent_over_time" => Self::AbsentOverTime,
            "sum_over_time" => Self::SumOverTime,
            "avg_over_time" => Self::AvgOverTime,
            "min_over_time" => Self::MinOverTime,
            "max_over_time" => Self::MaxOverTime,
            "first_over_time" => Self::FirstOverTime,
            "last_over_time" => Self::LastOverTime,
            "stddev_over_time" => Self::StddevOverTime,
            "stdvar_over_time" => Self::StdvarOverTime,
            "quantile_over_time" => Self::QuantileOverTime,
            _ => return None,
        })
    }

    /// Whether the function reads unwrapped values (`| unwrap label`) rather than lines.
    /// `rate` works either way.
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            Self::CountOverTime
                | Self::Rate
                | Self::BytesOverTime
                | Self::BytesRate
                | Self::AbsentOverTime
        )
    }
}

/// `| unwrap label`, `| unwrap duration(label)`, `| unwrap bytes(label)`.
#[derive(Debug, Clone)]
pub struct Unwrap {
    /// The label whose value becomes the sample.
    pub label: String,
    /// How its value is read.
    pub kind: NumberKind,
    /// Label filters after the unwrap (e.g. `| __error__=""`).
    pub post_filters: Vec<LabelFilter>,
}

/// `by (…)` or `without (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// `without` rather than `by`.
    pub without: bool,
    /// The labels.
    pub labels: Vec<String>,
}

/// Aggregations across series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
    /// `sort`
    Sort,
    /// `sort_desc`
    SortDesc,
}

impl VectorOp {
    /// The aggregation of this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "count" => Self::Count,
            "stddev" => Self::Stddev,
            "stdvar" => Self::Stdvar,
            "topk" => Self::Topk,
            "bottomk" => Self::Bottomk,
            "sort" => Self::Sort,
            "sort_desc" => Self::SortDesc,
            _ => return None,
        })
    }
}

/// Binary operators, by precedence class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// A comparison (`==`, `!=`, `>`, `>=`, `<`, `<=`).
    Compare(Comparison),
    /// `and`
    And,
    /// `or`
    Or,
    /// `unless`
    Unless,
}

impl BinaryOp {
    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            Self::Or => 1,
            Self::And | Self::Unless => 2,
            Self::Compare(_) => 3,
            Self::Add | Self::Sub => 4,
            Self::Mul | Self::Div | Self::Mod => 5,
            Self::Pow => 6,
        }
    }

    /// Whether the operator works on sets of series only.
    pub fn is_set_operator(self) -> bool {
        matches!(self, Self::And | Self::Or | Self::Unless)
    }
}

/// `on (…)` or `ignoring (…)` for vector matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    /// `on` rather than `ignoring`.
    pub on: bool,
    /// The labels.
    pub labels: Vec<String>,
}

/// A metric query.
#[derive(Debug, Clone)]
pub enum MetricExpr {
    /// `op(log_expr [range] offset o)`.
    Range {
        /// The function.
        op: RangeOp,
        /// The lines it reads.
        log: LogExpr,
        /// The range, seconds.
        range: f64,
        /// The offset, seconds.
        offset: f64,
        /// The unwrapped label, for functions over values.
        unwrap: Option<Unwrap>,
        /// `quantile_over_time`'s φ.
        parameter: Option<f64>,
        /// `by`/`without` on an unwrapped range function.
        grouping: Option<Grouping>,
    },
    /// `op by (…) (expr)`.
    Vector {
        /// The aggregation.
        op: VectorOp,
        /// How series are grouped (none: all in one).
        grouping: Option<Grouping>,
        /// `topk`/`bottomk`'s k.
        parameter: Option<f64>,
        /// What is aggregated.
        inner: Box<MetricExpr>,
    },
    /// `lhs op rhs`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// `bool` after a comparison.
        return_bool: bool,
        /// `on`/`ignoring`.
        matching: Option<VectorMatching>,
        /// Left side.
        lhs: Box<MetricExpr>,
        /// Right side.
        rhs: Box<MetricExpr>,
    },
    /// A number.
    Literal(f64),
    /// `vector(n)`: one series without labels.
    Vector1(f64),
}

impl Expr {
    /// The first log expression of the query (the query itself, or the first range function's).
    pub fn first_log(&self) -> Option<&LogExpr> {
        match self {
            Self::Log(log) => Some(log),
            Self::Metric(metric) => metric.first_log(),
        }
    }
}

impl MetricExpr {
    /// The log expression of the first range function, left to right.
    pub fn first_log(&self) -> Option<&LogExpr> {
        match self {
            Self::Range { log, .. } => Some(log),
            Self::Vector { inner, .. } => inner.first_log(),
            Self::Binary { lhs, rhs, .. } => lhs.first_log().or_else(|| rhs.first_log()),
            Self::Literal(_) | Self::Vector1(_) => None,
        }
    }

    /// Whether the expression is a number only (no series anywhere in it).
    pub fn is_scalar(&self) -> bool {
        match self {
            Self::Literal(_) => true,
            Self::Binary { lhs, rhs, .. } => lhs.is_scalar() && rhs.is_scalar(),
            _ => false,
        }
    }
}
