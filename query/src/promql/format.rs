//! Floats as Prometheus writes them: label values (`le`, `quantile`, `count_values`) without
//! an exponent, sample values in API answers with one past Go's cutoffs.

/// A float as a label value: the shortest exact decimal, never an exponent (Go's
/// `FormatFloat(v, 'f', -1, 64)`), `+Inf`, `-Inf` or `NaN`.
pub fn label_float(value: f64) -> String {
    special(value).unwrap_or_else(|| value.to_string())
}

/// A sample value as the Prometheus API writes it: the shortest exact decimal, with an
/// exponent of at least two digits below 1e-6 and from 1e21 on (`1e+21`, `1.5e-07`).
pub fn format_value(value: f64) -> String {
    if let Some(text) = special(value) {
        return text;
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    value.to_string()
}

fn special(value: f64) -> Option<String> {
    if value.is_nan() {
        Some("NaN".to_owned())
    } else if value == f64::INFINITY {
        Some("+Inf".to_owned())
    } else if value == f64::NEG_INFINITY {
        Some("-Inf".to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values_print_as_prometheus_does() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(-0.000002), "-0.000002");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1e21), "1e+21");
        assert_eq!(format_value(1.5e-7), "1.5e-07");
        assert_eq!(format_value(-2.5e300), "-2.5e+300");
        assert_eq!(format_value(123_456_789.0), "123456789");
    }

    #[test]
    fn label_values_never_take_an_exponent() {
        assert_eq!(label_float(0.005), "0.005");
        assert_eq!(label_float(1.0), "1");
        assert_eq!(label_float(2.5e-7), "0.00000025");
        assert_eq!(label_float(1e21), "1000000000000000000000");
        assert_eq!(label_float(-3.0), "-3");
        assert_eq!(label_float(f64::INFINITY), "+Inf");
        assert_eq!(label_float(f64::NEG_INFINITY), "-Inf");
    }
}
