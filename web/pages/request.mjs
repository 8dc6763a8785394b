// The request view (`#/request/<trace id or correlation id>`): one request across services
// from `/api/stitch`: its traces, a waterfall with skew marks and the critical path, the
// chosen span's details, and the request's logs. `raw=1` shows times as the hosts' clocks
// wrote them; `span=<id>` keeps the chosen span in the URL.

import { h, replace, notice } from "../lib/dom.mjs";
import { getJson } from "../lib/api.mjs";
import { routeHash, navigate, parseRoute } from "../lib/route.mjs";
import { serviceChip, attributeTable, valueText } from "../lib/controls.mjs";
import { formatDuration, formatDateTime, formatClock, toBigNs } from "../lib/time.mjs";
import { logTime } from "../lib/severity.mjs";
import { spanKey } from "../lib/waterfall.mjs";
import { createWaterfall } from "./waterfall_view.mjs";
import { createRequestLogs } from "./request_logs.mjs";

/** Renders the page for `route`; re-fetches only when the id changes. */
export async function show(root, route, view) {
  const id = route.rest[0];
  if (!id) {
    replace(root, h("h1", {}, "Request"), notice("empty", "Which request?", "Enter a trace id or a request id in the box at the top, or open one from search."));
    view.id = null;
    return;
  }
  const mode = route.params.get("raw") === "1" ? "raw" : "adjusted";
  const spanId = route.params.get("span") || "";
  if (view.id !== id || !view.data) {
    view.id = id;
    view.data = null;
    const started = performance.now();
    replace(root, h("h1", {}, "Request ", h("span", { className: "mono" }, id)), h("p", { className: "loading" }, "Loading the request"));
    let data;
    try {
      data = await getJson(`/api/stitch/${encodeURIComponent(id)}`, {}, { signal: route.signal });
    } catch (err) {
      if (route.signal.aborted || view.id !== id) return;
      replace(root, h("h1", {}, "Request ", h("span", { className: "mono" }, id)),
        notice(err.status === 404 ? "empty" : "error", err.status === 404 ? "Nothing found" : "The request could not be loaded", err.message));
      return;
    }
    if (route.signal.aborted || view.id !== id) return;
    const received = performance.now();
    view.data = data;
    build(root, view, id);
    view.mode = null;
    apply(view, mode, spanId);
    requestAnimationFrame(() => {
      window.__skewer = Object.assign(window.__skewer || {}, {
        requestSpans: data.spans.length,
        requestRenderedMs: performance.now() - received,
        requestInteractiveMs: performance.now() - started,
      });
    });
    return;
  }
  apply(view, mode, spanId);
}

/** Builds the page's parts for freshly loaded data. */
function build(root, view, id) {
  const data = view.data;
  view.spanIndex = new Map(data.spans.map((span, index) => [spanKey(span.trace_id, span.span_id), index]));
  view.spanKeys = new Set(view.spanIndex.keys());
  view.waterfall?.dispose();
  view.waterfall = createWaterfall({ onSelect: (index) => selectSpan(view, index) });
  view.dispose = () => view.waterfall?.dispose();
  view.logs = createRequestLogs({
    onSpan: (spanId, traceId) => {
      const index = view.spanIndex.get(spanKey(traceId, spanId));
      if (index !== undefined) selectSpan(view, index);
    },
  });
  view.detail = h("aside", { className: "span-detail card", "data-testid": "span-detail", "aria-live": "polite" });
  view.modeButtons = {
    adjusted: h("button", { type: "button", "aria-pressed": "true", onclick: () => setRoute(view, { raw: "" }) }, "Adjusted"),
    raw: h("button", { type: "button", "aria-pressed": "false", onclick: () => setRoute(view, { raw: "1" }) }, "Raw"),
  };
  view.summary = h("div", { className: "request-summary" });
  replace(root,
    h("h1", {}, data.id_kind === "correlation_id" ? "Request " : "Trace ", h("span", { className: "mono" }, id)),
    view.summary,
    data.truncated ? notice("warn", "Request truncated", "This request holds more traces, spans or log lines than one view shows; the first are shown.") : null,
    h("div", { className: "toolbar" },
      h("span", { className: "segmented", role: "group", "aria-label": "Times" }, view.modeButtons.adjusted, view.modeButtons.raw),
      h("span", { className: "legend" },
        h("span", { className: "legend-critical" }, "critical path"),
        h("span", { className: "badge error" }, "error"),
        h("span", { className: "badge skew" }, "⏱ moved"),
        h("span", { className: "badge skew flagged" }, "⏱ skew, not moved"))),
    h("div", { className: "request-body" }, view.waterfall.element, view.detail),
    view.logs.element);
  view.selected = undefined;
  view.laidOut = false;
}

