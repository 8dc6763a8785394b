//! Clock skew within one trace: spans whose host clock disagrees with their parent's are
//! found, explained and (optionally) moved, the way Jaeger's adjuster does and better.
//!
//! A span's host is its resource's `host.id`, else `host.ip`, `host.name`,
//! `service.instance.id`, `service.name`. Walking each tree from its roots, a span on the same
//! host as its parent takes the parent's delta; a span on another host is compared with its
//! parent *as already adjusted*:
//! - a synchronous child (the parent is not a producer and the child not a consumer) must lie
//!   within its parent: when it does not, it is centred in the parent (network time split
//!   evenly between request and response); a child longer than its parent only has its start
//!   clamped to the parent's;
//! - an asynchronous child (of a producer, or a consumer) only must not start before its
//!   parent: its start is clamped, and it is never squeezed into the parent;
//! - where an offset of 1 ms or more between the two hosts is known across traces, it moves
//!   the child instead of centring, even one within its parent (a clock a few ms off hides
//!   inside its parent's margins, but is off all the same), and an asynchronous or longer
//!   child before its start is clamped; a smaller estimate says the clocks agree, so a child
//!   outside its parent by less is not a clock problem.
//!
//! Children are placed against where their parent belongs (its intended move), whether that
//! move was applied or only reported, so a host in sync is never flagged for its parent's.
//!
//! Every span that moves, or would, carries a finding with the reason; a delta past the
//! maximum, or any delta when adjusting is off, is reported and withheld. Pure: spans in,
//! findings out.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use skewer_storage::model::{Resource, Span, SpanId, SpanKind};

use crate::span_tree::SpanTree;

/// How skew is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkewOptions {
    /// Move spans (true) or only report what would move.
    pub adjust: bool,
    /// The largest delta applied; larger ones are reported and withheld.
    pub max_adjust_nanos: u64,
}

impl Default for SkewOptions {
    fn default() -> Self {
        Self {
            adjust: true,
            max_adjust_nanos: 60 * 1_000_000_000,
        }
    }
}

/// Why and how much one span was (or would have been) moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkewFinding {
    /// The parent it was compared with (for an inherited delta, the span it came from).
    pub relative_to: SpanId,
    /// This span's host.
    pub host: String,
    /// The other span's host.
    pub other_host: String,
    /// Nanoseconds added to start and end (applied or not).
    pub delta_nanos: i64,
    /// Whether the delta was applied.
    pub applied: bool,
    /// The explanation, fit to show the user.
    pub reason: String,
}

/// A span's times after adjustment, and its finding if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanTiming {
    /// Adjusted start (the raw one when nothing applied).
    pub start_unix_nano: u64,
    /// Adjusted end.
    pub end_unix_nano: u64,
    /// Present when the span's clock was found off.
    pub finding: Option<SkewFinding>,
}

/// Clock offsets known across traces: (client host, server host) → how far the server's
/// clock is ahead, ns, with the exchanges it rests on.
pub type KnownOffsets = HashMap<(String, String), (i64, usize)>;

/// Exchanges an estimate needs before it replaces centring.
pub const MIN_EXCHANGES: usize = 5;

/// The estimates of the store as [`KnownOffsets`] (those with enough exchanges).
pub fn known_offsets(estimates: &[skewer_storage::skew::SkewEstimate]) -> KnownOffsets {
    estimates
        .iter()
        .filter(|estimate| estimate.samples >= MIN_EXCHANGES)
        .map(|estimate| {
            (
                (
                    estimate.pair.client_host.clone(),
                    estimate.pair.server_host.clone(),
                ),
                (estimate.offset_nanos, estimate.samples),
            )
        })
        .collect()
}

/// The host a span's clock belongs to (see [`Resource::clock_host`]).
pub fn host_of(resource: &Resource) -> String {
    resource.clock_host().to_owned()
}

fn shifted(time: u64, delta: i64) -> u64 {
    time.saturating_add_signed(delta)
}

fn format_ms(nanos: i64) -> String {
    format!("{:+.3} ms", nanos as f64 / 1e6)
}

