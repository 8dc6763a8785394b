//! The critical path of a trace: the chain of work that decided its end-to-end time. Walking
//! back from the root's end, the path stays in a span until the child that ended last before
//! the cursor, descends into it (bounded by the cursor), and comes back at that child's start;
//! time no child covers belongs to the span itself. Children overlapping each other: only the
//! one ending last counts, as in Jaeger's UI. Works on adjusted times, so clock skew does not
//! bend it.

use std::collections::HashMap;

use skewer_storage::model::Span;

use crate::skew::SpanTiming;
use crate::span_tree::SpanTree;

/// One stretch of the path: a span and the part of its time on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathSegment {
    /// Index of the span in the trace.
    pub span: usize,
    /// Start of the stretch, Unix ns.
    pub start_unix_nano: u64,
    /// End of the stretch, Unix ns.
    pub end_unix_nano: u64,
}

/// The critical path of one trace (its spans and their timings, same order), in time order;
/// from the root that ends last. Empty for an empty trace.
pub fn critical_path(spans: &[Span], timings: &[SpanTiming]) -> Vec<PathSegment> {
    let SpanTree { children, roots } = SpanTree::new(spans);
    let Some(&root) = roots.iter().max_by_key(|&&i| timings[i].end_unix_nano) else {
        return Vec::new();
    };
    let mut segments = Vec::new();
    let mut visited = vec![false; spans.len()];
    walk(
        root,
        timings[root].end_unix_nano,
        timings,
        &children,
        &mut visited,
        &mut segments,
    );
    segments.reverse();
    segments
}

/// Adds the path through `span` up to `bound`, latest first.
fn walk(
    span: usize,
    bound: u64,
    timings: &[SpanTiming],
    children: &HashMap<usize, Vec<usize>>,
    visited: &mut [bool],
    segments: &mut Vec<PathSegment>,
) {
    if visited[span] {
        return;
    }
    visited[span] = true;
    let start = timings[span].start_unix_nano;
    let mut cursor = timings[span].end_unix_nano.min(bound);
    let mut kids: Vec<usize> = children.get(&span).cloned().unwrap_or_default();
    kids.sort_by_key(|&k| std::cmp::Reverse(timings[k].end_unix_nano));
    for kid in kids {
        let kid_timing = &timings[kid];
        // Children that start after the cursor, or end before the span starts, are off the
        // path; one ending past the cursor is cut at it.
        if kid_timing.start_unix_nano >= cursor || kid_timing.end_unix_nano <= start {
            continue;
        }
        let kid_end = kid_timing.end_unix_nano.min(cursor);
        if kid_end < cursor {
            segments.push(PathSegment {
                span,
                start_unix_nano: kid_end,
                end_unix_nano: cursor,
            });
        }
        walk(kid, kid_end, timings, children, visited, segments);
        cursor = kid_timing.start_unix_nano.max(start);
    }
    if start < cursor {
        segments.push(PathSegment {
            span,
            start_unix_nano: start,
            end_unix_nano: cursor,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use skewer_storage::model::{
        InstrumentationScope, Resource, SpanId, SpanKind, StatusCode, TraceId,
    };

    use super::*;

    fn span(id: u64, parent: u64) -> Span {
        Span {
            resource: Arc::new(Resource::default()),
            scope: Arc::new(InstrumentationScope::default()),
            trace_id: TraceId([1; 16]),
            span_id: SpanId(id.to_be_bytes()),
            parent_span_id: (parent != 0).then(|| SpanId(parent.to_be_bytes())),
            trace_state: String::new(),
            flags: 0,
            name: String::new(),
            kind: SpanKind::Internal,
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code: StatusCode::Unset,
            status_message: String::new(),
        }
    }

    fn timing(start: u64, end: u64) -> SpanTiming {
        SpanTiming {
            start_unix_nano: start,
            end_unix_nano: end,
            finding: None,
        }
    }

    /// (span index, start, end) of the path.
    fn path(spans: &[Span], timings: &[SpanTiming]) -> Vec<(usize, u64, u64)> {
        critical_path(spans, timings)
            .iter()
            .map(|s| (s.span, s.start_unix_nano, s.end_unix_nano))
            .collect()
    }

    #[test]
    fn the_path_follows_the_child_that_ends_last() {
        // root 0–100; a 10–40 then b 50–90 in sequence; c 20–30 overlaps a and ends first.
        let spans = [span(1, 0), span(2, 1), span(3, 1), span(4, 1)];
        let timings = [
            timing(0, 100),
            timing(10, 40),
            timing(50, 90),
            timing(20, 30),
        ];
        assert_eq!(
            path(&spans, &timings),
            [
                (0, 0, 10),
                (1, 10, 40),
                (0, 40, 50),
                (2, 50, 90),
                (0, 90, 100)
            ]
        );
    }

    #[test]
    fn children_past_their_parent_are_cut_and_grandchildren_followed() {
        // b ends after the root (an async tail): cut at the root's end; b's child d decides.
        let spans = [span(1, 0), span(2, 1), span(3, 2)];
        let timings = [timing(0, 100), timing(60, 150), timing(70, 90)];
        assert_eq!(
            path(&spans, &timings),
            [(0, 0, 60), (1, 60, 70), (2, 70, 90), (1, 90, 100)]
        );
        assert!(critical_path(&[], &[]).is_empty());
    }
}
