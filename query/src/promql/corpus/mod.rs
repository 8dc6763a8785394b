//! The PromQL test corpus: runs every script in `testdata/*.test` against [`instant_query`]
//! and [`range_query`] over a [`MemorySource`], one `#[test]` per script. It only reads and
//! checks; it must hold no evaluation logic of its own, or it would test itself.
//!
//! The scripts use the language of Prometheus's `promql/promqltest/testdata/*.test`:
//!
//! ```text
//! load 5m                                  # samples every 5m from time 0
//!   http_requests{job="api"} 0+10x10 _ stale 1x3 _x2 -2-1x2 Inf -Inf NaN
//! clear                                    # forget every series
//! eval instant at 50m sum(http_requests)   # then the expected result, one line each:
//!   {} 100                                 #   a series (labels, optional metric name)
//! eval instant at 1m 1 + 1
//!   2                                      #   or a bare number: a scalar result
//! eval_ordered instant at 50m sort(x)      # series must come in this order
//! eval_fail instant at 0 a + on() b        # must fail
//! eval range from 0 to 10m step 5m x       # one value per step, `_` for no point
//!   x{a="b"} 1 _ 3
//! ```
//!
//! Values expand as in Prometheus: `a+bxn` is the n+1 values a, a+b, … a+nb (and `a-bxn`),
//! `axn` is a repeated n+1 times, `_` is one missing sample, `_xn` is n, `stale` a staleness
//! marker. Durations are `0` or units `y w d h m s ms` (`1h30m`). A block ends at a blank or
//! `#` line. `eval_warn`/`eval_info` run as `eval`. Floats compare as Prometheus's do:
//! relative error under 1e-6, NaN equal to NaN. A range result's series must be sorted.
//!
//! Two additions: an instant query whose result is a range vector (`x[5m]`) is checked
//! against the listed values in order (not their times); an expected line `"text"` is a
//! string result. Like Prometheus, each passing instant eval that is neither ordered, failing
//! nor uses `start()`/`end()` is run again as a range query from t-1m to t+1m, and its middle
//! step must give the same answer.

mod script;

use std::path::PathBuf;

use script::{Command, Eval, Expected, Point, SeriesLine, Timing, num_steps, parse_script};
#[cfg(test)]
use script::{parse_duration, parse_series_line};

use super::{
    InstantSample, Labels, METRIC_NAME_LABEL, MemorySource, QueryOptions, QueryValue, Sample,
    instant_query, is_stale, range_query,
};

/// Prometheus's float comparison in its test scripts (`almost.Equal` with epsilon 1e-6).
fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let (difference, absolute_sum) = ((a - b).abs(), a.abs() + b.abs());
    if a == 0.0 || b == 0.0 || absolute_sum < f64::MIN_POSITIVE {
        return difference < EPSILON * f64::MIN_POSITIVE;
    }
    difference / absolute_sum.min(f64::MAX) < EPSILON
}

pub(super) fn show_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(name, _)| *name != METRIC_NAME_LABEL)
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{}{{{}}}", labels.metric_name(), pairs.join(", "))
}

fn show_point(point: &Point) -> String {
    match point {
        None => "_".into(),
        Some(value) if is_stale(*value) => "stale".into(),
        Some(value) => format!("{value:?}"),
    }
}

fn show_series(series: &[SeriesLine]) -> String {
    if series.is_empty() {
        return "nothing".into();
    }
    let lines = series.iter().map(|line| {
        let points: Vec<String> = line.points.iter().map(show_point).collect();
        format!(
            "\n        {} {}",
            show_labels(&line.labels),
            points.join(" ")
        )
    });
    lines.collect()
}

fn show_expected(expected: &Expected) -> String {
    match expected {
        Expected::Scalar(value) => format!("scalar {}", show_point(&Some(*value))),
        Expected::String(text) => format!("string {text:?}"),
        Expected::Series(series) => show_series(series),
    }
}

