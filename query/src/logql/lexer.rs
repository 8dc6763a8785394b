//! LogQL tokens with their byte positions.
//!
//! Strings come double-quoted (Go escapes) or in backticks (raw); numbers may carry a
//! duration (`5m`, `1h30m`, `250ms`) or a byte-size unit (`10KB`, `5MiB`); identifiers are
//! label names, keywords and function names alike (the parser tells them apart by place).

use super::error::LogqlError;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A name: `[A-Za-z_][A-Za-z0-9_]*` (label, keyword or function).
    Ident(String),
    /// A quoted string, unescaped.
    Str(String),
    /// A plain number.
    Number(f64),
    /// A duration, in seconds.
    Duration(f64),
    /// A byte size, in bytes.
    Bytes(f64),
    /// Punctuation and operators, as written.
    Symbol(&'static str),
    /// The end of the query.
    End,
}

impl Token {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Self::Ident(name) => format!("identifier {name:?}"),
            Self::Str(text) => format!("string {text:?}"),
            Self::Number(n) => format!("number {n}"),
            Self::Duration(_) => "duration".to_owned(),
            Self::Bytes(_) => "byte size".to_owned(),
            Self::Symbol(symbol) => format!("{symbol:?}"),
            Self::End => "end of query".to_owned(),
        }
    }
}

/// A token and the byte offset it starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    /// The token.
    pub token: Token,
    /// Byte offset in the query text.
    pub at: usize,
}

/// Operators, longest first so that `!=` wins over `!` and `|=` over `|`.
const SYMBOLS: [&str; 26] = [
    "|=", "|~", "!=", "!~", "=~", "==", ">=", "<=", "|>", "{", "}", "(", ")", "[", "]", ",", "|",
    "=", ">", "<", "+", "-", "*", "/", "%", "^",
];

/// Splits `text` into tokens, ending with [`Token::End`].
pub fn tokenize(text: &str) -> Result<Vec<Spanned>, LogqlError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        if byte == b'#' {
            // A comment runs to the end of the line.
            while at < bytes.len() && bytes[at] != b'\n' {
                at += 1;
            }
            continue;
        }
        let start = at;
        let token = if byte == b'"' {
            let (value, end) = quoted(text, at)?;
            at = end;
            Token::Str(value)
        } else if byte == b'`' {
            let Some(close) = text[at + 1..].find('`') else {
                return Err(LogqlError::at(text, at, "unterminated raw string"));
            };
            at += close + 2;
            Token::Str(text[start + 1..at - 1].to_owned())
        } else if byte.is_ascii_digit()
            || (byte == b'.' && bytes.get(at + 1).is_some_and(u8::is_ascii_digit))
        {
            let (token, end) = number(text, at)?;
            at = end;
            token
        } else if byte.is_ascii_alphabetic() || byte == b'_' {
            while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                at += 1;
            }
            Token::Ident(text[start..at].to_owned())
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| text[at..].starts_with(**s)) {
            at += symbol.len();
            Token::Symbol(symbol)
        } else {
            let character = text[at..].chars().next().unwrap_or('?');
            return Err(LogqlError::at(
                text,
                at,
                format!("unexpected character {character:?}"),
            ));
        };
        tokens.push(Spanned { token, at: start });
    }
    tokens.push(Spanned {
        token: Token::End,
        at: text.len(),
    });
    Ok(tokens)
}

/// A double-quoted string starting at `at`: its value and the offset after it.
fn quoted(text: &str, at: usize) -> Result<(String, usize), LogqlError> {
    let mut value = String::new();
    let mut chars = text[at + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Ok((value, at + 1 + offset + 1)),
            '\\' => {
                let Some((escape_at, escaped)) = chars.next() else {
                    break;
                };
                let unescaped = match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'v' => '\u{b}',
                    '\\' | '"' | '\'' => escaped,
                    'u' | 'U' | 'x' => {
                        let digits = match escaped {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = chars.by_ref().take(digits).map(|(_, c)| c).collect();
                        u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == digits)
                            .and_then(char::from_u32)
                            .ok_or_else(|| {
                                LogqlError::at(text, at + 1 + escape_at, "invalid escape sequence")
                            })?
                    }
                    other => {
                        return Err(LogqlError::at(
                            text,
                            at + 1 + escape_at,
                            format!("unknown escape sequence \\{other}"),
                        ));
                    }
                };
                value.push(unescaped);
            }
            other => value.push(other),
        }
    }
    Err(LogqlError::at(text, at, "unterminated string"))
}

