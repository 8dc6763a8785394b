// Unit tests of the waterfall layout (node --test tests/web/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildTree, visibleRows, timeBounds, barGeometry, visibleSlice, ancestors, descendantCount, segmentsIn } from "../../web/lib/waterfall.mjs";

const T0 = 1_700_000_000_000_000_000n;
const span = (id, parent, start, end, extra = {}) => ({
  trace_id: "t1", span_id: id, parent_span_id: parent,
  start_unix_nano: String(T0 + BigInt(start)), end_unix_nano: String(T0 + BigInt(end)), ...extra,
});

test("children follow their parent, ordered by start; orphans become roots", () => {
  const spans = [
    span("c2", "root", 50, 60),
    span("root", null, 0, 100),
    span("c1", "root", 10, 40),
    span("g1", "c1", 20, 30),
    span("orphan", "missing", 5, 6),
  ];
  const rows = visibleRows(buildTree(spans));
  assert.deepEqual(rows.map((row) => spans[row.index].span_id), ["root", "c1", "g1", "c2", "orphan"]);
  assert.deepEqual(rows.map((row) => row.depth), [0, 1, 2, 1, 0]);
  assert.equal(rows[0].childCount, 2);
});

test("a collapsed span hides its subtree but stays itself", () => {
  const spans = [span("root", null, 0, 100), span("c1", "root", 10, 40), span("g1", "c1", 20, 30)];
  const tree = buildTree(spans);
  assert.deepEqual(visibleRows(tree, new Set([1])).map((row) => spans[row.index].span_id), ["root", "c1"]);
  assert.deepEqual(visibleRows(tree, new Set([0])).map((row) => spans[row.index].span_id), ["root"]);
});

test("same span ids in two traces are told apart", () => {
  const spans = [span("a", null, 0, 10), { ...span("a", null, 5, 10), trace_id: "t2" }, { ...span("b", "a", 6, 7), trace_id: "t2" }];
  const rows = visibleRows(buildTree(spans));
  assert.deepEqual(rows.map((row) => [spans[row.index].trace_id, row.depth]), [["t1", 0], ["t2", 0], ["t2", 1]]);
});

test("a cycle in bad data is drawn once and terminates", () => {
  const spans = [span("a", "b", 0, 10), span("b", "a", 1, 5)];
  const rows = visibleRows(buildTree(spans));
  assert.deepEqual(rows.map((row) => [spans[row.index].span_id, row.depth]), [["a", 0], ["b", 1]]);
  // Collapsing the first hides the second instead of promoting it to a root.
  assert.deepEqual(visibleRows(buildTree(spans), new Set([0])).map((row) => spans[row.index].span_id), ["a"]);
});

test("a 20,000-deep chain lays out without recursion", () => {
  const spans = Array.from({ length: 20_000 }, (_, i) => span(`s${i}`, i ? `s${i - 1}` : null, i, 40_000 - i));
  const rows = visibleRows(buildTree(spans));
  assert.equal(rows.length, 20_000);
  assert.equal(rows.at(-1).depth, 19_999);
  assert.equal(ancestors(spans, 19_999).length, 19_999);
});

test("bars sit on the window in the chosen mode, raw times kept apart", () => {
  const spans = [
    span("root", null, 0, 1000),
    span("moved", "root", 100, 300, { raw_start_unix_nano: String(T0 + 600n), raw_end_unix_nano: String(T0 + 800n) }),
  ];
  const adjusted = timeBounds(spans, "adjusted");
  assert.equal(adjusted.base, T0);
  assert.equal(adjusted.total, 1000);
  assert.deepEqual(barGeometry(spans[1], adjusted, "adjusted"), { left: 0.1, width: 0.2 });
  const raw = timeBounds(spans, "raw");
  assert.deepEqual(barGeometry(spans[1], raw, "raw"), { left: 0.6, width: 0.2 });
  // A zero-length span still gets a visible sliver.
  assert.equal(barGeometry(span("z", null, 500, 500), adjusted).width, 0.001);
});

test("log times widen the window", () => {
  const bounds = timeBounds([span("a", null, 100, 200)], "adjusted", [String(T0 + 50n), String(T0 + 400n)]);
  assert.equal(bounds.base, T0 + 50n);
  assert.equal(bounds.total, 350);
});

test("the viewport slice covers what is visible plus overscan, within bounds", () => {
  assert.deepEqual(visibleSlice(0, 100, 20, 1000, 2), { first: 0, last: 7 });
  assert.deepEqual(visibleSlice(2000, 100, 20, 1000, 2), { first: 98, last: 107 });
  assert.deepEqual(visibleSlice(19_990, 100, 20, 1000, 2), { first: 997, last: 1000 });
  assert.deepEqual(visibleSlice(0, 100, 20, 0, 2), { first: 0, last: 0 });
});

test("hidden-span counts stop at cycles", () => {
  const spans = [span("root", null, 0, 100), span("a", "root", 1, 50), span("b", "a", 2, 40), span("c", "root", 60, 70)];
  assert.equal(descendantCount(buildTree(spans), 0), 3);
  assert.equal(descendantCount(buildTree(spans), 1), 1);
  const cycle = [span("a", "b", 0, 10), span("b", "a", 1, 5)];
  assert.equal(descendantCount(buildTree(cycle), 0), 1);
});

test("a span missing a time does not drag the window to 1970", () => {
  const spans = [span("a", null, 100, 200), { ...span("b", "a", 120, 150), end_unix_nano: undefined }];
  const bounds = timeBounds(spans);
  assert.equal(bounds.base, T0 + 100n);
  assert.equal(bounds.total, 100);
});

test("critical-path stretches move with their span in raw mode", () => {
  const moved = span("m", null, 100, 300, { raw_start_unix_nano: String(T0 + 350n), raw_end_unix_nano: String(T0 + 550n) });
  const stretches = [[String(T0 + 150n), String(T0 + 200n)]];
  assert.deepEqual(segmentsIn(moved, stretches, "adjusted"), stretches);
  assert.deepEqual(segmentsIn(moved, stretches, "raw"), [[T0 + 400n, T0 + 450n]]);
});
