//! A recursive-descent LogQL parser following the grammar Loki documents: stream selectors,
//! line filters, parsers, label filters, `keep`/`drop`, unwrap, range and vector aggregations,
//! binary operators with PromQL's precedence, `vector()`. What skewer does not evaluate
//! (`line_format`, `label_format`, `pattern`, `label_replace`, `group_left`…) is refused by
//! name with the position, never parsed and ignored.

use regex::Regex;

use super::ast::{
    BinaryOp, Comparison, Expr, Grouping, LabelFilter, LineFilter, LineParser, LinePattern,
    LogExpr, MatchOp, Matcher, MetricExpr, NumberKind, RangeOp, Stage, Unwrap, VectorMatching,
    VectorOp,
};
use super::error::LogqlError;
use super::lexer::{Spanned, Token, tokenize};

/// Parses a whole query.
pub fn parse(text: &str) -> Result<Expr, LogqlError> {
    let mut parser = Parser {
        text,
        tokens: tokenize(text)?,
        position: 0,
    };
    let expr = parser.expr(0)?;
    if parser.peek() != &Token::End {
        return Err(parser.unexpected("end of query"));
    }
    Ok(expr)
}

/// Parses a stream selector alone (`match[]` of the series endpoint).
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, LogqlError> {
    match parse(text)? {
        Expr::Log(log) if log.pipeline.is_empty() => Ok(log.selector),
        _ => Err(LogqlError::at(text, 0, "expected a stream selector")),
    }
}