/// An offset estimated across traces moves a child that lies within its parent only when it
/// is at least this large: below it, it cannot be told from noise (the accuracy the
/// estimates are held to is ±1 ms), and clocks in sync must not be flagged.
pub const MIN_ESTIMATED_OFFSET_NANOS: u64 = 1_000_000;

/// What a crossing to another host asks of the child: a delta and why, or nothing.
/// `(parent_start, parent_end)` are the parent's times as it would be placed and
/// `parent_delta` what it would be moved by (the known offsets are between raw clocks, so a
/// child's delta from one is relative to its parent's).
fn crossing_delta(
    child: &Span,
    parent: &Span,
    (parent_start, parent_end): (u64, u64),
    parent_delta: i64,
    known: Option<(i64, usize)>,
) -> Option<(i64, String)> {
    let (child_start, child_end) = (child.start_time_unix_nano, child.end_time_unix_nano);
    let child_duration = child_end.saturating_sub(child_start);
    let parent_duration = parent_end.saturating_sub(parent_start);
    let asynchronous = parent.kind == SpanKind::Producer || child.kind == SpanKind::Consumer;
    let diff = |a: u64, b: u64| {
        (i128::from(a) - i128::from(b)).clamp(i64::MIN.into(), i64::MAX.into()) as i64
    };
    // A significant estimate says how far off the child's clock is, wherever the child lies
    // (below 1 ms an estimate is noise: clocks in sync must not be flagged).
    let estimate = known.and_then(|(offset, exchanges)| {
        let delta = parent_delta.saturating_sub(offset);
        (delta.unsigned_abs() >= MIN_ESTIMATED_OFFSET_NANOS).then(|| {
            (
                delta,
                format!(
                    "its clock is off by the offset estimated across traces ({} from {exchanges} exchanges)",
                    format_ms(offset)
                ),
            )
        })
    });
    if asynchronous || child_duration > parent_duration {
        // Only the start is bound: moved by the estimate, then kept from starting before
        // its parent.
        let (moved, why) = estimate.unwrap_or((0, String::new()));
        let start = child_start.saturating_add_signed(moved);
        let clamp = if start < parent_start {
            diff(parent_start, start)
        } else {
            0
        };
        let what = if asynchronous {
            "asynchronous child"
        } else {
            "child longer than its parent"
        };
        let reason = match (moved != 0, clamp != 0) {
            (false, false) => return None,
            (true, false) => format!("{what} on another host: {why}"),
            (false, true) => {
                format!("{what} starts before its parent: start clamped to the parent's")
            }
            (true, true) => format!(
                "{what} on another host: {why}, and it still starts before its parent: start clamped to the parent's"
            ),
        };
        return Some((moved.saturating_add(clamp), reason));
    }
    let contained = child_start >= parent_start && child_end <= parent_end;
    if let Some((delta, why)) = estimate {
        let place = if contained {
            "within its parent"
        } else {
            "not within its parent"
        };
        return Some((
            delta,
            format!("child on another host is {place}, but {why}"),
        ));
    }
    if contained || known.is_some() {
        // Within its parent, or outside it by less than the clocks are known to disagree:
        // not a clock problem.
        return None;
    }
    // Network time split evenly between request and response: centre the child.
    let latency = (parent_duration - child_duration) / 2;
    Some((
        diff(parent_start.saturating_add(latency), child_start),
        "child on another host is not within its parent: centred in the parent".to_owned(),
    ))
}

