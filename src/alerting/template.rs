//! Label and annotation templates: the part of Go's `text/template` that Prometheus rule files
//! use. `{{ $labels.name }}` (or `.Labels.name`; a missing label is empty, as in Prometheus),
//! `{{ $value }}` (or `.Value`), `{{ $externalURL }}`, string and number literals, pipelines
//! (`{{ $value | humanizePercentage }}`) and the functions `humanize`,
//! `humanizePercentage`, `humanizeDuration`, `printf`, `toUpper`, `toLower`, `title`;
//! `{{-`/`-}}` trim the text beside them and `{{/* … */}}` is a comment. Anything else (`if`,
//! `range`, `query`…) is refused when the rule is loaded, naming what is not supported.

use super::go_format::{
    format_f, format_g, format_v, humanize, humanize_duration, humanize_percentage,
};
use super::labels::LabelSet;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Vec<Command>),
}

#[derive(Debug, Clone, PartialEq)]
struct Command {
    function: Option<Function>,
    arguments: Vec<Operand>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    Humanize,
    HumanizePercentage,
    HumanizeDuration,
    Printf,
    ToUpper,
    ToLower,
    Title,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Label(String),
    Value,
    ExternalUrl,
    Text(String),
    Number(f64),
}

/// What a template is expanded with.
pub struct TemplateData<'a> {
    /// The alert's labels (from the query result and the rule).
    pub labels: &'a LabelSet,
    /// The query result's value.
    pub value: f64,
    /// Where skewer's UI is reached.
    pub external_url: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
enum Datum {
    Number(f64),
    Text(String),
}

impl Datum {
    fn text(&self) -> String {
        match self {
            Self::Number(v) => format_v(*v),
            Self::Text(text) => text.clone(),
        }
    }

    fn number(&self) -> Result<f64, String> {
        match self {
            Self::Number(v) => Ok(*v),
            Self::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a number")),
        }
    }
}

impl Template {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut trim_next = false;
        while let Some(open) = rest.find("{{") {
            let mut before = &rest[..open];
            if trim_next {
                before = before.trim_start();
            }
            let mut body = &rest[open + 2..];
            if let Some(trimmed) = body.strip_prefix('-') {
                before = before.trim_end();
                body = trimmed;
            }
            let close = body
                .find("}}")
                .ok_or_else(|| "unclosed action: \"{{\" without \"}}\"".to_owned())?;
            let mut action = &body[..close];
            trim_next = false;
            if let Some(trimmed) = action.strip_suffix('-') {
                trim_next = true;
                action = trimmed;
            }
            if !before.is_empty() {
                parts.push(Part::Text(before.to_owned()));
            }
            let action = action.trim();
            if !(action.starts_with("/*") && action.ends_with("*/")) {
                parts.push(Part::Action(parse_pipeline(action)?));
            }
            rest = &body[close + 2..];
        }
        let tail = if trim_next { rest.trim_start() } else { rest };
        if !tail.is_empty() {
            parts.push(Part::Text(tail.to_owned()));
        }
        Ok(Self {
            source: text.to_owned(),
            parts,
        })
    }

    /// The template's text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text for `data`; an action that fails (a non-number given to `humanize`) leaves
    /// an error in its place, as Prometheus leaves the expansion error in the annotation.
    pub fn expand(&self, data: &TemplateData<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action(pipeline) => match run_pipeline(pipeline, data) {
                    Ok(datum) => out.push_str(&datum.text()),
                    Err(err) => {
                        out.push_str("<error expanding template: ");
                        out.push_str(&err);
                        out.push('>');
                    }
                },
            }
        }
        out
    }
}

