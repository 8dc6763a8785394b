//! Predicates of the scan API: what rows a scan keeps, evaluated on Arrow batches (file rows
//! and buffered records alike), and the facts the planner pushes down (an equality on a column
//! prunes files, row groups and pages).
//!
//! Pure: batches in, masks out. Comparisons use arrow-ord's kernels, so every column type the
//! formats write (ids, text, dictionary text, integers) compares the same way everywhere.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, Int32Array, Int64Array,
    RecordBatch, Scalar, StringArray, UInt8Array, UInt32Array, UInt64Array,
};
use arrow_buffer::BooleanBuffer;
use arrow_schema::DataType;

/// A value a predicate compares a column with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// Bytes (ids).
    Bytes(Vec<u8>),
    /// Text.
    Text(String),
    /// An unsigned integer (times, enums).
    UInt(u64),
    /// A signed integer.
    Int(i64),
}

/// Which rows a scan keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// Every row.
    All,
    /// `column == value`.
    Eq(String, Value),
    /// `column` is one of the values.
    In(String, Vec<Value>),
    /// `min <= column < max`, either bound optional.
    Range {
        /// The column.
        column: String,
        /// Inclusive lower bound.
        min: Option<Value>,
        /// Exclusive upper bound.
        max: Option<Value>,
    },
    /// Every part holds.
    And(Vec<Predicate>),
    /// Some part holds.
    Or(Vec<Predicate>),
    /// The part does not hold.
    Not(Box<Predicate>),
    /// A span carries a tag: some attribute of the span, of its resource or of one of its
    /// events has `key` and, when given, `value` as text. Spans only (it reads the columns
    /// [`crate::parquet_codec::TAG_COLUMNS`]); evaluated without decoding the spans, so it
    /// is the cheap first cut of a tag search.
    Tag {
        /// The attribute key.
        key: String,
        /// The value as text; `None` for any value.
        value: Option<String>,
        /// Look in span attributes alone (the file's summary says no resource or event
        /// has the key).
        span_attributes_only: bool,
    },
}

/// Why a predicate cannot be evaluated on a batch.
#[derive(Debug, thiserror::Error)]
pub enum PredicateError {
    /// The predicate names a column the signal does not have.
    #[error("no column {0}")]
    UnknownColumn(String),
    /// The value cannot be compared with the column's type.
    #[error("column {column} ({data_type}) cannot be compared with {value:?}")]
    TypeMismatch {
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: String,
        /// The value given.
        value: Value,
    },
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A column did not hold what its format says.
    #[error("{0}")]
    Codec(String),
}

impl Predicate {
    /// `column == value`.
    pub fn eq(column: &str, value: Value) -> Self {
        Self::Eq(column.to_owned(), value)
    }

    /// Both `self` and `other`.
    pub fn and(self, other: Predicate) -> Self {
        match (self, other) {
            (Self::All, other) | (other, Self::All) => other,
            (Self::And(mut parts), Self::And(more)) => {
                parts.extend(more);
                Self::And(parts)
            }
            (Self::And(mut parts), other) | (other, Self::And(mut parts)) => {
                parts.push(other);
                Self::And(parts)
            }
            (a, b) => Self::And(vec![a, b]),
        }
    }

    /// The value `column` must equal for any row to match (a top-level conjunct), which the
    /// planner pushes into file filters, row-group statistics and the page index.
    pub fn required_value(&self, column: &str) -> Option<&Value> {
        match self {
            Self::Eq(name, value) if name == column => Some(value),
            Self::And(parts) => parts.iter().find_map(|part| part.required_value(column)),
            _ => None,
        }
    }

    /// The values one of which `column` must equal for any row to match (a top-level
    /// equality or set membership), which the planner pushes down like a single value.
    pub fn required_values(&self, column: &str) -> Option<Vec<&Value>> {
        match self {
            Self::Eq(name, value) if name == column => Some(vec![value]),
            Self::In(name, values) if name == column => Some(values.iter().collect()),
            Self::And(parts) => parts.iter().find_map(|part| part.required_values(column)),
            _ => None,
        }
    }

