//! Numbers printed as Go's `fmt` prints them (`%v`, `%g`, `%.2f`…), and Prometheus's
//! `humanize*` template functions built on them, so annotations read the same as they do
//! under Prometheus.

/// `v` as Go's `%v` (shortest `%g`: exponent form when the exponent is below -4 or at least 6).
pub fn format_v(v: f64) -> String {
    format_g(v, None)
}

/// `v` as Go's `%g` with `precision` significant digits (`None`: the shortest exact form).
pub fn format_g(v: f64, precision: Option<usize>) -> String {
    if let Some(special) = special(v) {
        return special.to_owned();
    }
    let scientific = match precision {
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let num_digits = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let point = exponent + 1;
    let exponent_limit = match precision {
        None => 6,
        Some(p) => {
            let p = i32::try_from(p.max(1)).unwrap_or(i32::MAX);
            if p > num_digits && num_digits >= point {
                num_digits
            } else {
                p
            }
        }
    };
    let sign = if v.is_sign_negative() && v != 0.0 {
        "-"
    } else {
        ""
    };
    if exponent < -4 || exponent >= exponent_limit {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{fraction}e{exponent_sign}{:02}",
            exponent.unsigned_abs()
        );
    }
    let fixed = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point >= num_digits {
        format!(
            "{digits}{}",
            "0".repeat((point - num_digits).unsigned_abs() as usize)
        )
    } else {
        let (whole, fraction) = digits.split_at(point.unsigned_abs() as usize);
        format!("{whole}.{fraction}")
    };
    format!("{sign}{fixed}")
}

/// `v` as Go's `%.Nf`.
pub fn format_f(v: f64, precision: usize) -> String {
    special(v).map_or_else(|| format!("{v:.precision$}"), str::to_owned)
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanizePercentage`: a ratio as a percentage.
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", format_g(v * 100.0, Some(4)))
}

/// Prometheus's `humanizeDuration`: seconds as `1d 2h 3m 4s`, or with a sub-second prefix.
pub fn humanize_duration(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        // Whole seconds, as Go's int64 conversion truncates.
        #[allow(clippy::cast_possible_truncation)]
        let total = v.abs() as i64;
        let (days, hours, minutes, seconds) = (
            total / 86_400,
            (total / 3_600) % 24,
            (total / 60) % 60,
            total % 60,
        );
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_g(v.abs(), Some(4)))
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_matches_go_v() {
        for (v, go) in [
            (0.0, "0"),
            (1.0, "1"),
            (0.5, "0.5"),
            (123_456.0, "123456"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_v(v), go, "{v}");
        }
    }

    #[test]
    fn precision_matches_go_g_and_f() {
        assert_eq!(format_g(100.0, Some(4)), "100");
        assert_eq!(format_g(0.5, Some(4)), "0.5");
        assert_eq!(format_g(123_456.0, Some(4)), "1.235e+05");
        assert_eq!(format_g(1e5, Some(4)), "1e+05");
        assert_eq!(format_f(0.123_456, 2), "0.12");
        assert_eq!(format_f(f64::NEG_INFINITY, 2), "-Inf");
    }

    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(humanize(1_234_567.0), "1.235M");
        assert_eq!(humanize(0.012), "12m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize_percentage(0.1234), "12.34%");
        assert_eq!(humanize_duration(93_784.0), "1d 2h 3m 4s");
        assert_eq!(humanize_duration(61.0), "1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.25), "250ms");
    }
}