fn parse_pipeline(action: &str) -> Result<Vec<Command>, String> {
    let tokens = tokenize(action)?;
    if tokens.is_empty() {
        return Err("empty action \"{{ }}\"".to_owned());
    }
    tokens
        .split(|token| token == "|")
        .map(|words| {
            let (first, rest) = words
                .split_first()
                .ok_or_else(|| "a pipeline has an empty command".to_owned())?;
            match function(first) {
                Some(function) => Ok(Command {
                    function: Some(function),
                    arguments: rest.iter().map(|w| operand(w)).collect::<Result<_, _>>()?,
                }),
                None if rest.is_empty() => Ok(Command {
                    function: None,
                    arguments: vec![operand(first)?],
                }),
                None => Err(format!("{first:?} is not a supported function")),
            }
        })
        .collect()
}

fn tokenize(action: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            tokens.push("|".to_owned());
        } else if c == '"' || c == '`' {
            let mut token = String::from(c);
            chars.next();
            let mut closed = false;
            while let Some(next) = chars.next() {
                token.push(next);
                if next == '\\' && c == '"' {
                    if let Some(escaped) = chars.next() {
                        token.push(escaped);
                    }
                } else if next == c {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(format!("unterminated string {token}"));
            }
            tokens.push(token);
        } else {
            let mut token = String::new();
            while let Some(&next) = chars.peek() {
                if next.is_whitespace() || next == '|' {
                    break;
                }
                token.push(next);
                chars.next();
            }
            tokens.push(token);
        }
    }
    Ok(tokens)
}

fn function(word: &str) -> Option<Function> {
    Some(match word {
        "humanize" => Function::Humanize,
        "humanizePercentage" => Function::HumanizePercentage,
        "humanizeDuration" => Function::HumanizeDuration,
        "printf" => Function::Printf,
        "toUpper" => Function::ToUpper,
        "toLower" => Function::ToLower,
        "title" => Function::Title,
        _ => return None,
    })
}

fn operand(word: &str) -> Result<Operand, String> {
    if let Some(name) = word
        .strip_prefix("$labels.")
        .or_else(|| word.strip_prefix(".Labels."))
    {
        return Ok(Operand::Label(name.to_owned()));
    }
    match word {
        "$value" | ".Value" => return Ok(Operand::Value),
        "$externalURL" | ".ExternalURL" => return Ok(Operand::ExternalUrl),
        _ => {}
    }
    if let Some(raw) = word.strip_prefix('`').and_then(|w| w.strip_suffix('`')) {
        return Ok(Operand::Text(raw.to_owned()));
    }
    if word.starts_with('"') {
        return serde_json::from_str::<String>(word)
            .map(Operand::Text)
            .map_err(|_| format!("bad string literal {word}"));
    }
    if let Ok(number) = word.parse::<f64>() {
        return Ok(Operand::Number(number));
    }
    Err(format!(
        "{word:?} is not supported in skewer's templates (use $labels.NAME, $value, \
         $externalURL, literals and humanize, humanizePercentage, humanizeDuration, printf, \
         toUpper, toLower, title)"
    ))
}

fn run_pipeline(pipeline: &[Command], data: &TemplateData<'_>) -> Result<Datum, String> {
    let mut previous: Option<Datum> = None;
    for command in pipeline {
        let mut arguments: Vec<Datum> = command
            .arguments
            .iter()
            .map(|operand| resolve(operand, data))
            .collect();
        arguments.extend(previous.take());
        previous = Some(match command.function {
            None => arguments
                .into_iter()
                .next()
                .ok_or_else(|| "nothing to print".to_owned())?,
            Some(function) => call(function, &arguments)?,
        });
    }
    previous.ok_or_else(|| "empty pipeline".to_owned())
}

fn resolve(operand: &Operand, data: &TemplateData<'_>) -> Datum {
    match operand {
        Operand::Label(name) => Datum::Text(data.labels.get(name).cloned().unwrap_or_default()),
        Operand::Value => Datum::Number(data.value),
        Operand::ExternalUrl => Datum::Text(data.external_url.to_owned()),
        Operand::Text(text) => Datum::Text(text.clone()),
        Operand::Number(number) => Datum::Number(*number),
    }
}