/// A number at `at`, with a duration or byte unit if one follows.
fn number(text: &str, at: usize) -> Result<(Token, usize), LogqlError> {
    let bytes = text.as_bytes();
    let mut end = at;
    let digits_end = |mut i: usize| {
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        i
    };
    end = digits_end(end);
    // An exponent (`1e3`, `2.5E-2`) when digits follow it.
    if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
        let mut i = end + 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        if i < bytes.len() && bytes[i].is_ascii_digit() {
            end = digits_end(i);
        }
    }
    let mut word_end = end;
    while word_end < bytes.len()
        && (bytes[word_end].is_ascii_alphanumeric()
            || bytes[word_end] == b'.'
            || text[word_end..].starts_with('µ'))
    {
        word_end += text[word_end..].chars().next().map_or(1, char::len_utf8);
    }
    let word = &text[at..word_end];
    if word_end == end {
        let value: f64 = word
            .parse()
            .map_err(|_| LogqlError::at(text, at, format!("invalid number {word:?}")))?;
        return Ok((Token::Number(value), end));
    }
    if let Some(seconds) = parse_duration(word) {
        return Ok((Token::Duration(seconds), word_end));
    }
    if let Some(size) = parse_bytes(word) {
        return Ok((Token::Bytes(size), word_end));
    }
    Err(LogqlError::at(
        text,
        at,
        format!("invalid number, duration or byte size {word:?}"),
    ))
}

/// Seconds in a duration such as `5m`, `1h30m`, `1.5s`, `250ms` (units ns, us, µs, ms, s,
/// m, h, d, w, y).
pub fn parse_duration(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut seconds = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3_600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            "y" => 31_536_000.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        seconds += value * unit;
    }
    Some(seconds)
}

/// Bytes in a size such as `10KB`, `5MiB`, `1gb` (SI and binary units, any case).
pub fn parse_bytes(text: &str) -> Option<f64> {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let value: f64 = text[..number_len].parse().ok()?;
    let unit = match text[number_len..].to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "kib" | "ki" => 1024.0,
        "mb" | "m" => 1e6,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gb" | "g" => 1e9,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "tb" | "t" => 1e12,
        "tib" | "ti" => 1024f64.powi(4),
        "pb" | "p" => 1e15,
        "pib" | "pi" => 1024f64.powi(5),
        _ => return None,
    };
    Some(value * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Token> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|spanned| spanned.token)
            .collect()
    }

    #[test]
    fn operators_take_their_longest_form() {
        assert_eq!(
            tokens(r#"{a!="b"} |= `c\d` != "e" |~ "f" | x >= 2"#),
            [
                Token::Symbol("{"),
                Token::Ident("a".into()),
                Token::Symbol("!="),
                Token::Str("b".into()),
                Token::Symbol("}"),
                Token::Symbol("|="),
                Token::Str(r"c\d".into()),
                Token::Symbol("!="),
                Token::Str("e".into()),
                Token::Symbol("|~"),
                Token::Str("f".into()),
                Token::Symbol("|"),
                Token::Ident("x".into()),
                Token::Symbol(">="),
                Token::Number(2.0),
                Token::End,
            ]
        );
    }

    #[test]
    fn numbers_carry_durations_and_sizes() {
        assert_eq!(
            tokens("5m 1h30m 250ms 1.5s 10KB 5MiB 2.5 1e3 7"),
            [
                Token::Duration(300.0),
                Token::Duration(5_400.0),
                Token::Duration(0.25),
                Token::Duration(1.5),
                Token::Bytes(10_000.0),
                Token::Bytes(5.0 * 1024.0 * 1024.0),
                Token::Number(2.5),
                Token::Number(1000.0),
                Token::Number(7.0),
                Token::End,
            ]
        );
        assert!(tokenize("5parsecs").is_err());
    }

    #[test]
    fn strings_unescape_go_style_and_errors_have_positions() {
        assert_eq!(
            tokens(r#""a\"b\n\u00e9""#),
            [Token::Str("a\"b\né".into()), Token::End]
        );
        let error = tokenize("{a=\"b}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "parse error at line 1, col 4: unterminated string"
        );
        let error = tokenize("{a=\"b\"}\n  @").unwrap_err();
        assert_eq!(
            error.to_string(),
            "parse error at line 2, col 3: unexpected character '@'"
        );
        assert_eq!(tokens("# only a comment"), [Token::End]);
    }
}
