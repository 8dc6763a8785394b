// Times and durations. Nanosecond timestamps exceed what a double holds exactly, so they
// travel as strings and become BigInt; layouts work on offsets from a base, as Numbers.

const UNITS = [
  [1e9 * 3600, "h"],
  [1e9 * 60, "min"],
  [1e9, "s"],
  [1e6, "ms"],
  [1e3, "µs"],
];

/** A duration in nanoseconds as short text: `1.25 s`, `340 ms`, `12.5 µs`, `800 ns`. */
export function formatDuration(ns) {
  const value = Number(ns);
  if (!Number.isFinite(value)) return "–";
  const sign = value < 0 ? "-" : "";
  const abs = Math.abs(value);
  for (const [size, unit] of UNITS) {
    if (abs >= size) return `${sign}${trim(abs / size)} ${unit}`;
  }
  return `${sign}${Math.round(abs)} ns`;
}

function trim(value) {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1).replace(/\.0$/, "");
  return value.toFixed(2).replace(/\.?0+$/, "");
}

/** Nanoseconds since the epoch (string, number or BigInt) as BigInt. */
export function toBigNs(value) {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return BigInt(Math.round(value));
  return BigInt(String(value ?? "0"));
}

/** Nanoseconds since the epoch, as decimal text, of milliseconds since the epoch. */
export function msToNs(ms) {
  return String(BigInt(Math.round(ms)) * 1_000_000n);
}

/** Milliseconds since the epoch of a nanosecond timestamp. */
export function nsToMs(value) {
  return Number(toBigNs(value) / 1_000_000n);
}

/** `n` with leading zeros to `width` digits. */
export const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Local wall-clock time with milliseconds: `14:03:07.125`. */
export function formatClock(ns) {
  const date = new Date(nsToMs(ns));
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** Local date and time: `2026-12-02 14:03:07`. */
export function formatDateTime(ns) {
  const date = new Date(nsToMs(ns));
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** How long ago, coarse: `just now`, `5 min ago`, `3 h ago`. */
export function formatAgo(ns, nowMs = Date.now()) {
  const seconds = Math.max(0, (nowMs - nsToMs(ns)) / 1000);
  if (seconds < 10) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

const DURATION = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)$/;
const NS_PER = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9, d: 86400e9 };

/** `300ms`, `1.5s`, `15m`, `2h`, `7d` in nanoseconds; null when it is not a duration. */
export function parseDuration(text) {
  const match = DURATION.exec(String(text ?? "").trim());
  return match ? Number(match[1]) * NS_PER[match[2]] : null;
}

/** The time-range presets the pages offer. */
export const RANGE_PRESETS = ["5m", "15m", "1h", "6h", "24h", "2d", "7d"];

/**
 * The [start, end] of a page's range state in ms since the epoch: a preset (`range=1h`,
 * ending now) or absolute `start`/`end` (ms, RFC 3339 or `datetime-local` text; either may be
 * left out: the end defaults to now, the start to an hour before the end). Throws on nonsense.
 */
export function resolveRange({ range, start, end }, nowMs = Date.now()) {
  if (start || end) {
    const endMs = end ? parseInstant(end, "end") : nowMs;
    const startMs = start ? parseInstant(start, "start") : endMs - 3600e3;
    if (startMs >= endMs) throw new Error("the start of the range must be before its end");
    return { startMs, endMs };
  }
  const span = parseDuration(range || "1h");
  if (span === null) throw new Error(`unknown time range ${JSON.stringify(range)}`);
  return { startMs: nowMs - span / 1e6, endMs: nowMs };
}

function parseInstant(text, name) {
  if (/^\d+$/.test(String(text))) return Number(text);
  const ms = Date.parse(String(text));
  if (Number.isNaN(ms)) throw new Error(`the ${name} of the range is not a time: ${JSON.stringify(text)}`);
  return ms;
}

/** Text for a `datetime-local` input from ms since the epoch. */
export function toLocalInput(ms) {
  const date = new Date(ms);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

const STEPS = [1, 2, 5];

/**
 * About `count` round tick positions covering [min, max]: multiples of 1, 2 or 5 times a
 * power of ten. Returns `{ step, ticks }`.
 */
export function niceTicks(min, max, count = 5) {
  if (!(max > min)) return { step: 0, ticks: [min] };
  const rough = (max - min) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = power * (STEPS.find((s) => s * power >= rough) ?? 10);
  const ticks = [];
  for (let tick = Math.ceil(min / step) * step; tick <= max + step * 1e-9; tick += step) {
    ticks.push(Number(tick.toPrecision(12)));
  }
  return { step, ticks };
}
