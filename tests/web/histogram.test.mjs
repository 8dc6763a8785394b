// Unit tests of the log histogram's geometry (node --test tests/web/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { LEVELS, levelTotal, countAxis, stackedBars, timeTicks, tickLabel, TIME_STEPS } from "../../web/lib/histogram.mjs";

const T0 = 1_700_000_000_000; // ms, a whole minute
const ns = (ms) => String(BigInt(ms) * 1_000_000n);
const bucket = (ms, levels) => ({ start: "", start_unix_nano: ns(ms), levels });

test("level totals ignore missing and non-numeric counts", () => {
  assert.equal(levelTotal({ info: 3, error: 2 }), 5);
  assert.equal(levelTotal({}), 0);
  assert.equal(levelTotal(undefined), 0);
});

test("the count axis ends on a whole tick at or above the maximum", () => {
  assert.deepEqual(countAxis(0), { top: 1, ticks: [0, 1] });
  assert.deepEqual(countAxis(1), { top: 1, ticks: [0, 1] });
  const { top, ticks } = countAxis(87);
  assert.ok(top >= 87);
  assert.equal(ticks.at(-1), top);
  assert.ok(ticks.every((tick) => Number.isInteger(tick)));
});

test("bars stack by level, the most severe at the base, scaled to the axis top", () => {
  const { axis, bars } = stackedBars([bucket(T0, { info: 6, error: 2, unknown: 2 })],
    { startMs: T0, endMs: T0 + 60_000, stepNs: 60e9, width: 600, height: 100 });
  assert.equal(axis.top, 10);
  assert.equal(bars.length, 1);
  const [bar] = bars;
  assert.equal(bar.total, 10);
  assert.equal(bar.x, 0);
  assert.equal(bar.width, 599); // the gap to the next bar
  assert.deepEqual(bar.segments.map((s) => s.level), ["error", "info", "unknown"]);
  assert.deepEqual(bar.segments.map((s) => [s.y, s.height]), [[80, 20], [20, 60], [0, 20]]);
  assert.deepEqual(LEVELS.slice(0, 2), ["fatal", "error"]);
});

test("buckets are placed by time, clipped to the range, and dropped outside it", () => {
  const histogram = [
    bucket(T0 - 120_000, { info: 1 }), // before the range
    bucket(T0 - 30_000, { info: 1 }), // straddles the start
    bucket(T0 + 30_000, { warn: 4 }),
    bucket(T0 + 90_000, {}), // empty
    bucket(T0 + 120_000, { info: 1 }), // at the end: outside
  ];
  const { bars } = stackedBars(histogram, { startMs: T0, endMs: T0 + 120_000, stepNs: "60000000000", width: 1200, height: 50 });
  assert.deepEqual(bars.map((bar) => [bar.x, bar.width]), [[0, 299], [300, 599]]);
  assert.equal(bars[1].segments[0].height, 50);
  assert.equal(bars[0].startNs, ns(T0 - 30_000));
});

test("thin bars keep their width, and degenerate input draws nothing", () => {
  const { bars } = stackedBars([bucket(T0, { info: 1 })], { startMs: T0, endMs: T0 + 3_600_000, stepNs: 1e9, width: 600, height: 50 });
  assert.ok(bars[0].width >= 1);
  assert.deepEqual(stackedBars([], { startMs: T0, endMs: T0, stepNs: 1e9, width: 600, height: 50 }).bars, []);
  assert.deepEqual(stackedBars(null, { startMs: T0, endMs: T0 + 1, stepNs: 0, width: 600, height: 50 }).bars, []);
});

test("time ticks fall on round local instants inside the range", () => {
  const { step, ticks } = timeTicks(T0 + 7_000, T0 + 3_600_000, 6);
  assert.equal(step, 10 * 60_000);
  assert.ok(ticks.every((tick) => tick % step === 0 && tick >= T0 + 7_000 && tick <= T0 + 3_600_000));
  assert.equal(ticks.length, 6);
  // A zone two hours ahead of UTC (offset −120): hours still land on the local hour.
  const local = timeTicks(T0, T0 + 24 * 3_600_000, 4, -120);
  assert.equal(local.step, 6 * 3_600_000);
  assert.ok(local.ticks.every((tick) => (tick + 120 * 60_000) % local.step === 0));
  assert.deepEqual(timeTicks(T0, T0, 5), { step: 0, ticks: [] });
  assert.ok(TIME_STEPS.every((s, i) => i === 0 || s > TIME_STEPS[i - 1]));
});

test("tick labels show seconds only for sub-minute steps", () => {
  const at = new Date(2026, 2, 4, 14, 5, 30).getTime();
  assert.equal(tickLabel(at, 10_000), "14:05:30");
  assert.equal(tickLabel(at, 300_000), "14:05");
  assert.equal(tickLabel(new Date(2026, 2, 4).getTime(), 3_600_000), "03-04");
  assert.equal(tickLabel(at, 86_400_000), "03-04");
});