/** Each span's stretches on its trace's critical path: span index → [[start, end]] (ns). */
function criticalStretches(data, spanIndex) {
  const stretches = new Map();
  for (const trace of data.traces) {
    for (const segment of trace.critical_path ?? []) {
      const index = spanIndex.get(spanKey(trace.trace_id, segment.span_id));
      if (index === undefined) continue;
      if (!stretches.has(index)) stretches.set(index, []);
      stretches.get(index).push([segment.start_unix_nano, segment.end_unix_nano]);
    }
  }
  return stretches;
}

function setRoute(view, changes) {
  const { params } = parseRoute(location.hash);
  for (const [key, value] of Object.entries(changes)) {
    if (value) params.set(key, value);
    else params.delete(key);
  }
  navigate(routeHash("request", [view.id], params), { replace: true });
}

function selectSpan(view, index) {
  const span = view.data.spans[index];
  setRoute(view, { span: span ? spanKey(span.trace_id, span.span_id) : "" });
}

/** Applies the times mode and the chosen span to the built page. */
function apply(view, mode, chosen) {
  const data = view.data;
  const modeChanged = view.mode !== mode;
  if (modeChanged) {
    view.mode = mode;
    const logTimes = data.logs.map((log) => logTime(log, mode));
    if (view.laidOut) {
      view.waterfall.setMode(mode, logTimes);
    } else {
      view.waterfall.setData(data.spans, mode, logTimes, criticalStretches(data, view.spanIndex));
      view.laidOut = true;
    }
    view.logs.setData(data.logs, mode, view.waterfall.bounds().base, view.spanKeys);
    view.modeButtons.adjusted.setAttribute("aria-pressed", String(mode === "adjusted"));
    view.modeButtons.raw.setAttribute("aria-pressed", String(mode === "raw"));
    replace(view.summary, summary(data, mode, view.waterfall.bounds()));
  }
  const index = chosen ? view.spanIndex.get(chosen) ?? -1 : -1;
  if (index !== view.selected || modeChanged) {
    view.selected = index;
    view.waterfall.select(index);
    if (index >= 0) view.waterfall.reveal(index);
    replace(view.detail, index >= 0 ? spanDetail(view, data.spans[index]) : h("p", { className: "muted" }, "Choose a span to see its attributes, events, links and logs."));
  }
}

function summary(data, mode, bounds) {
  const errors = data.services.reduce((sum, service) => sum + service.error_spans, 0);
  const skew = data.skew;
  return [
    h("p", { className: "request-figures" },
      h("span", {}, h("strong", {}, formatDuration(bounds.total)), " end to end"),
      h("span", {}, h("strong", {}, data.spans.length), " spans"),
      h("span", {}, h("strong", {}, data.logs.length), " log lines"),
      h("span", {}, h("strong", {}, data.traces.length), data.traces.length === 1 ? " trace" : " traces"),
      errors ? h("span", { className: "error-text" }, h("strong", {}, errors), " error spans") : null,
      h("span", { className: "muted" }, formatDateTime(bounds.base))),
    h("div", { className: "chips", "data-testid": "request-services" },
      data.services.map((service) => serviceChip(service.name,
        h("span", { className: "muted" }, ` ${service.spans} spans${service.error_spans ? `, ${service.error_spans} errors` : ""}${service.logs ? `, ${service.logs} log${service.logs === 1 ? "" : "s"}` : ""}`)))),
    data.traces.length > 1 ? h("p", { className: "muted" }, "Traces: ", data.traces.map((trace) =>
      h("a", { className: "mono trace-link", href: routeHash("request", [trace.trace_id]) }, trace.trace_id.slice(0, 16), trace.linked ? " (linked)" : ""))) : null,
    skew.spans_flagged ? notice("warn", `Clock skew: ${skew.spans_flagged} span${skew.spans_flagged === 1 ? "" : "s"} out of line with ${skew.spans_flagged === 1 ? "its parent" : "their parents"}`,
      [skew.spans_adjusted ? `${skew.spans_adjusted} moved${mode === "raw" ? " (showing raw times now)" : ""}. ` : "Nothing moved. ",
        skew.hosts?.length ? `Host clocks: ${skew.hosts.map((host) => `${host.host} ${Number(host.delta_ns) > 0 ? "+" : ""}${formatDuration(Number(host.delta_ns))}`).join(", ")}.` : "",
        skew.adjusting ? "" : " skewer is configured to warn only."].join("")) : null,
  ];
}

