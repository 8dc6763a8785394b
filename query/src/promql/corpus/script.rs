//! The corpus scripts' language: series lines with Prometheus's value expansion, durations,
//! `load`/`clear`/`eval` blocks and their expected results. Parsing only.

use regex::Regex;

use super::super::{Labels, METRIC_NAME_LABEL, stale_nan};
use super::show_labels;

/// One value of a series line: a sample, or `None` for `_` (no sample, no point).
pub(super) type Point = Option<f64>;

/// A series line: labels (the metric name among them) and its values in order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SeriesLine {
    pub(super) labels: Labels,
    pub(super) points: Vec<Point>,
}

#[derive(Debug)]
pub(super) enum Command {
    Load {
        interval_ms: i64,
        series: Vec<SeriesLine>,
    },
    Clear,
    Eval(Eval),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Timing {
    Instant {
        time_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

#[derive(Debug)]
pub(super) enum Expected {
    Scalar(f64),
    String(String),
    Series(Vec<SeriesLine>),
}

#[derive(Debug)]
pub(super) struct Eval {
    pub(super) line_number: usize,
    pub(super) header: String,
    pub(super) query: String,
    pub(super) timing: Timing,
    pub(super) ordered: bool,
    pub(super) must_fail: bool,
    pub(super) expected: Expected,
}

/// Milliseconds in `text`: `0`, or numbers with units `y w d h m s ms`.
pub(super) fn parse_duration(text: &str) -> Result<i64, String> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1000),
    ];
    let bad = || format!("bad duration {text:?}");
    if text == "0" {
        return Ok(0);
    }
    let (mut rest, mut total_ms) = (text, 0);
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: i64 = rest[..digits].parse().map_err(|_| bad())?;
        let (unit, unit_ms) = UNITS
            .iter()
            .find(|(unit, _)| rest[digits..].starts_with(unit))
            .ok_or_else(bad)?;
        total_ms += number * unit_ms;
        rest = &rest[digits + unit.len()..];
    }
    Ok(total_ms)
}

pub(super) fn parse_number(text: &str) -> Result<f64, String> {
    text.parse().map_err(|_| format!("bad number {text:?}"))
}

/// One value item (`0+10x10`, `_x3`, `stale`, `7`) as its points.
pub(super) fn expand_item(item: &str) -> Result<Vec<Point>, String> {
    let (body, times) = match item.rsplit_once('x') {
        Some((body, count)) if !body.is_empty() && !count.is_empty() => {
            let count = count
                .parse::<usize>()
                .map_err(|_| format!("bad repeat {item:?}"))?;
            (body, Some(count))
        }
        _ => (item, None),
    };
    match body {
        "_" => return Ok(vec![None; times.unwrap_or(1)]),
        "stale" => return Ok(vec![Some(stale_nan()); times.unwrap_or(0) + 1]),
        _ => {}
    }
    let bytes = body.as_bytes();
    let sign_at = (1..bytes.len())
        .rev()
        .find(|&at| matches!(bytes[at], b'+' | b'-') && !matches!(bytes[at - 1], b'e' | b'E'));
    let (mut value, step) = match sign_at {
        Some(at) if times.is_some() => (parse_number(&body[..at])?, parse_number(&body[at..])?),
        _ => (parse_number(body)?, 0.0),
    };
    let mut points = Vec::new();
    for _ in 0..=times.unwrap_or(0) {
        points.push(Some(value));
        value += step; // Repeated addition, as Prometheus expands, float error and all.
    }
    Ok(points)
}

/// A quoted label value at the start of `text` (Go-style escapes), and what follows it.
pub(super) fn parse_quoted(text: &str) -> Result<(String, &str), String> {
    let quote = text
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'));
    let quote = quote.ok_or_else(|| format!("expected a quoted value: {text:?}"))?;
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((value, &text[at + 1..])),
            '\\' if quote != '`' => match chars.next().map(|(_, c)| c) {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(other) => value.push(other),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(format!("unterminated quoted value in {text:?}"))
}

/// `metric{name="value", …} values…` (metric name and braces each optional).
pub(super) fn parse_series_line(text: &str) -> Result<SeriesLine, String> {
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    if name_end == 0 && !text.starts_with('{') {
        return Err(format!("expected a metric name or labels: {text:?}"));
    }
    let mut pairs = vec![(METRIC_NAME_LABEL.to_owned(), text[..name_end].to_owned())];
    let mut rest = &text[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (name, after) = rest
                .split_once('=')
                .ok_or_else(|| format!("bad labels: {text:?}"))?;
            let (value, after) = parse_quoted(after.trim_start())?;
            pairs.push((name.trim().to_owned(), value));
            rest = after;
        }
    }
    let mut points = Vec::new();
    for item in rest.split_whitespace() {
        points.extend(expand_item(item)?);
    }
    Ok(SeriesLine {
        labels: Labels::from_pairs(pairs),
        points,
    })
}

