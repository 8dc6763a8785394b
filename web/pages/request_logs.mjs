// The request's log lines from every service, interleaved in time (adjusted or raw),
// filterable by service and severity; each line that belongs to a span jumps to it.

import { h, replace, notice } from "../lib/dom.mjs";
import { serviceChip, valueText } from "../lib/controls.mjs";
import { SEVERITY_LEVELS as LEVELS, severityName, logTime } from "../lib/severity.mjs";
import { formatClock, formatDuration, toBigNs } from "../lib/time.mjs";
import { spanKey } from "../lib/waterfall.mjs";

/** Lines drawn at most; filters narrow the rest. */
const MAX_LINES = 2000;

/**
 * Creates the log list. `onSpan(spanId, traceId)` is called when a line's span link is used.
 * Returns `{ element, setData(logs, mode, base) }`.
 */
export function createRequestLogs({ onSpan }) {
  const filters = { service: "", level: "" };
  let current = { logs: [], mode: "adjusted", base: 0n, spanKeys: new Set() };
  const serviceSelect = h("select", { "aria-label": "Service", "data-testid": "request-log-service" });
  const levelSelect = h("select", { "aria-label": "Lowest severity" },
    h("option", { value: "" }, "Any severity"), LEVELS.map((level) => h("option", { value: level }, `${level} and above`)));
  const count = h("span", { className: "muted" });
  const list = h("div", { className: "rl-list", "data-testid": "request-logs" });
  serviceSelect.addEventListener("change", () => { filters.service = serviceSelect.value; draw(); });
  levelSelect.addEventListener("change", () => { filters.level = levelSelect.value; draw(); });
  list.addEventListener("click", (event) => {
    const link = event.target.closest("[data-span-id]");
    if (link) onSpan(link.dataset.spanId, link.dataset.traceId);
  });
  const element = h("section", { className: "request-logs" },
    h("h2", {}, "Logs of the request"),
    h("div", { className: "toolbar" }, serviceSelect, levelSelect, count),
    list);

  function draw() {
    const minLevel = filters.level ? LEVELS.indexOf(filters.level) : -1;
    const shown = current.logs.filter((log) =>
      (!filters.service || log.service_name === filters.service)
      && (minLevel < 0 || LEVELS.indexOf(severityName(log.severity_number)) >= minLevel));
    count.textContent = shown.length === current.logs.length
      ? `${current.logs.length} lines`
      : `${shown.length} of ${current.logs.length} lines`;
    if (!current.logs.length) {
      replace(list, notice("empty", "No log lines", "No log record carries this request's trace ids or correlation id."));
      return;
    }
    if (!shown.length) {
      replace(list, notice("empty", "No line matches the filters"));
      return;
    }
    replace(list,
      shown.slice(0, MAX_LINES).map((log) => line(log)),
      shown.length > MAX_LINES ? notice("warn", `Showing the first ${MAX_LINES} lines`, "Filter by service or severity to see the rest.") : null);
  }

  function line(log) {
    const time = logTime(log, current.mode);
    const level = severityName(log.severity_number);
    const offset = Number(toBigNs(time) - current.base);
    const moved = current.mode === "adjusted" && log.skew_delta_ns && log.skew_delta_ns !== "0";
    const onSpan = log.span_id && current.spanKeys.has(spanKey(log.trace_id, log.span_id));
    return h("div", { className: "rl-line", "data-testid": "request-log-line" },
      h("span", { className: "rl-time mono", title: `${formatClock(time)}${moved ? ` (moved ${formatDuration(Number(log.skew_delta_ns))} with its host's clock)` : ""}` },
        `+${formatDuration(offset)}`, moved ? h("span", { className: "badge skew", title: "moved with its host's clock" }, "⏱") : null),
      serviceChip(log.service_name),
      h("span", { className: `severity ${level}` }, (log.severity_text || level).toUpperCase()),
      h("span", { className: "rl-body" }, valueText(log.body)),
      onSpan ? h("button", { type: "button", className: "rl-span", "data-span-id": log.span_id, "data-trace-id": log.trace_id, title: "Show the span this line was written in" }, "span →") : null);
  }

  return {
    element,
    /** The request's logs, in `mode` times, offsets from `base` (ns, BigInt); `spanKeys` are `trace/span` ids present. */
    setData(logs, mode, base, spanKeys) {
      const services = [...new Set(logs.map((log) => log.service_name))].sort();
      if (filters.service && !services.includes(filters.service)) filters.service = "";
      replace(serviceSelect, h("option", { value: "" }, "All services"),
        services.map((name) => h("option", { value: name, selected: name === filters.service }, name)));
      const sorted = logs.map((log) => [toBigNs(logTime(log, mode)), log])
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .map(([, log]) => log);
      current = { logs: sorted, mode, base, spanKeys };
      draw();
    },
  };
}