function spanDetail(view, span) {
  const mode = view.mode;
  const start = mode === "raw" ? span.raw_start_unix_nano : span.start_unix_nano;
  const logs = view.data.logs.filter((log) => log.span_id === span.span_id && log.trace_id === span.trace_id);
  const events = span.events ?? [];
  const links = span.links ?? [];
  const skew = span.skew;
  return [
    h("h2", {}, span.name),
    h("p", {}, serviceChip(span.service_name), " ", h("span", { className: "muted" }, span.kind), " ",
      span.status === "error" ? h("span", { className: "badge error" }, "error") : null,
      span.on_critical_path ? h("span", { className: "legend-critical" }, "critical path") : null),
    span.status_message ? h("p", { className: "error-text" }, span.status_message) : null,
    h("table", { className: "kv" }, h("tbody", {},
      row("duration", formatDuration(Number(span.duration_ns))),
      row("start", `${formatDateTime(start)}.${formatClock(start).slice(9)}`),
      skew?.applied ? row("as written", `${formatClock(span.raw_start_unix_nano)} (its host's clock)`) : null,
      row("host", span.host),
      row("trace id", h("a", { href: routeHash("request", [span.trace_id]) }, span.trace_id)),
      row("span id", span.span_id),
      row("parent", span.parent_span_id || "none (root)"))),
    skew ? h("div", { className: "notice warn", "data-testid": "span-skew" },
      h("strong", {}, skew.applied ? `Moved by ${formatDuration(Number(skew.delta_ns))}` : `Off by ${formatDuration(Number(skew.delta_ns))}, not moved`),
      h("p", {}, skew.reason),
      h("p", { className: "muted" }, `host ${skew.host}${skew.other_host ? ` vs ${skew.other_host}` : ""}`)) : null,
    section("Attributes", attributeTable(span.attributes)),
    section("Resource", attributeTable(span.resource?.attributes)),
    events.length ? section("Events", h("table", { className: "kv" }, h("tbody", {}, events.map((event) =>
      h("tr", {}, h("td", {}, `+${formatDuration(Number(toBigNs(event.time_unix_nano) - toBigNs(span.raw_start_unix_nano)))}`),
        h("td", {}, event.name, event.attributes?.length ? ` ${event.attributes.map((a) => `${a.key}=${valueText(a.value)}`).join(" ")}` : "")))))) : null,
    links.length ? section("Links", h("ul", {}, links.map((link) =>
      h("li", {}, h("a", { className: "mono", href: routeHash("request", [link.trace_id]) }, `${link.trace_id.slice(0, 16)}… / ${link.span_id}`))))) : null,
    section(`Logs of this span (${logs.length})`, logs.length
      ? h("ul", { className: "span-logs" }, logs.map((log) => h("li", {}, h("span", { className: "mono muted" }, formatClock(logTime(log, mode))), " ", valueText(log.body))))
      : h("p", { className: "muted" }, "None.")),
  ];
}

function row(label, value) {
  return h("tr", {}, h("td", {}, label), h("td", {}, value));
}

function section(title, body) {
  return body ? [h("h3", {}, title), body] : null;
}
