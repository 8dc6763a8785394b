// Log severities as skewer's APIs name them (`detected_level`), and a log record's time.

/** The level names, lowest first (OTLP severity numbers 1–4, 5–8, … 21–24). */
export const SEVERITY_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

/** The level name of an OTLP severity number (1–24); `unknown` for 0. */
export function severityName(number) {
  const n = Number(number);
  if (!(n >= 1 && n <= 24)) return "unknown";
  return SEVERITY_LEVELS[Math.floor((n - 1) / 4)];
}

/**
 * A log record's time (ns text): as moved with its host's clock (`mode` "adjusted", in a
 * stitched request), else as written, else when it was observed (a record may carry only that).
 */
export function logTime(record, mode = "raw") {
  if (mode === "adjusted" && record.adjusted_time_unix_nano) return record.adjusted_time_unix_nano;
  return record.time_unix_nano && record.time_unix_nano !== "0" ? record.time_unix_nano : record.observed_time_unix_nano;
}
