// The log histogram's geometry, free of the DOM so it can be tested in Node: the buckets of
// `/api/logs?facets=true` (counts per level per step) as bars stacked by level on a time
// axis, a count axis of whole numbers, and time ticks on round local-clock instants.

import { SEVERITY_LEVELS } from "./severity.mjs";
import { niceTicks, nsToMs, pad } from "./time.mjs";

/** Levels as the API names them, stacked bottom to top (the most severe at the base). */
export const LEVELS = [...SEVERITY_LEVELS].reverse().concat("unknown");

/** The number of records in a `{level: count}` object. */
export function levelTotal(levels) {
  return Object.values(levels ?? {}).reduce((sum, count) => sum + (Number(count) || 0), 0);
}

/**
 * A count axis from 0 to at least `max` on whole-number ticks: `{ top, ticks }`, `top` the
 * last tick (1 when there is nothing to count).
 */
export function countAxis(max, count = 3) {
  if (!(max > 0)) return { top: 1, ticks: [0, 1] };
  const step = Math.max(1, niceTicks(0, max, count).step);
  const top = Math.ceil(max / step) * step;
  const ticks = [];
  for (let tick = 0; tick <= top; tick += step) ticks.push(tick);
  return { top, ticks };
}

/**
 * Stacked bars for `histogram` (`[{ start_unix_nano, levels }]`, each bucket `stepNs` wide)
 * drawn over [startMs, endMs] in a `width` × `height` box, y growing downwards. Buckets
 * outside the range are dropped and those across an edge clipped to it; bars wider than 3
 * px keep a `gap` to the next. Returns `{ axis, bars }`, `axis` from countAxis and each bar
 * `{ startMs, endMs, startNs, total, levels, x, width, segments: [{ level, count, y, height }] }`.
 */
export function stackedBars(histogram, { startMs, endMs, stepNs, width, height, gap = 1 }) {
  const stepMs = Number(stepNs) / 1e6;
  if (!(endMs > startMs) || !(stepMs > 0) || !(width > 0)) return { axis: countAxis(0), bars: [] };
  const scale = width / (endMs - startMs);
  const buckets = (histogram ?? [])
    .map((bucket) => {
      const bucketStart = nsToMs(bucket.start_unix_nano);
      return { startMs: bucketStart, endMs: bucketStart + stepMs, startNs: String(bucket.start_unix_nano), levels: bucket.levels ?? {}, total: levelTotal(bucket.levels) };
    })
    .filter((bucket) => bucket.total > 0 && bucket.endMs > startMs && bucket.startMs < endMs);
  const axis = countAxis(Math.max(0, ...buckets.map((bucket) => bucket.total)));
  const bars = buckets.map((bucket) => {
    const x = (Math.max(bucket.startMs, startMs) - startMs) * scale;
    const full = (Math.min(bucket.endMs, endMs) - startMs) * scale - x;
    let base = height;
    const segments = [];
    for (const level of LEVELS) {
      const count = Number(bucket.levels[level]) || 0;
      if (!count) continue;
      const size = (count / axis.top) * height;
      base -= size;
      segments.push({ level, count, y: base, height: size });
    }
    return { ...bucket, x, width: Math.max(1, full > 3 ? full - gap : full), segments };
  });
  return { axis, bars };
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Round steps for a time axis, in ms. */
export const TIME_STEPS = [
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY,
];

/**
 * About `count` ticks over [startMs, endMs] on round local-clock instants (`:00`, `:15`…):
 * `{ step, ticks }` in ms. `offsetMinutes` is the zone's `Date#getTimezoneOffset()`.
 */
export function timeTicks(startMs, endMs, count = 6, offsetMinutes = 0) {
  if (!(endMs > startMs)) return { step: 0, ticks: [] };
  const rough = (endMs - startMs) / Math.max(1, count);
  const step = TIME_STEPS.find((candidate) => candidate >= rough) ?? Math.ceil(rough / DAY) * DAY;
  const shift = offsetMinutes * MINUTE; // local = utc − shift
  const ticks = [];
  for (let tick = Math.ceil((startMs - shift) / step) * step + shift; tick <= endMs; tick += step) ticks.push(tick);
  return { step, ticks };
}


/** A tick's label for ticks `stepMs` apart: `14:03:30`, `14:05`, or `03-02` for days. */
export function tickLabel(ms, stepMs) {
  const date = new Date(ms);
  if (stepMs >= DAY) return `${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  if (stepMs < MINUTE) return `${clock}:${pad(date.getSeconds())}`;
  return date.getHours() === 0 && date.getMinutes() === 0 && stepMs >= HOUR
    ? `${pad(date.getMonth() + 1)}-${pad(date.getDate())}` : clock;
}
