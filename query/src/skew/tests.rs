//! Table-driven tests of the skew logic: nested hosts, missing parents, duplicate ids, async
//! children, children longer than parents, zero-length spans, the maximum and warn-only.

use std::sync::Arc;

use skewer_storage::model::{
    Attribute, InstrumentationScope, Resource, Span, SpanId, SpanKind, StatusCode, TraceId,
};

use super::*;

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

/// A span `id` (parent `parent`, 0 for none) on `host`, from `start` to `end` ms after T0.
fn span(id: u64, parent: u64, host: &str, kind: SpanKind, start: u64, end: u64) -> Span {
    Span {
        resource: Arc::new(Resource {
            attributes: vec![
                Attribute::string("service.name", format!("svc-{host}")),
                Attribute::string("host.name", host),
            ],
            ..Resource::default()
        }),
        scope: Arc::new(InstrumentationScope::default()),
        trace_id: TraceId([1; 16]),
        span_id: SpanId(id.to_be_bytes()),
        parent_span_id: (parent != 0).then(|| SpanId(parent.to_be_bytes())),
        trace_state: String::new(),
        flags: 0,
        name: format!("op-{id}"),
        kind,
        start_time_unix_nano: T0 + start * MS,
        end_time_unix_nano: T0 + end * MS,
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

use SpanKind::{Client, Consumer, Internal, Producer, Server};

/// (adjusted start ms, adjusted end ms, delta ms if flagged, applied) per span.
type Expected = Vec<(i64, i64, Option<(f64, bool)>)>;

fn check(name: &str, spans: &[Span], options: SkewOptions, expected: Expected) {
    let timings = adjust_trace(spans, &options, &KnownOffsets::new());
    let found: Expected = timings
        .iter()
        .map(|t| {
            (
                (t.start_unix_nano as i128 - T0 as i128) as i64 / MS as i64,
                (t.end_unix_nano as i128 - T0 as i128) as i64 / MS as i64,
                t.finding
                    .as_ref()
                    .map(|f| (f.delta_nanos as f64 / MS as f64, f.applied)),
            )
        })
        .collect();
    assert_eq!(found, expected, "{name}: {timings:#?}");
}

#[test]
fn skew_cases() {
    let adjust = SkewOptions::default();
    let cases: Vec<(&str, Vec<Span>, SkewOptions, Expected)> = vec![
        (
            "synchronised clocks: nothing flagged",
            vec![
                span(1, 0, "a", Server, 0, 100),
                span(2, 1, "a", Client, 10, 90),
                span(3, 2, "b", Server, 20, 80),
            ],
            adjust,
            vec![(0, 100, None), (10, 90, None), (20, 80, None)],
        ),
        (
            "server 250 ms ahead: centred in its client, its children follow",
            vec![
                span(1, 0, "a", Client, 0, 100),
                span(2, 1, "b", Server, 270, 330),
                span(3, 2, "b", Internal, 280, 300),
            ],
            adjust,
            vec![
                (0, 100, None),
                (20, 80, Some((-250.0, true))),
                (30, 50, Some((-250.0, true))),
            ],
        ),
        (
            "nested hosts: a → b → c, each compared with its adjusted parent",
            vec![
                span(1, 0, "a", Client, 0, 100),
                span(2, 1, "b", Server, 1_010, 1_090),
                span(3, 2, "b", Client, 1_020, 1_080),
                span(4, 3, "c", Server, 20, 40),
            ],
            adjust,
            vec![
                (0, 100, None),
                (10, 90, Some((-1_000.0, true))),
                (20, 80, Some((-1_000.0, true))),
                (20, 40, None),
            ],
        ),
        (
            "missing parent: the orphan is a root, untouched",
            vec![
                span(1, 0, "a", Client, 0, 100),
                span(2, 99, "b", Server, 500, 600),
            ],
            adjust,
            vec![(0, 100, None), (500, 600, None)],
        ),
        (
            "asynchronous consumer after its producer: not squeezed",
            vec![
                span(1, 0, "a", Producer, 0, 5),
                span(2, 1, "b", Consumer, 200, 300),
            ],
            adjust,
            vec![(0, 5, None), (200, 300, None)],
        ),
        (
            "asynchronous consumer before its producer: start clamped",
            vec![
                span(1, 0, "a", Producer, 100, 105),
                span(2, 1, "b", Consumer, 40, 60),
            ],
            adjust,
            vec![(100, 105, None), (100, 120, Some((60.0, true)))],
        ),
        (
            "child longer than its parent, starting inside: left alone",
            vec![
                span(1, 0, "a", Client, 0, 50),
                span(2, 1, "b", Server, 10, 200),
            ],
            adjust,
            vec![(0, 50, None), (10, 200, None)],
        ),
        (
            "child longer than its parent, starting before: start clamped",
            vec![
                span(1, 0, "a", Client, 100, 150),
                span(2, 1, "b", Server, 90, 300),
            ],
            adjust,
            vec![(100, 150, None), (100, 310, Some((10.0, true)))],
        ),
        (
            "zero-length spans on two hosts at one instant: contained",
            vec![
                span(1, 0, "a", Client, 10, 10),
                span(2, 1, "b", Server, 10, 10),
            ],
            adjust,
            vec![(10, 10, None), (10, 10, None)],
        ),
        (
            "past the maximum: reported, not moved, children untouched",
            vec![
                span(1, 0, "a", Client, 0, 100),
                span(2, 1, "b", Server, 120_020, 120_080),
                span(3, 2, "b", Internal, 120_030, 120_040),
            ],
            adjust,
            vec![
                (0, 100, None),
                (120_020, 120_080, Some((-120_000.0, false))),
                (120_030, 120_040, None),
            ],
        ),
        (
            "warn only: reported, not moved",
            vec![
                span(1, 0, "a", Client, 0, 100),
                span(2, 1, "b", Server, 270, 330),
            ],
            SkewOptions {
                adjust: false,
                ..adjust
            },
            vec![(0, 100, None), (270, 330, Some((-250.0, false)))],
        ),
    ];
    for (name, spans, options, expected) in cases {
        check(name, &spans, options, expected);
    }
}

#[test]
fn duplicate_ids_and_cycles_do_not_loop() {
    // Two spans claim id 2; span 3 and 4 are each other's parent.
    let spans = vec![
        span(1, 0, "a", Client, 0, 100),
        span(2, 1, "b", Server, 10, 90),
        span(2, 1, "b", Server, 10, 90),
        span(3, 4, "c", Server, 0, 10),
        span(4, 3, "c", Server, 0, 10),
    ];
    let timings = adjust_trace(&spans, &SkewOptions::default(), &KnownOffsets::new());
    assert_eq!(timings.len(), 5);
    assert!(timings.iter().all(|t| t.finding.is_none()));
}

#[test]
fn findings_explain_themselves_and_hosts_fall_back_to_the_service() {
    let spans = vec![
        span(1, 0, "a", Client, 0, 100),
        span(2, 1, "b", Server, 270, 330),
    ];
    let timings = adjust_trace(&spans, &SkewOptions::default(), &KnownOffsets::new());
    let finding = timings[1].finding.as_ref().unwrap();
    assert_eq!(finding.host, "b");
    assert_eq!(finding.other_host, "a");
    assert_eq!(finding.relative_to, spans[0].span_id);
    assert!(
        finding.reason.contains("centred in the parent"),
        "{}",
        finding.reason
    );
    assert!(finding.reason.contains("-250.000 ms"), "{}", finding.reason);
    assert_eq!(
        host_deltas(&spans, &timings).get("b"),
        Some(&(-250 * MS as i64))
    );
    let bare = Resource {
        attributes: vec![Attribute::string("service.name", "cart")],
        ..Resource::default()
    };
    assert_eq!(host_of(&bare), "cart");
    let with_id = Resource {
        attributes: vec![
            Attribute::string("host.name", "n"),
            Attribute::string("host.id", "i-1"),
        ],
        ..Resource::default()
    };
    assert_eq!(host_of(&with_id), "i-1");
}

#[test]
fn an_offset_known_across_traces_replaces_centring() {
    // b is 250 ms ahead, known from 40 exchanges; this call's server work sits late in the
    // client span, which centring would have got wrong by 20 ms.
    let spans = vec![
        span(1, 0, "a", Client, 0, 100),
        span(2, 1, "b", Server, 310, 340),
    ];
    let known: KnownOffsets = [(("a".to_owned(), "b".to_owned()), (250 * MS as i64, 40))]
        .into_iter()
        .collect();
    let timings = adjust_trace(&spans, &SkewOptions::default(), &known);
    assert_eq!(timings[1].start_unix_nano, T0 + 60 * MS);
    let finding = timings[1].finding.as_ref().unwrap();
    assert_eq!(finding.delta_nanos, -250 * MS as i64);
    assert!(
        finding.reason.contains("40 exchanges"),
        "{}",
        finding.reason
    );
    // Without it: centred.
    let centred = adjust_trace(&spans, &SkewOptions::default(), &KnownOffsets::new());
    assert_eq!(centred[1].start_unix_nano, T0 + 35 * MS);
}

#[test]
fn a_known_offset_moves_a_child_within_its_parent_and_is_relative_to_the_moved_parent() {
    // b is 3 ms ahead: its server span still fits in a's client span, yet it is moved by the
    // estimate; c (in sync with a) called from b's client span stays where it is, though b's
    // spans moved; a second call to c from a, in sync, is not touched.
    let spans = vec![
        span(1, 0, "a", Client, 0, 100),
        span(2, 1, "b", Server, 13, 93),
        span(3, 2, "b", Client, 23, 83),
        span(4, 3, "c", Server, 22, 78),
        span(5, 1, "c", Server, 40, 60),
    ];
    let known: KnownOffsets = [
        (("a".to_owned(), "b".to_owned()), (3 * MS as i64, 30)),
        (("b".to_owned(), "c".to_owned()), (-3 * MS as i64, 30)),
        (("a".to_owned(), "c".to_owned()), (0, 30)),
    ]
    .into_iter()
    .collect();
    let timings = adjust_trace(&spans, &SkewOptions::default(), &known);
    let starts: Vec<u64> = timings.iter().map(|t| t.start_unix_nano - T0).collect();
    assert_eq!(starts, [0, 10 * MS, 20 * MS, 22 * MS, 40 * MS]);
    let flagged: Vec<bool> = timings.iter().map(|t| t.finding.is_some()).collect();
    assert_eq!(flagged, [false, true, true, false, false]);
    let reason = &timings[1].finding.as_ref().unwrap().reason;
    assert!(
        reason.contains("within its parent, but its clock is off"),
        "{reason}"
    );
    // Adjusting off: b is reported ("would move"), and c, placed against where b belongs,
    // is not.
    let warn_only = SkewOptions {
        adjust: false,
        ..SkewOptions::default()
    };
    let reported = adjust_trace(&spans, &warn_only, &known);
    let flagged: Vec<bool> = reported.iter().map(|t| t.finding.is_some()).collect();
    assert_eq!(flagged, [false, true, false, false, false]);
    assert!(reported.iter().all(|t| t.start_unix_nano >= T0));
    assert_eq!(reported[1].start_unix_nano, T0 + 13 * MS, "nothing moved");
    // Below a millisecond an estimate is noise: nothing moves.
    let slight: KnownOffsets = [(("a".to_owned(), "b".to_owned()), (MS as i64 / 2, 30))]
        .into_iter()
        .collect();
    let timings = adjust_trace(&spans[..2], &SkewOptions::default(), &slight);
    assert!(timings.iter().all(|t| t.finding.is_none()));
}

#[test]
fn a_consumer_on_a_skewed_host_is_moved_by_the_estimate_and_its_callee_left_alone() {
    // The consumer's host (b) is 3 ms ahead: it starts after its producer all the same, so
    // only the estimate can tell; the in-sync callee (c) of b's client span stays put.
    let spans = vec![
        span(1, 0, "a", Producer, 0, 10),
        span(2, 1, "b", Consumer, 53, 153),
        span(3, 2, "b", Client, 63, 103),
        span(4, 3, "c", Server, 61, 99),
    ];
    let known: KnownOffsets = [
        (("a".to_owned(), "b".to_owned()), (3 * MS as i64, 30)),
        (("b".to_owned(), "c".to_owned()), (-3 * MS as i64, 30)),
    ]
    .into_iter()
    .collect();
    let timings = adjust_trace(&spans, &SkewOptions::default(), &known);
    let starts: Vec<u64> = timings.iter().map(|t| t.start_unix_nano - T0).collect();
    assert_eq!(starts, [0, 50 * MS, 60 * MS, 61 * MS]);
    let flagged: Vec<bool> = timings.iter().map(|t| t.finding.is_some()).collect();
    assert_eq!(flagged, [false, true, true, false]);
    let reason = &timings[1].finding.as_ref().unwrap().reason;
    assert!(
        reason.starts_with("asynchronous child on another host"),
        "{reason}"
    );
    // A consumer on a host known 5 ms behind that still starts 2 ms before its producer:
    // moved by the estimate, nothing left to clamp.
    let behind = vec![
        span(1, 0, "a", Producer, 10, 20),
        span(2, 1, "b", Consumer, 8, 40),
    ];
    let known: KnownOffsets = [(("a".to_owned(), "b".to_owned()), (-5 * MS as i64, 30))]
        .into_iter()
        .collect();
    let timings = adjust_trace(&behind, &SkewOptions::default(), &known);
    assert_eq!(timings[1].start_unix_nano, T0 + 13 * MS);
}