fn call(function: Function, arguments: &[Datum]) -> Result<Datum, String> {
    let single = || match arguments {
        [one] => Ok(one),
        _ => Err(format!(
            "{function:?} takes one argument, got {}",
            arguments.len()
        )),
    };
    Ok(match function {
        Function::Humanize => Datum::Text(humanize(single()?.number()?)),
        Function::HumanizePercentage => Datum::Text(humanize_percentage(single()?.number()?)),
        Function::HumanizeDuration => Datum::Text(humanize_duration(single()?.number()?)),
        Function::ToUpper => Datum::Text(single()?.text().to_uppercase()),
        Function::ToLower => Datum::Text(single()?.text().to_lowercase()),
        Function::Title => Datum::Text(title(&single()?.text())),
        Function::Printf => {
            let (format, values) = arguments
                .split_first()
                .ok_or_else(|| "printf needs a format".to_owned())?;
            Datum::Text(printf(&format.text(), values)?)
        }
    })
}

fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_word_start = true;
    for c in text.chars() {
        if at_word_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_word_start = !c.is_alphanumeric();
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs annotations use: `%s %v %d %f %g %e %%`, with a
/// precision (`%.2f`).
fn printf(format: &str, values: &[Datum]) -> Result<String, String> {
    let mut out = String::new();
    let mut values = values.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            precision = Some(digits.parse().unwrap_or(0));
        }
        let verb = chars
            .next()
            .ok_or_else(|| "printf format ends in %".to_owned())?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let value = values
            .next()
            .ok_or_else(|| format!("printf: no value for %{verb}"))?;
        out.push_str(&match verb {
            's' | 'v' => value.text(),
            'f' | 'F' => format_f(value.number()?, precision.unwrap_or(6)),
            'g' => format_g(value.number()?, precision),
            'e' => {
                let number = value.number()?;
                format!("{number:.*e}", precision.unwrap_or(6))
            }
            'd' => {
                let number = value.number()?;
                if number.fract() == 0.0 && number.is_finite() {
                    format!("{number:.0}")
                } else {
                    format!("%!d(float64={})", format_v(number))
                }
            }
            other => return Err(format!("printf verb %{other} is not supported")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str, value: f64) -> String {
        let labels: LabelSet = [("service", "checkout"), ("route", "/api/pay")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Template::parse(text)
            .expect("parses")
            .expand(&TemplateData {
                labels: &labels,
                value,
                external_url: "http://skewer:8080",
            })
    }

    #[test]
    fn labels_values_and_functions_expand_as_in_prometheus() {
        assert_eq!(
            expand("{{ $labels.service }} is at {{ $value }}", 0.25),
            "checkout is at 0.25"
        );
        assert_eq!(
            expand("{{ .Labels.route }}/{{ .Value }}", 3.0),
            "/api/pay/3"
        );
        assert_eq!(expand("{{ $labels.missing }}!", 1.0), "!");
        assert_eq!(
            expand("{{ $value | humanizePercentage }} errors", 0.0512),
            "5.12% errors"
        );
        assert_eq!(
            expand(
                r#"{{ printf "%.2f" $value }}s at {{ $labels.service | toUpper }}"#,
                1.5
            ),
            "1.50s at CHECKOUT"
        );
        assert_eq!(expand("{{ humanize $value }}", 1_500_000.0), "1.5M");
        assert_eq!(expand("a  {{- $value -}}  b", 1.0), "a1b");
        assert_eq!(expand("{{/* note */}}x", 1.0), "x");
        assert_eq!(
            expand("{{ $externalURL }}/ui", 1.0),
            "http://skewer:8080/ui"
        );
        assert_eq!(expand("{{ title \"hello world\" }}", 1.0), "Hello World");
    }

    #[test]
    fn unsupported_actions_are_refused_at_parse() {
        for bad in [
            "{{ if $value }}x{{ end }}",
            "{{ query \"up\" }}",
            "{{ $value ",
            "{{ }}",
            "{{ \"open }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(expand("plain", 1.0), "plain");
    }

    #[test]
    fn failing_actions_leave_their_error() {
        assert!(
            expand("{{ $labels.service | humanize }}", 1.0)
                .starts_with("<error expanding template: ")
        );
    }
}