fn show_result(got: &QueryValue, timing: Timing) -> String {
    match (got, as_series(got, timing)) {
        (QueryValue::Scalar { value, .. }, _) => format!("scalar {}", show_point(&Some(*value))),
        (QueryValue::String { value, .. }, _) => format!("string {value:?}"),
        (_, Ok(series)) => show_series(&series),
        (QueryValue::Matrix(series), Err(why)) => format!("{why}: {series:?}"),
        (QueryValue::Vector(samples), Err(why)) => format!("{why}: {samples:?}"),
    }
}

/// A vector or matrix result as series lines: an instant vector's samples with one point
/// each, a range query's series with one point per step, a range vector's raw values.
fn as_series(got: &QueryValue, timing: Timing) -> Result<Vec<SeriesLine>, String> {
    let one = |labels: &Labels, points| SeriesLine {
        labels: labels.clone(),
        points,
    };
    match (got, timing) {
        (QueryValue::Vector(samples), _) => Ok(samples
            .iter()
            .map(|s| one(&s.labels, vec![Some(s.value)]))
            .collect()),
        (QueryValue::Matrix(series), Timing::Instant { .. }) => Ok(series
            .iter()
            .map(|s| one(&s.labels, s.samples.iter().map(|p| Some(p.value)).collect()))
            .collect()),
        (
            QueryValue::Matrix(series),
            Timing::Range {
                start_ms, step_ms, ..
            },
        ) => {
            let num_steps = num_steps(timing).unwrap_or(0);
            let mut lines = Vec::new();
            for s in series {
                let mut points = vec![None; num_steps];
                for sample in &s.samples {
                    let offset_ms = sample.timestamp_ms - start_ms;
                    let step = usize::try_from(offset_ms / step_ms).ok().filter(|&step| {
                        offset_ms % step_ms == 0 && step < num_steps && points[step].is_none()
                    });
                    let step = step.ok_or_else(|| {
                        format!("point at {}ms is off the steps", sample.timestamp_ms)
                    })?;
                    points[step] = Some(sample.value);
                }
                lines.push(one(&s.labels, points));
            }
            Ok(lines)
        }
        _ => Err("not a vector or matrix".into()),
    }
}

/// Whether `got` matches `want`; `Err` says where it does not.
fn compare_series(want: &[SeriesLine], got: &[SeriesLine], ordered: bool) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} series expected, {} returned",
            want.len(),
            got.len()
        ));
    }
    for (position, line) in got.iter().enumerate() {
        let name = show_labels(&line.labels);
        if got[..position]
            .iter()
            .any(|earlier| earlier.labels == line.labels)
        {
            return Err(format!("{name} is returned twice"));
        }
        let Some(want_position) = want.iter().position(|w| w.labels == line.labels) else {
            return Err(format!("{name} is not expected"));
        };
        let same = |a: &Point, b: &Point| match (a, b) {
            (Some(a), Some(b)) => almost_equal(*a, *b),
            (a, b) => a.is_none() && b.is_none(),
        };
        let want_points = &want[want_position].points;
        if want_points.len() != line.points.len()
            || want_points
                .iter()
                .zip(&line.points)
                .any(|(w, g)| !same(w, g))
        {
            return Err(format!("{name} has the wrong value"));
        }
        if ordered && want_position != position {
            return Err(format!(
                "{name} is at position {position}, expected {want_position}"
            ));
        }
    }
    Ok(())
}

