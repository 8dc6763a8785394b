//! LogQL errors: where the query text is wrong (line and column, as Loki reports them), or
//! why a valid query cannot run.

/// Why a LogQL query was refused or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogqlError {
    /// The text is not valid LogQL.
    #[error("parse error at line {line}, col {column}: {message}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The query is valid but cannot be evaluated as asked (a pipeline error left unfiltered,
    /// a limit reached).
    #[error("{0}")]
    Execution(String),
}

impl LogqlError {
    /// A parse error at byte offset `at` of `text`.
    pub fn at(text: &str, at: usize, message: impl Into<String>) -> Self {
        let before = &text[..at.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self::Parse {
            line,
            column,
            message: message.into(),
        }
    }
}
