// The waterfall's layout, free of the DOM so it can be tested in Node: the span tree of a
// request (several traces, orphans as roots), the rows left visible by collapsed subtrees,
// each bar's place on the time axis (raw or skew-adjusted times), and the slice of rows a
// scrolled viewport shows.

import { toBigNs } from "./time.mjs";

/** The key of a span within a request: span ids are unique only within their trace. */
export const spanKey = (traceId, spanId) => `${traceId}/${spanId}`;
const key = spanKey;

/**
 * Indexes spans as a forest: a span whose parent is not in the request is a root. Children
 * and roots are ordered by start time (`mode` "adjusted" or "raw"), then span id.
 * Returns `{ roots, children }`: indexes into `spans`, and a Map from a span's index to its
 * children's indexes.
 */
export function buildTree(spans, mode = "adjusted") {
  const byKey = new Map();
  spans.forEach((span, index) => byKey.set(key(span.trace_id, span.span_id), index));
  const children = new Map();
  const roots = [];
  spans.forEach((span, index) => {
    const parent = span.parent_span_id ? byKey.get(key(span.trace_id, span.parent_span_id)) : undefined;
    if (parent === undefined || parent === index) {
      roots.push(index);
    } else {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(index);
    }
  });
  const starts = spans.map((span) => toBigNs(startOf(span, mode)));
  const order = (a, b) => (starts[a] < starts[b] ? -1 : starts[a] > starts[b] ? 1 : String(spans[a].span_id).localeCompare(String(spans[b].span_id)));
  roots.sort(order);
  for (const list of children.values()) list.sort(order);
  return { roots, children, count: spans.length };
}

/** A span's start in the chosen mode (raw times are kept beside adjusted ones). */
export function startOf(span, mode) {
  return mode === "raw" ? (span.raw_start_unix_nano ?? span.start_unix_nano) : span.start_unix_nano;
}

/** A span's end in the chosen mode. */
export function endOf(span, mode) {
  return mode === "raw" ? (span.raw_end_unix_nano ?? span.end_unix_nano) : span.end_unix_nano;
}

/**
 * The rows to draw, depth first: `{ index, depth, childCount }` for every span not hidden
 * under a collapsed one (`collapsed` a Set of span indexes). Iterative, so a 10,000-deep
 * chain cannot overflow the stack. Spans in a parent cycle (bad data: no root reaches them)
 * are drawn as roots after the rest, each once.
 */
export function visibleRows(tree, collapsed = new Set()) {
  const rows = [];
  const seen = new Set();
  walk(tree, tree.roots, collapsed, seen, rows);
  for (let index = 0; index < tree.count; index++) {
    if (!seen.has(index)) walk(tree, [index], collapsed, seen, rows);
  }
  return rows;
}

/** Depth-first from `starts`; spans under a collapsed one are marked seen but not drawn. */
function walk(tree, starts, collapsed, seen, rows) {
  const stack = [];
  for (let i = starts.length - 1; i >= 0; i--) stack.push([starts[i], 0, false]);
  while (stack.length) {
    const [index, depth, hidden] = stack.pop();
    if (seen.has(index)) continue;
    seen.add(index);
    const kids = tree.children.get(index) ?? [];
    if (!hidden) rows.push({ index, depth, childCount: kids.length });
    const hideKids = hidden || collapsed.has(index);
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1, hideKids]);
  }
}

/** The time window covering every span (and log time given): `{ base, total }` in ns, `base` a BigInt. */
export function timeBounds(spans, mode = "adjusted", extraTimes = []) {
  let min = null;
  let max = null;
  const widen = (value) => {
    if (value === undefined || value === null || value === "" || value === "0") return; // not recorded
    const ns = toBigNs(value);
    if (min === null || ns < min) min = ns;
    if (max === null || ns > max) max = ns;
  };
  for (const span of spans) {
    widen(startOf(span, mode));
    widen(endOf(span, mode));
  }
  for (const time of extraTimes) widen(time);
  if (min === null) return { base: 0n, total: 1 };
  return { base: min, total: Math.max(1, Number(max - min)) };
}

/** How many spans sit under span `index` (each counted once, whatever the data's cycles). */
export function descendantCount(tree, index) {
  const seen = new Set([index]);
  const stack = [...(tree.children.get(index) ?? [])];
  while (stack.length) {
    const next = stack.pop();
    if (seen.has(next)) continue;
    seen.add(next);
    stack.push(...(tree.children.get(next) ?? []));
  }
  return seen.size - 1;
}

/** Where a span's bar sits: `left` and `width` as fractions of the window (width at least a sliver). */
export function barGeometry(span, bounds, mode = "adjusted") {
  return intervalGeometry(startOf(span, mode), endOf(span, mode), bounds);
}

/** Where `[start, end]` (ns) sits on the window, clamped to it. */
export function intervalGeometry(startNs, endNs, bounds) {
  const start = Number(toBigNs(startNs) - bounds.base);
  const end = Number(toBigNs(endNs) - bounds.base);
  const left = clamp(start / bounds.total, 0, 1);
  const width = Math.max(clamp((end - start) / bounds.total, 0, 1 - left), 0.001);
  return { left, width };
}

/**
 * A span's critical-path segments (given on adjusted times) in the chosen mode: in raw mode
 * they move with the span by its own shift.
 */
export function segmentsIn(span, segments, mode) {
  if (mode !== "raw" || !span.raw_start_unix_nano) return segments;
  const shift = toBigNs(span.raw_start_unix_nano) - toBigNs(span.start_unix_nano);
  return segments.map(([start, end]) => [toBigNs(start) + shift, toBigNs(end) + shift]);
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

/**
 * The rows a viewport shows: `[first, last)` for a list of `count` rows of `rowHeight` px
 * scrolled to `scrollTop`, with `overscan` rows either side so fast scrolling stays filled.
 */
export function visibleSlice(scrollTop, viewportHeight, rowHeight, count, overscan = 10) {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + viewportHeight) / rowHeight) + overscan);
  return { first, last: Math.max(first, last) };
}

/** Indexes of every ancestor of span `index` (to expand them when a log jumps to its span). */
export function ancestors(spans, index) {
  const byKey = new Map();
  spans.forEach((span, i) => byKey.set(key(span.trace_id, span.span_id), i));
  const found = [];
  const seen = new Set([index]);
  let span = spans[index];
  while (span?.parent_span_id) {
    const parent = byKey.get(key(span.trace_id, span.parent_span_id));
    if (parent === undefined || seen.has(parent)) break;
    seen.add(parent);
    found.push(parent);
    span = spans[parent];
  }
  return found;
}