/// Operators that may follow a label name in a label filter.
const FILTER_OPERATORS: [&str; 9] = ["=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="];

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Spanned>,
    position: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.position + ahead).min(last)].token
    }

    fn offset(&self) -> usize {
        let last = self.tokens.len() - 1;
        self.tokens[self.position.min(last)].at
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.position < self.tokens.len() - 1 {
            self.position += 1;
        }
        token
    }

    fn error(&self, message: impl Into<String>) -> LogqlError {
        LogqlError::at(self.text, self.offset(), message)
    }

    fn unexpected(&self, expected: &str) -> LogqlError {
        self.error(format!(
            "syntax error: unexpected {}, expecting {expected}",
            self.peek().describe()
        ))
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Token::Symbol(s) if *s == symbol)
    }

    fn is_ident(&self, name: &str) -> bool {
        matches!(self.peek(), Token::Ident(n) if n == name)
    }

    fn expect_symbol(&mut self, symbol: &'static str) -> Result<(), LogqlError> {
        if self.is_symbol(symbol) {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(&format!("{symbol:?}")))
        }
    }

    fn ident(&mut self, expected: &str) -> Result<String, LogqlError> {
        match self.peek() {
            Token::Ident(name) => {
                let name = name.clone();
                self.next();
                Ok(name)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn string(&mut self) -> Result<String, LogqlError> {
        match self.peek() {
            Token::Str(text) => {
                let text = text.clone();
                self.next();
                Ok(text)
            }
            _ => Err(self.unexpected("string")),
        }
    }

    fn regex(&self, pattern: &str, anchored: bool, at: usize) -> Result<Regex, LogqlError> {
        let source = if anchored {
            format!("^(?:{pattern})$")
        } else {
            pattern.to_owned()
        };
        Regex::new(&source).map_err(|err| {
            LogqlError::at(
                self.text,
                at,
                format!("invalid regular expression {pattern:?}: {err}"),
            )
        })
    }

    /// Binary expressions by precedence climbing; `^` is right-associative.
    fn expr(&mut self, min_precedence: u8) -> Result<Expr, LogqlError> {
        let mut lhs = self.unary()?;
        loop {
            let Some(op) = self.binary_op() else {
                return Ok(lhs);
            };
            if op.precedence() < min_precedence {
                return Ok(lhs);
            }
            let op_at = self.offset();
            self.next();
            let return_bool = if self.is_ident("bool") {
                if !matches!(op, BinaryOp::Compare(_)) {
                    return Err(
                        self.error("bool modifier can only be used on comparison operators")
                    );
                }
                self.next();
                true
            } else {
                false
            };
            let matching = self.vector_matching()?;
            let next_min = if op == BinaryOp::Pow {
                op.precedence()
            } else {
                op.precedence() + 1
            };
            let rhs = self.expr(next_min)?;
            let (Expr::Metric(left), Expr::Metric(right)) = (lhs, rhs) else {
                return Err(LogqlError::at(
                    self.text,
                    op_at,
                    "binary operators need metric queries on both sides, not log queries",
                ));
            };
            if op.is_set_operator() && (left.is_scalar() || right.is_scalar()) {
                return Err(LogqlError::at(
                    self.text,
                    op_at,
                    "set operators (and, or, unless) work on vectors, not scalars",
                ));
            }
            if matches!(op, BinaryOp::Compare(_))
                && left.is_scalar()
                && right.is_scalar()
                && !return_bool
            {
                return Err(LogqlError::at(
                    self.text,
                    op_at,
                    "comparisons between scalars must use the bool modifier",
                ));
            }
            lhs = Expr::Metric(MetricExpr::Binary {
                op,
                return_bool,
                matching,
                lhs: Box::new(left),
                rhs: Box::new(right),
            });
        }
    }

    fn binary_op(&self) -> Option<BinaryOp> {
        Some(match self.peek() {
            Token::Symbol("+") => BinaryOp::Add,
            Token::Symbol("-") => BinaryOp::Sub,
            Token::Symbol("*") => BinaryOp::Mul,
            Token::Symbol("/") => BinaryOp::Div,
            Token::Symbol("%") => BinaryOp::Mod,
            Token::Symbol("^") => BinaryOp::Pow,
            Token::Symbol("==") => BinaryOp::Compare(Comparison::Equal),
            Token::Symbol("!=") => BinaryOp::Compare(Comparison::NotEqual),
            Token::Symbol(">") => BinaryOp::Compare(Comparison::Greater),
            Token::Symbol(">=") => BinaryOp::Compare(Comparison::GreaterOrEqual),
            Token::Symbol("<") => BinaryOp::Compare(Comparison::Less),
            Token::Symbol("<=") => BinaryOp::Compare(Comparison::LessOrEqual),
            Token::Ident(name) if name == "and" => BinaryOp::And,
            Token::Ident(name) if name == "or" => BinaryOp::Or,
            Token::Ident(name) if name == "unless" => BinaryOp::Unless,
            _ => return None,
        })
    }

    fn vector_matching(&mut self) -> Result<Option<VectorMatching>, LogqlError> {
        let on = match self.peek() {
            Token::Ident(name) if name == "on" => true,
            Token::Ident(name) if name == "ignoring" => false,
            _ => return Ok(None),
        };
        self.next();
        let labels = self.label_list()?;
        if self.is_ident("group_left") || self.is_ident("group_right") {
            return Err(self.error("group_left and group_right are not supported by skewer"));
        }
        Ok(Some(VectorMatching { on, labels }))
    }

    fn unary(&mut self) -> Result<Expr, LogqlError> {
        match self.peek().clone() {
            Token::Symbol("(") => {
                self.next();
                let inner = self.expr(0)?;
                self.expect_symbol(")")?;
                Ok(inner)
            }
            Token::Symbol("-") => {
                self.next();
                match self.next() {
                    Token::Number(n) => Ok(Expr::Metric(MetricExpr::Literal(-n))),
                    _ => Err(self.error("syntax error: unary minus applies to numbers only")),
                }
            }
            Token::Symbol("+") => {
                self.next();
                match self.next() {
                    Token::Number(n) => Ok(Expr::Metric(MetricExpr::Literal(n))),
                    _ => Err(self.error("syntax error: unary plus applies to numbers only")),
                }
            }
            Token::Number(n) => {
                self.next();
                Ok(Expr::Metric(MetricExpr::Literal(n)))
            }
            Token::Symbol("{") => {
                let log = self.log_expr(false)?.0;
                if self.is_symbol("[") {
                    return Err(self.error(
                        "a range vector must be inside a range function such as count_over_time",
                    ));
                }
                Ok(Expr::Log(log))
            }
            Token::Ident(name) => {
                if let Some(op) = RangeOp::from_name(&name) {
                    return self.range_aggregation(op).map(Expr::Metric);
                }
                if let Some(op) = VectorOp::from_name(&name) {
                    return self.vector_aggregation(op).map(Expr::Metric);
                }
                match name.as_str() {
                    "vector" => {
                        self.next();
                        self.expect_symbol("(")?;
                        let value = self.number()?;
                        self.expect_symbol(")")?;
                        Ok(Expr::Metric(MetricExpr::Vector1(value)))
                    }
                    "label_replace" | "rate_counter" | "absent" => {
                        Err(self.error(format!("the function {name} is not supported by skewer")))
                    }
                    _ => Err(self.unexpected("a stream selector, a function or a number")),
                }
            }
            _ => Err(self.unexpected("a stream selector, a function or a number")),
        }
    }

    fn number(&mut self) -> Result<f64, LogqlError> {
        let negative = if self.is_symbol("-") {
            self.next();
            true
        } else {
            false
        };
        match self.peek() {
            Token::Number(n) => {
                let n = if negative { -*n } else { *n };
                self.next();
                Ok(n)
            }
            _ => Err(self.unexpected("number")),
        }
    }

    fn label_list(&mut self) -> Result<Vec<String>, LogqlError> {
        self.expect_symbol("(")?;
        let mut labels = Vec::new();
        while !self.is_symbol(")") {
            labels.push(self.ident("label name")?);
            if !self.is_symbol(")") {
                self.expect_symbol(",")?;
            }
        }
        self.next();
        Ok(labels)
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, LogqlError> {
        let without = match self.peek() {
            Token::Ident(name) if name == "by" => false,
            Token::Ident(name) if name == "without" => true,
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(Grouping {
            without,
            labels: self.label_list()?,
        }))
    }

    fn vector_aggregation(&mut self, op: VectorOp) -> Result<MetricExpr, LogqlError> {
        self.next();
        let mut grouping = self.grouping()?;
        self.expect_symbol("(")?;
        let parameter = if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
            let k = self.number()?;
            if k < 1.0 || k.fract() != 0.0 {
                return Err(self.error(format!("invalid k {k}: must be a positive integer")));
            }
            self.expect_symbol(",")?;
            Some(k)
        } else {
            None
        };
        let inner_at = self.offset();
        let inner = match self.expr(0)? {
            Expr::Metric(metric) => metric,
            Expr::Log(_) => {
                return Err(LogqlError::at(
                    self.text,
                    inner_at,
                    "aggregations need a metric query (e.g. count_over_time(...)), not a log query",
                ));
            }
        };
        self.expect_symbol(")")?;
        if let Some(after) = self.grouping()? {
            if grouping.is_some() {
                return Err(self.error("grouping given twice"));
            }
            grouping = Some(after);
        }
        if matches!(op, VectorOp::Sort | VectorOp::SortDesc) && grouping.is_some() {
            return Err(self.error("sort and sort_desc take no grouping"));
        }
        Ok(MetricExpr::Vector {
            op,
            grouping,
            parameter,
            inner: Box::new(inner),
        })
    }

    fn range_aggregation(&mut self, op: RangeOp) -> Result<MetricExpr, LogqlError> {
        self.next();
        self.expect_symbol("(")?;
        let parameter = if op == RangeOp::QuantileOverTime {
            let phi = self.number()?;
            self.expect_symbol(",")?;
            Some(phi)
        } else {
            None
        };
        let (log, range, offset, unwrap) = self.log_range()?;
        self.expect_symbol(")")?;
        let grouping = self.grouping()?;
        match (&unwrap, op.needs_unwrap()) {
            (None, true) => {
                return Err(self.error(format!(
                    "{} needs an unwrapped label: add | unwrap <label> to its pipeline",
                    range_op_name(op)
                )));
            }
            (Some(_), false) if op != RangeOp::Rate => {
                return Err(self.error(format!(
                    "{} counts log lines and takes no unwrap",
                    range_op_name(op)
                )));
            }
            _ => {}
        }
        if grouping.is_some() && unwrap.is_none() {
            return Err(self.error(format!(
                "{} takes no grouping; aggregate it with sum by (...) instead",
                range_op_name(op)
            )));
        }
        Ok(MetricExpr::Range {
            op,
            log,
            range,
            offset,
            unwrap,
            parameter,
            grouping,
        })
    }

    /// `{…} pipeline [range] pipeline offset d`, or `(log expr)[range]`.
    fn log_range(&mut self) -> Result<(LogExpr, f64, f64, Option<Unwrap>), LogqlError> {
        let (mut log, mut unwrap, range) = if self.is_symbol("(") {
            self.next();
            let (log, unwrap) = self.log_expr(true)?;
            self.expect_symbol(")")?;
            (log, unwrap, None)
        } else {
            let (log, unwrap) = self.log_expr(true)?;
            (log, unwrap, None)
        };
        let range = match range {
            Some(range) => range,
            None => {
                if !self.is_symbol("[") {
                    return Err(self.unexpected("a range such as [5m]"));
                }
                self.next();
                let range = match self.next() {
                    Token::Duration(seconds) if seconds > 0.0 => seconds,
                    _ => {
                        return Err(
                            self.error("syntax error: expecting a positive duration such as 5m")
                        );
                    }
                };
                self.expect_symbol("]")?;
                range
            }
        };
        // Loki also accepts the pipeline after the range.
        if self.is_symbol("|") || self.is_line_filter() {
            if !log.pipeline.is_empty() || unwrap.is_some() {
                return Err(
                    self.error("the pipeline goes either before or after the range, not both")
                );
            }
            let (pipeline, after_unwrap) = self.pipeline(true)?;
            log.pipeline = pipeline;
            unwrap = after_unwrap;
        }
        let offset = if self.is_ident("offset") {
            self.next();
            match self.next() {
                Token::Duration(seconds) => seconds,
                _ => return Err(self.error("syntax error: expecting a duration after offset")),
            }
        } else {
            0.0
        };
        Ok((log, range, offset, unwrap))
    }

    fn is_line_filter(&self) -> bool {
        ["|=", "!=", "|~", "!~", "|>"]
            .iter()
            .any(|symbol| self.is_symbol(symbol))
    }

    fn log_expr(&mut self, allow_unwrap: bool) -> Result<(LogExpr, Option<Unwrap>), LogqlError> {
        let selector = self.selector()?;
        let (pipeline, unwrap) = self.pipeline(allow_unwrap)?;
        Ok((LogExpr { selector, pipeline }, unwrap))
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, LogqlError> {
        let start = self.offset();
        self.expect_symbol("{")?;
        let mut matchers = Vec::new();
        while !self.is_symbol("}") {
            matchers.push(self.string_matcher()?);
            if !self.is_symbol("}") {
                self.expect_symbol(",")?;
            }
        }
        self.next();
        if matchers.is_empty() {
            return Err(LogqlError::at(
                self.text,
                start,
                "queries require at least one label matcher, e.g. {service_name=\"checkout\"}",
            ));
        }
        if matchers.iter().all(|matcher| matcher.matches("")) {
            return Err(LogqlError::at(
                self.text,
                start,
                "queries require at least one matcher that does not match the empty value, e.g. {service_name=~\".+\"}",
            ));
        }
        Ok(matchers)
    }

    fn string_matcher(&mut self) -> Result<Matcher, LogqlError> {
        let name = self.ident("label name")?;
        let op = match self.next() {
            Token::Symbol("=") => MatchOp::Equal,
            Token::Symbol("!=") => MatchOp::NotEqual,
            Token::Symbol("=~") => MatchOp::Regex,
            Token::Symbol("!~") => MatchOp::NotRegex,
            _ => {
                self.position -= 1;
                return Err(self.unexpected("=, !=, =~ or !~"));
            }
        };
        let value_at = self.offset();
        let value = self.string()?;
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(self.regex(&value, true, value_at)?),
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    fn pipeline(&mut self, allow_unwrap: bool) -> Result<(Vec<Stage>, Option<Unwrap>), LogqlError> {
        let mut stages = Vec::new();
        let mut unwrap: Option<Unwrap> = None;
        loop {
            if self.is_line_filter() {
                if unwrap.is_some() {
                    return Err(self.error("line filters cannot follow unwrap"));
                }
                stages.push(Stage::LineFilter(self.line_filter()?));
                continue;
            }
            if !self.is_symbol("|") {
                return Ok((stages, unwrap));
            }
            self.next();
            let stage_at = self.offset();
            // A label filter starts with a label name followed by an operator, or a `(`.
            let is_filter = self.is_symbol("(")
                || matches!(self.peek_at(1), Token::Symbol(s) if FILTER_OPERATORS.contains(s));
            let name = match self.peek() {
                Token::Ident(name) => name.clone(),
                _ if is_filter => String::new(),
                _ => return Err(self.unexpected("a parser, a label filter or unwrap")),
            };
            if is_filter {
                let filter = self.label_filter()?;
                match &mut unwrap {
                    Some(unwrap) => unwrap.post_filters.push(filter),
                    None => stages.push(Stage::LabelFilter(filter)),
                }
                continue;
            }
            if unwrap.is_some() {
                return Err(self.error("only label filters can follow unwrap"));
            }
            self.next();
            let stage = match name.as_str() {
                "json" => self.parser_without_parameters(LineParser::Json, "json")?,
                "logfmt" => self.parser_without_parameters(LineParser::Logfmt, "logfmt")?,
                "regexp" => {
                    let pattern_at = self.offset();
                    let pattern = self.string()?;
                    let regex = self.regex(&pattern, false, pattern_at)?;
                    if regex.capture_names().flatten().next().is_none() {
                        return Err(LogqlError::at(
                            self.text,
                            pattern_at,
                            "regexp needs at least one named group such as (?P<name>...)",
                        ));
                    }
                    Stage::Parser(LineParser::Regexp(regex))
                }
                "keep" => Stage::Keep(self.name_list()?),
                "drop" => Stage::Drop(self.name_list()?),
                "decolorize" => Stage::Decolorize,
                "unwrap" => {
                    if !allow_unwrap {
                        return Err(LogqlError::at(
                            self.text,
                            stage_at,
                            "unwrap is only valid inside a range function such as sum_over_time",
                        ));
                    }
                    unwrap = Some(self.unwrap()?);
                    continue;
                }
                "line_format" | "label_format" | "pattern" | "unpack" => {
                    return Err(LogqlError::at(
                        self.text,
                        stage_at,
                        format!("the {name} stage is not supported by skewer"),
                    ));
                }
                _ => {
                    return Err(LogqlError::at(
                        self.text,
                        stage_at,
                        format!(
                            "syntax error: unexpected {name:?}, expecting a parser (json, logfmt, regexp), keep, drop, unwrap or a label filter"
                        ),
                    ));
                }
            };
            stages.push(stage);
        }
    }

    fn parser_without_parameters(
        &self,
        parser: LineParser,
        name: &str,
    ) -> Result<Stage, LogqlError> {
        if matches!(self.peek(), Token::Ident(_) | Token::Str(_)) || self.is_symbol("-") {
            return Err(self.error(format!(
                "{name} takes no parameters in skewer (extracting all fields); filter with labels after it"
            )));
        }
        Ok(Stage::Parser(parser))
    }

    fn name_list(&mut self) -> Result<Vec<String>, LogqlError> {
        let mut names = vec![self.ident("label name")?];
        while self.is_symbol(",") {
            self.next();
            names.push(self.ident("label name")?);
        }
        if matches!(self.peek(), Token::Symbol("=" | "!=" | "=~" | "!~")) {
            return Err(self.error("keep and drop take label names only in skewer"));
        }
        Ok(names)
    }

    fn unwrap(&mut self) -> Result<Unwrap, LogqlError> {
        let name = self.ident("label name")?;
        let (label, kind) = match name.as_str() {
            "duration" | "duration_seconds" | "bytes" if self.is_symbol("(") => {
                self.next();
                let label = self.ident("label name")?;
                self.expect_symbol(")")?;
                let kind = if name == "bytes" {
                    NumberKind::Bytes
                } else {
                    NumberKind::Duration
                };
                (label, kind)
            }
            _ => (name, NumberKind::Number),
        };
        Ok(Unwrap {
            label,
            kind,
            post_filters: Vec::new(),
        })
    }

    fn line_filter(&mut self) -> Result<LineFilter, LogqlError> {
        let (negated, regex) = match self.next() {
            Token::Symbol("|=") => (false, false),
            Token::Symbol("!=") => (true, false),
            Token::Symbol("|~") => (false, true),
            Token::Symbol("!~") => (true, true),
            _ => {
                self.position -= 1;
                return Err(self.error("pattern line filters (|>, !>) are not supported by skewer"));
            }
        };
        let mut alternatives = Vec::new();
        loop {
            if self.is_ident("ip") {
                return Err(self.error("ip() line filters are not supported by skewer"));
            }
            let at = self.offset();
            let value = self.string()?;
            alternatives.push(if regex {
                LinePattern::Regex(self.regex(&value, false, at)?)
            } else {
                LinePattern::Contains(value)
            });
            // `or` followed by a string continues this filter; otherwise it belongs elsewhere.
            if self.is_ident("or") && matches!(self.peek_at(1), Token::Str(_)) {
                self.next();
                continue;
            }
            return Ok(LineFilter {
                negated,
                alternatives,
            });
        }
    }

    fn label_filter(&mut self) -> Result<LabelFilter, LogqlError> {
        let mut left = self.label_filter_and()?;
        while self.is_ident("or") {
            self.next();
            let right = self.label_filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, LogqlError> {
        let mut left = self.label_filter_atom()?;
        loop {
            let explicit = self.is_ident("and") || self.is_symbol(",");
            // Whitespace between two predicates means `and` too.
            let implicit = matches!(self.peek(), Token::Ident(name) if !["or", "and", "offset", "by", "without"].contains(&name.as_str()))
                && matches!(self.peek_at(1), Token::Symbol(s) if FILTER_OPERATORS.contains(s));
            if explicit {
                self.next();
            } else if !implicit {
                return Ok(left);
            }
            let right = self.label_filter_atom()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
    }

    fn label_filter_atom(&mut self) -> Result<LabelFilter, LogqlError> {
        if self.is_symbol("(") {
            self.next();
            let inner = self.label_filter()?;
            self.expect_symbol(")")?;
            return Ok(inner);
        }
        let name = self.ident("label name")?;
        let op_token = self.next();
        let value_at = self.offset();
        let value = self.next();
        let comparison = match op_token {
            Token::Symbol("=") | Token::Symbol("==") => Some(Comparison::Equal),
            Token::Symbol("!=") => Some(Comparison::NotEqual),
            Token::Symbol(">") => Some(Comparison::Greater),
            Token::Symbol(">=") => Some(Comparison::GreaterOrEqual),
            Token::Symbol("<") => Some(Comparison::Less),
            Token::Symbol("<=") => Some(Comparison::LessOrEqual),
            _ => None,
        };
        let numeric = |value: f64, kind: NumberKind| -> Result<LabelFilter, LogqlError> {
            let op = comparison.ok_or_else(|| {
                LogqlError::at(self.text, value_at, "regex matchers need a string value")
            })?;
            Ok(LabelFilter::Number {
                name: name.clone(),
                op,
                value,
                kind,
            })
        };
        match value {
            Token::Number(n) => numeric(n, NumberKind::Number),
            Token::Duration(seconds) => numeric(seconds, NumberKind::Duration),
            Token::Bytes(size) => numeric(size, NumberKind::Bytes),
            Token::Str(text) => {
                let op = match op_token {
                    Token::Symbol("=") | Token::Symbol("==") => MatchOp::Equal,
                    Token::Symbol("!=") => MatchOp::NotEqual,
                    Token::Symbol("=~") => MatchOp::Regex,
                    Token::Symbol("!~") => MatchOp::NotRegex,
                    _ => {
                        return Err(LogqlError::at(
                            self.text,
                            value_at,
                            "ordering comparisons need a number, duration or byte size, not a string",
                        ));
                    }
                };
                let regex = match op {
                    MatchOp::Regex | MatchOp::NotRegex => Some(self.regex(&text, true, value_at)?),
                    _ => None,
                };
                Ok(LabelFilter::Matcher(Matcher {
                    name,
                    op,
                    value: text,
                    regex,
                }))
            }
            other => Err(LogqlError::at(
                self.text,
                value_at,
                format!(
                    "syntax error: unexpected {}, expecting a string, number, duration or byte size",
                    other.describe()
                ),
            )),
        }
    }
}

/// The name a range function is written with.
pub fn range_op_name(op: RangeOp) -> &'static str {
    match op {
        RangeOp::CountOverTime => "count_over_time",
        RangeOp::Rate => "rate",
        RangeOp::BytesOverTime => "bytes_over_time",
        RangeOp::BytesRate => "bytes_rate",
        RangeOp::AbsentOverTime => "absent_over_time",
        RangeOp::SumOverTime => "sum_over_time",
        RangeOp::AvgOverTime => "avg_over_time",
        RangeOp::MinOverTime => "min_over_time",
        RangeOp::MaxOverTime => "max_over_time",
        RangeOp::FirstOverTime => "first_over_time",
        RangeOp::LastOverTime => "last_over_time",
        RangeOp::StddevOverTime => "stddev_over_time",
        RangeOp::StdvarOverTime => "stdvar_over_time",
        RangeOp::QuantileOverTime => "quantile_over_time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queries from LogQL's documentation that skewer evaluates.
    const VALID: &[&str] = &[
        r#"{service_name="checkout"}"#,
        r#"{service_name="checkout", deployment_environment!="dev"}"#,
        r#"{service_name=~"check.*|cart", k8s_namespace_name!~"kube-.*"}"#,
        r#"{service_name="mysql"} |= "error" != "timeout""#,
        r#"{service_name="mysql"} |~ `error=\w+` !~ "retry""#,
        r#"{service_name="api"} |= "a" or "b" |= "c""#,
        r#"{service_name="api"} | json | status_code >= 500 and method = "GET""#,
        r#"{service_name="api"} | logfmt | duration > 10s or status=~"5..", size <= 20KB"#,
        r#"{service_name="api"} | regexp "(?P<ip>\\S+) (?P<verb>\\w+)" | verb="POST""#,
        r#"{service_name="api"} | json | keep service_name, level | drop level"#,
        r#"{service_name="api"} | decolorize | trace_id="0af7651916cd43dd8448eb211c80319c""#,
        r#"{service_name="api"} | json | __error__ != "JSONParserErr""#,
        r#"{service_name="api"} | (status >= 500 or status = 429) and method="GET""#,
        r#"count_over_time({service_name="api"}[5m])"#,
        r#"rate({service_name="api"} |= "error" [1m])"#,
        r#"bytes_over_time({service_name="api"}[1h] offset 1d)"#,
        r#"bytes_rate(({service_name="api"} | json)[30s])"#,
        r#"count_over_time({service_name="api"}[5m] |= "error")"#,
        r#"sum by (service_name) (count_over_time({service_name="checkout"} |= "timeout" [5m])) > 10"#,
        r#"sum(rate({service_name="api"}[1m])) by (level)"#,
        r#"topk(3, sum by (service_name) (rate({service_name=~".+"}[5m])))"#,
        r#"avg_over_time({service_name="api"} | logfmt | unwrap duration(took) | __error__="" [5m]) by (path)"#,
        r#"quantile_over_time(0.99, {service_name="api"} | json | unwrap latency_ms [5m]) by (route)"#,
        r#"sum_over_time({service_name="api"} | logfmt | unwrap bytes(size) [1m])"#,
        r#"absent_over_time({service_name="nope"}[5m])"#,
        r#"sum(count_over_time({a="b"}[1m])) / sum(count_over_time({a="c"}[1m]))"#,
        r#"count_over_time({a="b"}[1m]) > bool on (a) count_over_time({a="c"}[1m])"#,
        r#"count_over_time({a="b"}[1m]) and ignoring (x) count_over_time({a="c"}[1m])"#,
        "vector(1)+vector(1)",
        "1 + 2 * 3 ^ 2",
        "sort_desc(sum by (a) (count_over_time({a=\"b\"}[1m])))",
        "# a comment\n{service_name=\"api\"}",
    ];

    #[test]
    fn documented_queries_parse() {
        for query in VALID {
            if let Err(error) = parse(query) {
                panic!("{query}: {error}");
            }
        }
    }

    /// Invalid queries with the line, column and message Loki users expect.
    const INVALID: &[(&str, &str)] = &[
        (
            "{}",
            "parse error at line 1, col 1: queries require at least one label matcher",
        ),
        (
            r#"{a=""}"#,
            "parse error at line 1, col 1: queries require at least one matcher that does not match the empty value",
        ),
        (
            r#"{a="b""#,
            "parse error at line 1, col 7: syntax error: unexpected end of query, expecting \",\"",
        ),
        (
            r#"{a=b}"#,
            "parse error at line 1, col 4: syntax error: unexpected identifier \"b\", expecting string",
        ),
        (
            r#"{a="b"} |= 3"#,
            "parse error at line 1, col 12: syntax error: unexpected number 3, expecting string",
        ),
        (
            r#"{a="b"} | line_format "{{.x}}""#,
            "parse error at line 1, col 11: the line_format stage is not supported by skewer",
        ),
        (
            r#"{a=~"("}"#,
            "parse error at line 1, col 5: invalid regular expression",
        ),
        (
            r#"count_over_time({a="b"})"#,
            "parse error at line 1, col 24: syntax error: unexpected \")\", expecting a range such as [5m]",
        ),
        (r#"sum_over_time({a="b"}[5m])"#, "needs an unwrapped label"),
        (
            r#"{a="b"}[5m]"#,
            "a range vector must be inside a range function",
        ),
        (
            r#"{a="b"} | unwrap x"#,
            "unwrap is only valid inside a range function",
        ),
        (
            r#"sum({a="b"})"#,
            "parse error at line 1, col 5: aggregations need a metric query",
        ),
        (
            r#"{a="b"} + 1"#,
            "parse error at line 1, col 9: binary operators need metric queries on both sides",
        ),
        (
            "1 > 2",
            "comparisons between scalars must use the bool modifier",
        ),
        ("1 and 2", "set operators"),
        (r#"topk(0, count_over_time({a="b"}[1m]))"#, "invalid k 0"),
        (
            "{a=\"b\"}\n| json x=\"y\"",
            "parse error at line 2, col 8: json takes no parameters",
        ),
        (
            r#"count_over_time({a="b"}[5m]) by (a)"#,
            "takes no grouping",
        ),
        (r#"{a="b"} |> "<_>""#, "pattern line filters"),
        (
            r#"{a="b"} | foo"#,
            "parse error at line 1, col 11: syntax error: unexpected \"foo\"",
        ),
        (r#"{a="b"} | x > "y""#, "ordering comparisons need a number"),
        (r#"{a="b"} extra"#, "expecting end of query"),
    ];

    #[test]
    fn invalid_queries_say_where_and_why() {
        for (query, expected) in INVALID {
            match parse(query) {
                Ok(expr) => panic!("{query} parsed as {expr:?}"),
                Err(error) => {
                    let message = error.to_string();
                    assert!(message.contains(expected), "{query}: {message}");
                    assert!(
                        message.starts_with("parse error at line "),
                        "{query}: {message}"
                    );
                }
            }
        }
    }

    #[test]
    fn precedence_and_associativity_follow_promql() {
        let Expr::Metric(MetricExpr::Binary { op, rhs, .. }) = parse("1 + 2 * 3").unwrap() else {
            panic!("not binary");
        };
        assert_eq!(op, BinaryOp::Add);
        assert!(matches!(
            *rhs,
            MetricExpr::Binary {
                op: BinaryOp::Mul,
                ..
            }
        ));
        let Expr::Metric(MetricExpr::Binary { op, lhs, .. }) = parse("2 ^ 3 ^ 2").unwrap() else {
            panic!("not binary");
        };
        assert_eq!(op, BinaryOp::Pow);
        assert!(matches!(*lhs, MetricExpr::Literal(_)));
        let Expr::Metric(MetricExpr::Range { range, offset, .. }) =
            parse(r#"rate({a="b"}[1m30s] offset 2h)"#).unwrap()
        else {
            panic!("not a range");
        };
        assert_eq!((range, offset), (90.0, 7_200.0));
    }
}