/// Checks a result against the eval's expectation; `Err` says why it does not match.
fn check(eval: &Eval, got: &QueryValue, timing: Timing) -> Result<(), String> {
    match (&eval.expected, got) {
        (Expected::Scalar(want), QueryValue::Scalar { value, .. })
            if almost_equal(*want, *value) =>
        {
            Ok(())
        }
        (Expected::String(want), QueryValue::String { value, .. }) if want == value => Ok(()),
        (Expected::Series(want), QueryValue::Vector(_))
            if matches!(timing, Timing::Instant { .. }) =>
        {
            compare_series(want, &as_series(got, timing)?, eval.ordered)
        }
        (Expected::Series(want), QueryValue::Matrix(series)) => {
            let is_range = matches!(timing, Timing::Range { .. });
            if is_range
                && series
                    .windows(2)
                    .any(|pair| pair[0].labels >= pair[1].labels)
            {
                return Err("series are not sorted by labels".into());
            }
            compare_series(want, &as_series(got, timing)?, eval.ordered)
        }
        _ => Err("wrong value or type".into()),
    }
}

/// The step at `time_ms` of a range query's result, as an instant query would answer it.
fn step_of(ranged: &QueryValue, time_ms: i64, as_scalar: bool) -> QueryValue {
    let QueryValue::Matrix(series) = ranged else {
        return ranged.clone();
    };
    let samples: Vec<InstantSample> = series
        .iter()
        .filter_map(|s| {
            let sample = s.samples.iter().find(|p| p.timestamp_ms == time_ms)?;
            Some(InstantSample {
                labels: s.labels.clone(),
                timestamp_ms: time_ms,
                value: sample.value,
            })
        })
        .collect();
    match samples.as_slice() {
        [only] if as_scalar && only.labels.is_empty() => QueryValue::Scalar {
            timestamp_ms: time_ms,
            value: only.value,
        },
        _ => QueryValue::Vector(samples),
    }
}

/// Runs one eval; `Err` is the failure report (without file and line).
async fn run_eval(source: &MemorySource, eval: &Eval) -> Result<(), String> {
    let options = QueryOptions::default();
    let result = match eval.timing {
        Timing::Instant { time_ms } => instant_query(source, &eval.query, time_ms, &options).await,
        Timing::Range {
            start_ms,
            end_ms,
            step_ms,
        } => range_query(source, &eval.query, start_ms, end_ms, step_ms, &options).await,
    };
    let expected = show_expected(&eval.expected);
    let got = match (result, eval.must_fail) {
        (Err(_), true) => return Ok(()),
        (Ok(got), true) => {
            return Err(format!(
                "expected an error, got: {}",
                show_result(&got, eval.timing)
            ));
        }
        (Err(err), false) => {
            return Err(format!("unexpected error: {err}\n    expected: {expected}"));
        }
        (Ok(got), false) => got,
    };
    let mismatch = |why: String, got: &QueryValue, timing| {
        format!(
            "{why}\n    expected: {expected}\n    got: {}",
            show_result(got, timing)
        )
    };
    check(eval, &got, eval.timing).map_err(|why| mismatch(why, &got, eval.timing))?;
    let Timing::Instant { time_ms } = eval.timing else {
        return Ok(());
    };
    let uses_range_bounds = eval.query.contains("start()") || eval.query.contains("end()");
    let is_instant_vector_or_scalar =
        matches!(got, QueryValue::Vector(_) | QueryValue::Scalar { .. });
    if eval.ordered || uses_range_bounds || !is_instant_vector_or_scalar {
        return Ok(());
    }
    let (start_ms, end_ms, step_ms) = (time_ms - 60_000, time_ms + 60_000, 60_000);
    let ranged = range_query(source, &eval.query, start_ms, end_ms, step_ms, &options)
        .await
        .map_err(|err| format!("in range mode (t-1m to t+1m): unexpected error: {err}"))?;
    let step = step_of(&ranged, time_ms, matches!(got, QueryValue::Scalar { .. }));
    check(eval, &step, eval.timing).map_err(|why| {
        let ranged_timing = Timing::Range {
            start_ms,
            end_ms,
            step_ms,
        };
        mismatch(
            format!("in range mode (t-1m to t+1m), middle step: {why}"),
            &ranged,
            ranged_timing,
        )
    })
}

fn testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/promql/testdata")
}