    /// The bounds every matching row's `column` lies within, from top-level unsigned ranges
    /// (several are intersected); `None` when there is none.
    pub fn required_range(&self, column: &str) -> Option<(Option<u64>, Option<u64>)> {
        let uint = |value: &Option<Value>| match value {
            Some(Value::UInt(value)) => Some(Some(*value)),
            None => Some(None),
            _ => None,
        };
        match self {
            Self::Range {
                column: name,
                min,
                max,
            } if name == column => Some((uint(min)?, uint(max)?)),
            Self::And(parts) => parts
                .iter()
                .filter_map(|part| part.required_range(column))
                .reduce(|(min_a, max_a), (min_b, max_b)| {
                    (
                        min_a.max(min_b),
                        match (max_a, max_b) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        },
                    )
                }),
            _ => None,
        }
    }

    /// This predicate with its top-level requirement on `column` (what
    /// [`Self::required_values`] finds) narrowed to membership in `values`: for a file known
    /// to hold only some of the values asked for.
    pub fn narrowed(&self, column: &str, values: Vec<Value>) -> Predicate {
        match self {
            Self::Eq(name, _) | Self::In(name, _) if name == column => {
                Self::In(name.clone(), values)
            }
            Self::And(parts) => {
                let mut values = Some(values);
                Self::And(
                    parts
                        .iter()
                        .map(|part| match part.required_values(column) {
                            Some(_) => match values.take() {
                                Some(values) => part.narrowed(column, values),
                                None => part.clone(),
                            },
                            None => part.clone(),
                        })
                        .collect(),
                )
            }
            other => other.clone(),
        }
    }

    /// The parts of a conjunction (the predicate itself when it is not one).
    pub fn conjuncts(&self) -> Vec<Predicate> {
        match self {
            Self::And(parts) => parts.clone(),
            other => vec![other.clone()],
        }
    }

    /// Every column the predicate reads.
    pub fn columns(&self) -> BTreeSet<&str> {
        let mut columns = BTreeSet::new();
        self.collect_columns(&mut columns);
        columns
    }

    fn collect_columns<'a>(&'a self, columns: &mut BTreeSet<&'a str>) {
        match self {
            Self::All => {}
            Self::Eq(column, _) | Self::In(column, _) | Self::Range { column, .. } => {
                columns.insert(column);
            }
            Self::And(parts) | Self::Or(parts) => {
                for part in parts {
                    part.collect_columns(columns);
                }
            }
            Self::Not(part) => part.collect_columns(columns),
            Self::Tag {
                span_attributes_only: true,
                ..
            } => {
                columns.insert(crate::parquet_codec::TAG_COLUMNS[0]);
            }
            Self::Tag { .. } => columns.extend(crate::parquet_codec::TAG_COLUMNS),
        }
    }

    /// This predicate with each tag whose key `may_nest` says no resource or event has
    /// looked for in span attributes alone (the same rows match).
    pub fn tags_narrowed(self, may_nest: &impl Fn(&str) -> bool) -> Predicate {
        self.map_tags(&|key, value, span_attributes_only| Self::Tag {
            span_attributes_only: span_attributes_only || !may_nest(&key),
            key,
            value,
        })
    }

    /// This predicate with each tag on span attributes alone whose key has a column of its
    /// own (`column_of`) checked on that column: the same rows match, read from one flat
    /// column instead of every span's attribute list.
    pub fn tags_as_columns(self, column_of: &impl Fn(&str) -> Option<&'static str>) -> Predicate {
        self.map_tags(&|key, value, span_attributes_only| match (
            &value,
            span_attributes_only,
            column_of(&key),
        ) {
            (Some(text), true, Some(column)) => Self::eq(column, Value::Text(text.clone())),
            _ => Self::Tag {
                key,
                value,
                span_attributes_only,
            },
        })
    }

    /// This predicate with every tag, wherever it sits, replaced by what `replace` makes of
    /// its key, value and `span_attributes_only`.
    fn map_tags(self, replace: &impl Fn(String, Option<String>, bool) -> Predicate) -> Predicate {
        let map_all = |parts: Vec<Predicate>| -> Vec<Predicate> {
            parts
                .into_iter()
                .map(|part| part.map_tags(replace))
                .collect()
        };
        match self {
            Self::Tag {
                key,
                value,
                span_attributes_only,
            } => replace(key, value, span_attributes_only),
            Self::And(parts) => Self::And(map_all(parts)),
            Self::Or(parts) => Self::Or(map_all(parts)),
            Self::Not(part) => Self::Not(Box::new(part.map_tags(replace))),
            other => other,
        }
    }

    /// The text values top-level tags require of span attributes alone (what an attribute
    /// value bloom filter can rule out).
    pub fn required_attribute_texts(&self) -> Vec<&str> {
        match self {
            Self::Tag {
                value: Some(value),
                span_attributes_only: true,
                ..
            } => vec![value.as_str()],
            Self::And(parts) => parts
                .iter()
                .flat_map(Self::required_attribute_texts)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether evaluating this predicate decodes nested columns (so a scan evaluates it
    /// last, on the rows the cheap parts left).
    pub fn is_costly(&self) -> bool {
        match self {
            Self::Tag { .. } => true,
            Self::And(parts) | Self::Or(parts) => parts.iter().any(Self::is_costly),
            Self::Not(part) => part.is_costly(),
            _ => false,
        }
    }

    /// Which rows of `batch` match (nulls never match).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanBuffer, PredicateError> {
        let rows = batch.num_rows();
        Ok(match self {
            Self::All => BooleanBuffer::new_set(rows),
            Self::Eq(column, value) => compare(batch, column, value, arrow_ord::cmp::eq)?,
            Self::In(column, values) => {
                let mut mask = BooleanBuffer::new_unset(rows);
                for value in values {
                    mask = &mask | &compare(batch, column, value, arrow_ord::cmp::eq)?;
                }
                mask
            }
            Self::Range { column, min, max } => {
                let mut mask = BooleanBuffer::new_set(rows);
                if let Some(min) = min {
                    mask = &mask & &compare(batch, column, min, arrow_ord::cmp::gt_eq)?;
                }
                if let Some(max) = max {
                    mask = &mask & &compare(batch, column, max, arrow_ord::cmp::lt)?;
                }
                mask
            }
            Self::And(parts) => {
                let mut mask = BooleanBuffer::new_set(rows);
                for part in parts {
                    mask = &mask & &part.evaluate(batch)?;
                }
                mask
            }
            Self::Or(parts) => {
                let mut mask = BooleanBuffer::new_unset(rows);
                for part in parts {
                    mask = &mask | &part.evaluate(batch)?;
                }
                mask
            }
            Self::Not(part) => !&part.evaluate(batch)?,
            Self::Tag {
                key,
                value,
                span_attributes_only,
            } => {
                crate::parquet_codec::tag_mask(batch, key, value.as_deref(), *span_attributes_only)
                    .map_err(|err| match err {
                        crate::parquet_codec::CodecError::MissingColumn { column } => {
                            PredicateError::UnknownColumn(column)
                        }
                        other => PredicateError::Codec(other.to_string()),
                    })?
            }
        })
    }
}

type Kernel = fn(
    &dyn arrow_array::Datum,
    &dyn arrow_array::Datum,
) -> Result<BooleanArray, arrow_schema::ArrowError>;

/// `column <op> value` over a batch, nulls as false.
fn compare(
    batch: &RecordBatch,
    column: &str,
    value: &Value,
    kernel: Kernel,
) -> Result<BooleanBuffer, PredicateError> {
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| PredicateError::UnknownColumn(column.to_owned()))?;
    let scalar = scalar_for(array.data_type(), column, value)?;
    let result = kernel(array, &Scalar::new(scalar))?;
    Ok(match result.nulls() {
        Some(nulls) => result.values() & nulls.inner(),
        None => result.values().clone(),
    })
}

