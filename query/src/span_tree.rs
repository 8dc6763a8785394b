//! The parent/child structure of one trace's spans, by position: what the skew adjuster and
//! the critical path both walk.

use std::collections::HashMap;

use skewer_storage::model::{Span, SpanId};

/// Children per span and the roots (spans whose parent is absent or themselves).
#[derive(Debug, Default)]
pub struct SpanTree {
    /// Positions of each span's children, in span order.
    pub children: HashMap<usize, Vec<usize>>,
    /// Positions of the roots, in span order.
    pub roots: Vec<usize>,
}

impl SpanTree {
    /// The tree of `spans`; with a repeated span id, children attach to its last occurrence.
    pub fn new(spans: &[Span]) -> Self {
        let by_id: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, span)| (span.span_id, i))
            .collect();
        let mut tree = Self::default();
        for (i, span) in spans.iter().enumerate() {
            match span.parent_span_id.and_then(|parent| by_id.get(&parent)) {
                Some(&parent) if parent != i => tree.children.entry(parent).or_default().push(i),
                _ => tree.roots.push(i),
            }
        }
        tree
    }
}