/// Runs the script `file_name`, panicking with every failed eval listed.
fn run_script(file_name: &str) {
    let path = testdata_dir().join(file_name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let commands = parse_script(&text).unwrap_or_else(|err| panic!("{file_name}: {err}"));
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    let runtime = runtime.unwrap_or_else(|err| panic!("starting a runtime: {err}"));
    let mut source = MemorySource::default();
    let (mut failures, mut num_evals) = (Vec::new(), 0);
    for command in &commands {
        match command {
            Command::Clear => source = MemorySource::default(),
            Command::Load {
                interval_ms,
                series,
            } => {
                for line in series {
                    let samples = (0_i64..).zip(&line.points).filter_map(|(index, point)| {
                        point.map(|value| Sample {
                            timestamp_ms: index * interval_ms,
                            value,
                        })
                    });
                    source.add(line.labels.clone(), samples.collect::<Vec<_>>());
                }
            }
            Command::Eval(eval) => {
                num_evals += 1;
                if let Err(report) = runtime.block_on(run_eval(&source, eval)) {
                    failures.push(format!(
                        "{file_name}:{}: {}\n    {report}",
                        eval.line_number, eval.header
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {num_evals} evals in {file_name} failed:\n\n{}\n",
        failures.len(),
        failures.join("\n\n")
    );
}

macro_rules! corpus_tests {
    ($($script:ident),* $(,)?) => {
        /// The scripts that have a test; every file in testdata must be among them.
        const SCRIPTS: &[&str] = &[$(concat!(stringify!($script), ".test")),*];
        $(
            #[test]
            fn $script() {
                run_script(concat!(stringify!($script), ".test"));
            }
        )*
    };
}

corpus_tests!(
    selectors,
    staleness,
    at_modifier,
    functions_counters,
    functions_over_time,
    functions_math,
    functions_labels,
    histograms,
    aggregators,
    operators,
    subqueries,
    range_queries,
);

#[test]
fn every_script_has_a_test() {
    let entries = std::fs::read_dir(testdata_dir()).unwrap();
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.retain(|name| name.ends_with(".test"));
    names.sort();
    let mut scripts: Vec<String> = SCRIPTS.iter().map(|s| (*s).to_owned()).collect();
    scripts.sort();
    assert_eq!(
        names, scripts,
        "testdata/*.test and corpus_tests! must list the same scripts"
    );
}

#[test]
fn values_expand_as_in_prometheus() {
    let points = |text: &str| parse_series_line(&format!("m {text}")).unwrap().points;
    assert_eq!(
        points("0+10x3"),
        [Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
    );
    assert_eq!(
        points("1-2x2 _ 5"),
        [Some(1.0), Some(-1.0), Some(-3.0), None, Some(5.0)]
    );
    assert_eq!(
        points("-1+1e-1x1 _x2 7x1"),
        [Some(-1.0), Some(-0.9), None, None, Some(7.0), Some(7.0)]
    );
    assert_eq!(
        points("Inf -Inf .5"),
        [Some(f64::INFINITY), Some(f64::NEG_INFINITY), Some(0.5)]
    );
    let special = points("NaN stale");
    assert!(special[0].unwrap().is_nan() && !is_stale(special[0].unwrap()));
    assert!(is_stale(special[1].unwrap()));
    assert!(parse_series_line("m 1+x").is_err());
}

#[test]
fn labels_durations_and_blocks_parse() {
    let line = parse_series_line(r#"up{job="a\"b", le='0.1',} 1"#).unwrap();
    assert_eq!(
        line.labels,
        Labels::from_pairs([("__name__", "up"), ("job", "a\"b"), ("le", "0.1")])
    );
    let line = parse_series_line(r#"{__name__="x", a="b"} 2"#).unwrap();
    assert_eq!(
        line.labels,
        Labels::from_pairs([("__name__", "x"), ("a", "b")])
    );
    assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
    assert_eq!(parse_duration("1m1s1ms").unwrap(), 61_001);
    assert_eq!(parse_duration("0").unwrap(), 0);
    assert!(parse_duration("5x").is_err());
    let commands = parse_script(
        "load 1m\n  a 1\n\nclear\nload 1m\n  b 2\n# note\neval instant at 0 b\n  b 2\n",
    )
    .unwrap();
    assert!(matches!(
        commands.as_slice(),
        [
            Command::Load { .. },
            Command::Clear,
            Command::Load { .. },
            Command::Eval(_)
        ]
    ));
}

#[test]
fn floats_compare_within_prometheus_tolerance() {
    assert!(almost_equal(f64::NAN, f64::NAN));
    assert!(almost_equal(0.1 + 0.2, 0.3));
    assert!(almost_equal(1e9, 1e9 + 1.0));
    assert!(!almost_equal(1.0, 1.00001));
    assert!(!almost_equal(0.0, 1e-300));
    assert!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY));
}

#[test]
fn checks_find_wrong_values_missing_series_and_order() {
    let commands =
        parse_script("eval_ordered instant at 1m x\n  x{a=\"1\"} 2\n  x{a=\"2\"} 1\n").unwrap();
    let Some(Command::Eval(eval)) = commands.first() else {
        panic!("not an eval")
    };
    let sample = |a: &str, value: f64| InstantSample {
        labels: Labels::from_pairs([("__name__", "x"), ("a", a)]),
        timestamp_ms: 60_000,
        value,
    };
    let vector = |samples| check(eval, &QueryValue::Vector(samples), eval.timing);
    assert!(vector(vec![sample("1", 2.0), sample("2", 1.0)]).is_ok());
    assert!(vector(vec![sample("2", 1.0), sample("1", 2.0)]).is_err());
    assert!(vector(vec![sample("1", 2.0), sample("2", 1.5)]).is_err());
    assert!(vector(vec![sample("1", 2.0)]).is_err());
    assert!(vector(vec![sample("1", 2.0), sample("1", 2.0)]).is_err());
    assert!(
        check(
            eval,
            &QueryValue::Scalar {
                timestamp_ms: 0,
                value: 2.0
            },
            eval.timing
        )
        .is_err()
    );
}

#[test]
fn range_checks_compare_steps_gaps_and_order() {
    let commands = parse_script("eval range from 0 to 2m step 1m x\n  x 1 _ 3\n  y 4\n").unwrap();
    let Some(Command::Eval(eval)) = commands.first() else {
        panic!("not an eval")
    };
    let series = |name: &str, points: &[(i64, f64)]| super::Series {
        labels: Labels::from_pairs([("__name__", name)]),
        samples: points
            .iter()
            .map(|&(timestamp_ms, value)| Sample {
                timestamp_ms,
                value,
            })
            .collect(),
    };
    let matrix =
        |x: &[(i64, f64)]| QueryValue::Matrix(vec![series("x", x), series("y", &[(0, 4.0)])]);
    assert!(check(eval, &matrix(&[(0, 1.0), (120_000, 3.0)]), eval.timing).is_ok());
    assert!(
        check(
            eval,
            &matrix(&[(0, 1.0), (60_000, 2.0), (120_000, 3.0)]),
            eval.timing
        )
        .is_err()
    );
    assert!(check(eval, &matrix(&[(0, 1.0), (60_000, 3.0)]), eval.timing).is_err());
    assert!(check(eval, &matrix(&[(0, 1.0), (90_000, 3.0)]), eval.timing).is_err());
    let unsorted = QueryValue::Matrix(vec![
        series("y", &[(0, 4.0)]),
        series("x", &[(0, 1.0), (120_000, 3.0)]),
    ]);
    assert!(check(eval, &unsorted, eval.timing).is_err());
    assert!(parse_script("eval range from 0 to 1m step 1m x\n  x 1 2 3\n").is_err());
}