/// A one-row array of `value` with the type a column of `data_type` compares with.
fn scalar_for(
    data_type: &DataType,
    column: &str,
    value: &Value,
) -> Result<ArrayRef, PredicateError> {
    let mismatch = || PredicateError::TypeMismatch {
        column: column.to_owned(),
        data_type: data_type.to_string(),
        value: value.clone(),
    };
    let array: ArrayRef = match (data_type, value) {
        (DataType::Dictionary(_, values), _) => return scalar_for(values, column, value),
        (DataType::FixedSizeBinary(width), Value::Bytes(bytes)) => {
            if usize::try_from(*width).ok() != Some(bytes.len()) {
                return Err(mismatch());
            }
            Arc::new(
                FixedSizeBinaryArray::try_from_iter(std::iter::once(bytes.as_slice()))
                    .map_err(|_| mismatch())?,
            )
        }
        (DataType::Binary, Value::Bytes(bytes)) => {
            Arc::new(BinaryArray::from_iter_values([bytes.as_slice()]))
        }
        (DataType::Utf8, Value::Text(text)) => Arc::new(StringArray::from_iter_values([text])),
        (DataType::UInt64, Value::UInt(n)) => Arc::new(UInt64Array::from(vec![*n])),
        (DataType::UInt32, Value::UInt(n)) => Arc::new(UInt32Array::from(vec![
            u32::try_from(*n).map_err(|_| mismatch())?,
        ])),
        (DataType::UInt8, Value::UInt(n)) => Arc::new(UInt8Array::from(vec![
            u8::try_from(*n).map_err(|_| mismatch())?,
        ])),
        (DataType::Int64, Value::Int(n)) => Arc::new(Int64Array::from(vec![*n])),
        (DataType::Int32, Value::Int(n)) => Arc::new(Int32Array::from(vec![
            i32::try_from(*n).map_err(|_| mismatch())?,
        ])),
        _ => return Err(mismatch()),
    };
    Ok(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::DictionaryArray;
    use arrow_array::types::Int32Type;
    use arrow_schema::{Field, Schema};

    fn batch() -> RecordBatch {
        let ids = FixedSizeBinaryArray::try_from_iter(
            [[1u8; 16], [2; 16], [1; 16], [3; 16]]
                .iter()
                .map(|id| id.as_slice()),
        )
        .unwrap();
        let names = StringArray::from(vec![Some("a"), Some("b"), None, Some("a")]);
        let times = UInt64Array::from(vec![10, 20, 30, 40]);
        let dictionary: DictionaryArray<Int32Type> = vec!["x", "y", "x", "x"].into_iter().collect();
        let schema = Schema::new(vec![
            Field::new("id", ids.data_type().clone(), false),
            Field::new("name", DataType::Utf8, true),
            Field::new("time", DataType::UInt64, false),
            Field::new("dict", dictionary.data_type().clone(), false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(ids),
                Arc::new(names),
                Arc::new(times),
                Arc::new(dictionary),
            ],
        )
        .unwrap()
    }

    fn rows(predicate: &Predicate) -> Vec<usize> {
        predicate
            .evaluate(&batch())
            .unwrap()
            .set_indices()
            .collect()
    }

    #[test]
    fn comparisons_cover_every_column_kind() {
        assert_eq!(
            rows(&Predicate::eq("id", Value::Bytes(vec![1; 16]))),
            [0, 2]
        );
        assert_eq!(
            rows(&Predicate::eq("name", Value::Text("a".into()))),
            [0, 3]
        );
        assert_eq!(
            rows(&Predicate::eq("dict", Value::Text("x".into()))),
            [0, 2, 3]
        );
        let range = Predicate::Range {
            column: "time".into(),
            min: Some(Value::UInt(20)),
            max: Some(Value::UInt(40)),
        };
        assert_eq!(rows(&range), [1, 2], "min inclusive, max exclusive");
        let any = Predicate::In(
            "name".into(),
            vec![Value::Text("b".into()), Value::Text("z".into())],
        );
        assert_eq!(rows(&any), [1]);
        assert_eq!(rows(&Predicate::All), [0, 1, 2, 3]);
    }

    #[test]
    fn logic_combines_and_nulls_never_match() {
        let a = Predicate::eq("name", Value::Text("a".into()));
        let late = Predicate::Range {
            column: "time".into(),
            min: Some(Value::UInt(35)),
            max: None,
        };
        assert_eq!(rows(&a.clone().and(late.clone())), [3]);
        assert_eq!(rows(&Predicate::Or(vec![a.clone(), late])), [0, 3]);
        assert_eq!(
            rows(&Predicate::Not(Box::new(a.clone()))),
            [1, 2],
            "the null row is not 'a'"
        );
        assert_eq!(Predicate::All.and(a.clone()), a);
    }

    #[test]
    fn required_values_are_found_in_conjunctions_only() {
        let id = Predicate::eq("id", Value::Bytes(vec![7; 16]));
        let both = id
            .clone()
            .and(Predicate::eq("name", Value::Text("a".into())));
        assert_eq!(both.required_value("id"), Some(&Value::Bytes(vec![7; 16])));
        assert_eq!(
            both.columns().into_iter().collect::<Vec<_>>(),
            ["id", "name"]
        );
        let either = Predicate::Or(vec![id, Predicate::All]);
        assert_eq!(either.required_value("id"), None);
    }

    #[test]
    fn mismatched_and_unknown_columns_are_errors() {
        let wrong_type = Predicate::eq("time", Value::Text("x".into()));
        assert!(matches!(
            wrong_type.evaluate(&batch()),
            Err(PredicateError::TypeMismatch { .. })
        ));
        let short_id = Predicate::eq("id", Value::Bytes(vec![1; 3]));
        assert!(short_id.evaluate(&batch()).is_err());
        let unknown = Predicate::eq("nope", Value::UInt(1));
        assert!(matches!(
            unknown.evaluate(&batch()),
            Err(PredicateError::UnknownColumn(_))
        ));
    }

    #[test]
    fn narrowing_replaces_the_required_set_only() {
        let wide = Predicate::In(
            "id".into(),
            vec![Value::UInt(1), Value::UInt(2), Value::UInt(3)],
        )
        .and(Predicate::eq("service", Value::Text("api".into())));
        let narrow = wide.narrowed("id", vec![Value::UInt(2)]);
        assert_eq!(
            narrow,
            Predicate::In("id".into(), vec![Value::UInt(2)])
                .and(Predicate::eq("service", Value::Text("api".into())))
        );
        assert_eq!(narrow.required_values("id"), Some(vec![&Value::UInt(2)]));
        let other = Predicate::eq("service", Value::Text("api".into()));
        assert_eq!(other.narrowed("id", vec![]), other);
    }

    #[test]
    fn tags_are_narrowed_inside_negations_and_alternatives_too() {
        let tag = |key: &str, span_attributes_only| Predicate::Tag {
            key: key.into(),
            value: None,
            span_attributes_only,
        };
        let status = Predicate::eq("status_code", Value::UInt(2));
        let wide = Predicate::Not(Box::new(tag("a", false))).and(Predicate::Or(vec![
            status.clone(),
            tag("nested", false),
            tag("b", false),
        ]));
        let narrow = wide.tags_narrowed(&|key| key == "nested");
        assert_eq!(
            narrow,
            Predicate::Not(Box::new(tag("a", true))).and(Predicate::Or(vec![
                status,
                tag("nested", false),
                tag("b", true),
            ]))
        );
        assert!(narrow.required_attribute_texts().is_empty());
    }
}