/// Parses a script into commands; errors name the line.
pub(super) fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    let instant = Regex::new(r"^eval(?:_(fail|warn|info|ordered))?\s+instant\s+at\s+(\S+)\s+(.+)$");
    let range = Regex::new(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.+)$",
    );
    let (instant, range) = (
        instant.map_err(|e| e.to_string())?,
        range.map_err(|e| e.to_string())?,
    );
    let lines: Vec<&str> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with('#') {
                ""
            } else {
                line.trim()
            }
        })
        .collect();
    let mut commands = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let (header, line_number) = (lines[at], at + 1);
        at += 1;
        if header.is_empty() {
            continue;
        }
        if header == "clear" {
            commands.push(Command::Clear);
            continue;
        }
        let block_start = at;
        while at < lines.len() && !lines[at].is_empty() {
            at += 1;
        }
        let block = &lines[block_start..at];
        let fail = |message: String| format!("line {line_number}: {message}");
        if let Some(interval) = header.strip_prefix("load ") {
            let series = block.iter().map(|line| parse_series_line(line));
            commands.push(Command::Load {
                interval_ms: parse_duration(interval.trim()).map_err(fail)?,
                series: series.collect::<Result<_, _>>().map_err(fail)?,
            });
            continue;
        }
        let (modifier, timing, query) = if let Some(parts) = instant.captures(header) {
            let time_ms = parse_duration(&parts[2]).map_err(fail)?;
            (
                parts.get(1),
                Timing::Instant { time_ms },
                parts[3].to_owned(),
            )
        } else if let Some(parts) = range.captures(header) {
            let start_ms = parse_duration(&parts[2]).map_err(fail)?;
            let end_ms = parse_duration(&parts[3]).map_err(fail)?;
            let step_ms = parse_duration(&parts[4]).map_err(fail)?;
            if end_ms < start_ms || step_ms <= 0 {
                return Err(fail(format!("bad range in {header:?}")));
            }
            (
                parts.get(1),
                Timing::Range {
                    start_ms,
                    end_ms,
                    step_ms,
                },
                parts[5].to_owned(),
            )
        } else {
            return Err(fail(format!("unknown command {header:?}")));
        };
        let modifier = modifier.map_or("", |m| m.as_str());
        if modifier == "fail" && !block.is_empty() {
            return Err(fail("eval_fail takes no expected lines".into()));
        }
        commands.push(Command::Eval(Eval {
            line_number,
            header: header.to_owned(),
            query,
            timing,
            ordered: modifier == "ordered",
            must_fail: modifier == "fail",
            expected: parse_expected(block, timing).map_err(fail)?,
        }));
    }
    Ok(commands)
}

pub(super) fn parse_expected(block: &[&str], timing: Timing) -> Result<Expected, String> {
    if let [line] = block {
        match (parse_number(line), timing) {
            (Ok(value), Timing::Instant { .. }) => return Ok(Expected::Scalar(value)),
            (Ok(_), Timing::Range { .. }) => return Err("write a range result `{} v1 v2 …`".into()),
            _ if line.starts_with('"') => return Ok(Expected::String(parse_quoted(line)?.0)),
            _ => {}
        }
    }
    let mut series: Vec<SeriesLine> = block
        .iter()
        .map(|line| parse_series_line(line))
        .collect::<Result<_, _>>()?;
    if let Some(num_steps) = num_steps(timing) {
        for line in &mut series {
            if line.points.len() > num_steps {
                return Err(format!(
                    "{} has more values than steps",
                    show_labels(&line.labels)
                ));
            }
            line.points.resize(num_steps, None);
        }
    }
    Ok(Expected::Series(series))
}

/// How many steps a range query has; `None` for an instant query.
/// How many steps a range query has; `None` for an instant query.
pub(super) fn num_steps(timing: Timing) -> Option<usize> {
    let Timing::Range {
        start_ms,
        end_ms,
        step_ms,
    } = timing
    else {
        return None;
    };
    usize::try_from((end_ms - start_ms) / step_ms + 1).ok()
}