/// The timing of every span of one trace (same order as `spans`); `known` offsets between
/// hosts replace centring where a child must move.
pub fn adjust_trace(
    spans: &[Span],
    options: &SkewOptions,
    known: &KnownOffsets,
) -> Vec<SpanTiming> {
    let mut timings: Vec<SpanTiming> = spans
        .iter()
        .map(|span| SpanTiming {
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
            finding: None,
        })
        .collect();
    let hosts: Vec<String> = spans.iter().map(|span| host_of(&span.resource)).collect();
    let SpanTree { children, roots } = SpanTree::new(spans);
    // What each span would be moved by were adjusting on and unbounded: children are placed
    // against where their parent belongs, whether its move was applied or only reported (so
    // a host in sync under a withheld move is not flagged).
    let mut intended = vec![0i64; spans.len()];
    // Depth first from each root, carrying the delta applied to the parent and where it
    // came from; `visited` guards against parent cycles.
    let mut visited: HashSet<usize> = HashSet::new();
    let mut stack: Vec<(usize, Option<usize>, i64, Option<usize>)> = roots
        .iter()
        .rev()
        .map(|&root| (root, None, 0, None))
        .collect();
    while let Some((index, parent, inherited, source)) = stack.pop() {
        if !visited.insert(index) {
            continue;
        }
        let span = &spans[index];
        let (delta, origin) = match parent {
            Some(parent) if hosts[parent] != hosts[index] => {
                let known_offset = known
                    .get(&(hosts[parent].clone(), hosts[index].clone()))
                    .copied();
                let parent_delta = intended[parent];
                let placed = (
                    shifted(spans[parent].start_time_unix_nano, parent_delta),
                    shifted(spans[parent].end_time_unix_nano, parent_delta),
                );
                match crossing_delta(span, &spans[parent], placed, parent_delta, known_offset) {
                    Some((delta, why)) if delta != 0 => {
                        intended[index] = delta;
                        let applied =
                            options.adjust && delta.unsigned_abs() <= options.max_adjust_nanos;
                        let reason = if applied {
                            format!(
                                "{why}; moved {} (host {} vs {})",
                                format_ms(delta),
                                hosts[index],
                                hosts[parent]
                            )
                        } else if !options.adjust {
                            format!(
                                "{why}; would move {} (host {} vs {}); adjusting is off",
                                format_ms(delta),
                                hosts[index],
                                hosts[parent]
                            )
                        } else {
                            format!(
                                "{why}; {} exceeds the maximum adjustment of {} ms (host {} vs {}): not moved",
                                format_ms(delta),
                                options.max_adjust_nanos / 1_000_000,
                                hosts[index],
                                hosts[parent]
                            )
                        };
                        timings[index].finding = Some(SkewFinding {
                            relative_to: spans[parent].span_id,
                            host: hosts[index].clone(),
                            other_host: hosts[parent].clone(),
                            delta_nanos: delta,
                            applied,
                            reason,
                        });
                        (if applied { delta } else { 0 }, Some(index))
                    }
                    _ => (0, None),
                }
            }
            Some(parent) => {
                // Same host: the parent's delta carries over.
                intended[index] = intended[parent];
                if inherited != 0
                    && let Some(source) = source
                {
                    timings[index].finding = Some(SkewFinding {
                        relative_to: spans[source].span_id,
                        host: hosts[index].clone(),
                        other_host: hosts[parent].clone(),
                        delta_nanos: inherited,
                        applied: true,
                        reason: format!(
                            "same host as its parent: moved {} with span {}",
                            format_ms(inherited),
                            spans[source].span_id
                        ),
                    });
                }
                (inherited, source)
            }
            None => (0, None),
        };
        timings[index].start_unix_nano = shifted(span.start_time_unix_nano, delta);
        timings[index].end_unix_nano = shifted(span.end_time_unix_nano, delta);
        if let Some(kids) = children.get(&index) {
            for &child in kids.iter().rev() {
                stack.push((child, Some(index), delta, origin));
            }
        }
    }
    timings
}

/// The delta applied to each host in one trace (hosts with none left out), for moving the
/// host's log records with its spans.
pub fn host_deltas(spans: &[Span], timings: &[SpanTiming]) -> HashMap<String, i64> {
    let mut deltas = HashMap::new();
    for (span, timing) in spans.iter().zip(timings) {
        if let Some(finding) = timing.finding.as_ref().filter(|f| f.applied) {
            deltas
                .entry(host_of(&span.resource))
                .or_insert(finding.delta_nanos);
        }
    }
    deltas
}
