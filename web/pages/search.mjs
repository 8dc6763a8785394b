// Trace search (`#/search?service=&operation=&where=&min_duration=&max_duration=&range=&limit=&sort=`):
// the form, a scatter of duration over time, and the matching traces' summaries, each
// opening the request view.

import { h, svg, replace, notice, field } from "../lib/dom.mjs";
import { getJson, latest } from "../lib/api.mjs";
import { routeHash, navigate } from "../lib/route.mjs";
import { rangeControl, routeRange, serviceChip } from "../lib/controls.mjs";
import { parseConditions, formatConditions } from "../lib/conditions.mjs";
import { formatDuration, formatDateTime, formatAgo, formatClock, niceTicks, parseDuration, nsToMs, msToNs } from "../lib/time.mjs";
import { serviceColor } from "../lib/colors.mjs";

const LIMITS = [20, 50, 100, 500];
/** The service choice that searches every service (the API reads `*` as any). */
const ALL_SERVICES = "*";
const SORTS = { newest: "Newest first", longest: "Longest first", errors: "Most errors first" };

/** Sets up the page's lasting state. */
export function create() {
  return { fetchTraces: latest(), services: null, operations: new Map() };
}

/** Renders the form from the URL, then the results of the search it describes. */
export async function show(root, route, view) {
  const params = route.params;
  const form = h("form", { className: "form", "data-testid": "search-form" });
  const results = h("div", { "data-testid": "search-results" });
  replace(root, h("h1", {}, "Find traces"), form, results);

  let services;
  try {
    services = view.services ?? (view.services = (await getJson("/api/v3/services")).services ?? []);
  } catch (err) {
    replace(results, notice("error", "Services could not be listed", err.message));
    return;
  }
  if (!services.length) {
    view.services = null; // ask again next time: data may have arrived
    replace(results, notice("empty", "No traces yet",
      "Send spans over OTLP (ports 4317 and 4318), or run `skewer loadgen --scenario demo` for a sample request."));
    return;
  }
  const service = params.get("service") || services[0];
  const controls = buildForm(form, params, services, service, view);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    let where;
    try {
      where = parseConditions(controls.tags.value);
    } catch (err) {
      replace(results, notice("error", "Tags", err.message));
      return;
    }
    navigate(routeHash("search", [], {
      service: controls.service.value,
      operation: controls.operation.value,
      where,
      min_duration: controls.minDuration.value.trim(),
      max_duration: controls.maxDuration.value.trim(),
      ...controls.range.read(),
      limit: controls.limit.value,
      sort: controls.sort.value === "newest" ? "" : controls.sort.value,
    }));
  });
  await runSearch(results, params, service, view);
}

function buildForm(form, params, services, service, view) {
  const serviceSelect = h("select", { name: "service", "data-testid": "search-service" },
    h("option", { value: ALL_SERVICES, selected: service === ALL_SERVICES }, "All services"),
    services.map((name) => h("option", { value: name, selected: name === service }, name)));
  const operation = h("select", { name: "operation", "data-testid": "search-operation" }, h("option", { value: "" }, "All operations"));
  const fillOperations = async (name, chosen) => {
    if (name === ALL_SERVICES) {
      replace(operation, h("option", { value: "" }, "All operations"));
      return;
    }
    try {
      if (!view.operations.has(name)) {
        const answer = await getJson("/api/v3/operations", { service: name });
        view.operations.set(name, [...new Set((answer.operations ?? []).map((op) => op.name))].sort());
      }
      if (serviceSelect.value !== name) return; // another service was chosen meanwhile
      replace(operation, h("option", { value: "" }, "All operations"),
        view.operations.get(name).map((op) => h("option", { value: op, selected: op === chosen }, op)));
    } catch {
      // The list stays "All operations"; the search itself reports errors.
    }
  };
  fillOperations(service, params.get("operation") || "");
  serviceSelect.addEventListener("change", () => fillOperations(serviceSelect.value, ""));
  const tags = h("input", { name: "tags", value: formatConditions(params.getAll("where")), placeholder: "http.response.status_code=500 error", spellcheck: false, "data-testid": "search-tags" });
  const minDuration = h("input", { name: "min_duration", value: params.get("min_duration") ?? "", placeholder: "e.g. 100ms", size: 8 });
  const maxDuration = h("input", { name: "max_duration", value: params.get("max_duration") ?? "", placeholder: "e.g. 2s", size: 8 });
  const range = rangeControl(params);
  const limit = h("select", { name: "limit" }, LIMITS.map((n) => h("option", { value: n, selected: String(n) === (params.get("limit") || "20") }, n)));
  const sort = h("select", { name: "sort" }, Object.entries(SORTS).map(([value, label]) => h("option", { value, selected: value === (params.get("sort") || "newest") }, label)));
  form.append(
    field("Service", serviceSelect),
    field("Operation", operation),
    h("label", { className: "field grow" }, h("span", {}, "Tags"), tags,
      h("small", {}, "key=value, key!=value, key=~regex, key (present), !key (absent); all must hold on one span")),
    field("Min duration", minDuration),
    field("Max duration", maxDuration),
    range.element,
    field("Limit", limit),
    field("Order", sort),
    h("button", { type: "submit", className: "primary", "data-testid": "search-submit" }, "Search"));
  return { service: serviceSelect, operation, tags, minDuration, maxDuration, range, limit, sort };
}

async function runSearch(results, params, service, view) {
  let range;
  try {
    range = routeRange(params);
    for (const name of ["min_duration", "max_duration"]) {
      const value = params.get(name);
      if (value && parseDuration(value) === null) throw new Error(`${name.replace("_", " ")} “${value}” is not a duration such as 250ms, 1.5s or 2m`);
    }
  } catch (err) {
    replace(results, notice("error", "Check the form", err.message));
    return;
  }
  replace(results, h("p", { className: "loading" }, "Searching"));
  const query = {
    service,
    operation: params.get("operation"),
    where: params.getAll("where"),
    min_duration: params.get("min_duration"),
    max_duration: params.get("max_duration"),
    start: msToNs(Math.floor(range.startMs)),
    end: msToNs(Math.ceil(range.endMs)),
    limit: params.get("limit") || "20",
  };
  let answer;
  try {
    answer = await view.fetchTraces("/api/search/traces", query);
  } catch (err) {
    if (err.name === "AbortError") return;
    replace(results, notice("error", "The search failed", err.message));
    return;
  }
  const received = performance.now();
  const traces = sortTraces(answer.traces ?? [], params.get("sort") || "newest");
  if (!traces.length) {
    replace(results, notice("empty", "No trace matches", "Widen the time range, or loosen the operation, tags and durations."));
    return;
  }
  replace(results,
    h("p", { className: "muted" }, `${traces.length} trace${traces.length === 1 ? "" : "s"}`, traces.length >= Number(query.limit) ? ` (the newest ${query.limit}; raise the limit to see more)` : ""),
    scatter(traces, range),
    h("ol", { className: "trace-list", "data-testid": "trace-list" }, traces.map((trace) => traceItem(trace, maxDuration(traces)))));
  requestAnimationFrame(() => {
    window.__skewer = Object.assign(window.__skewer || {}, { searchRenderedMs: performance.now() - received, searchTraces: traces.length });
  });
}

/** Orders summaries as the form asks (the API answers newest first). */
export function sortTraces(traces, sort) {
  const copy = [...traces];
  if (sort === "longest") copy.sort((a, b) => Number(b.duration_ns) - Number(a.duration_ns));
  else if (sort === "errors") copy.sort((a, b) => b.error_span_count - a.error_span_count || Number(b.duration_ns) - Number(a.duration_ns));
  return copy;
}

function maxDuration(traces) {
  return Math.max(1, ...traces.map((trace) => Number(trace.duration_ns)));
}

const PLOT = { width: 1000, height: 170, left: 64, right: 12, top: 10, bottom: 24 };

/** Duration over start time, one dot per trace in its root service's colour; errors ringed. */
function scatter(traces, range) {
  const starts = traces.map((trace) => nsToMs(trace.start_unix_nano));
  const xMin = Math.min(range.startMs, ...starts);
  const xMax = Math.max(range.endMs, ...starts);
  const yMax = maxDuration(traces) * 1.1;
  const x = (ms) => PLOT.left + ((ms - xMin) / Math.max(1, xMax - xMin)) * (PLOT.width - PLOT.left - PLOT.right);
  const y = (ns) => PLOT.height - PLOT.bottom - (ns / yMax) * (PLOT.height - PLOT.top - PLOT.bottom);
  const yTicks = niceTicks(0, yMax, 4).ticks;
  const xTicks = niceTicks(xMin, xMax, 6).ticks;
  const maxSpans = Math.max(1, ...traces.map((trace) => trace.span_count));
  return svg("svg", { class: "scatter", viewBox: `0 0 ${PLOT.width} ${PLOT.height}`, role: "img", "aria-label": "Trace durations over time", "data-testid": "search-scatter" },
    svg("g", { class: "chart-grid" }, yTicks.map((tick) => svg("line", { x1: PLOT.left, x2: PLOT.width - PLOT.right, y1: y(tick), y2: y(tick) }))),
    svg("g", { class: "chart-axis" },
      yTicks.map((tick) => svg("text", { x: PLOT.left - 6, y: y(tick) + 4, "text-anchor": "end" }, formatDuration(tick))),
      xTicks.map((tick) => svg("text", { x: x(tick), y: PLOT.height - 6, "text-anchor": "middle" }, formatClock(`${tick}000000`).slice(0, 8)))),
    traces.map((trace, i) => {
      const link = svg("a", { href: routeHash("request", [trace.trace_id]) },
        svg("title", {}, `${trace.root_service}: ${trace.root_operation}\n${formatDuration(Number(trace.duration_ns))}, ${trace.span_count} spans${trace.error_span_count ? `, ${trace.error_span_count} errors` : ""}\n${formatDateTime(trace.start_unix_nano)}`),
        svg("circle", {
          cx: x(starts[i]), cy: y(Number(trace.duration_ns)), r: 3.5 + 5 * Math.sqrt(trace.span_count / maxSpans),
          fill: serviceColor(trace.root_service), class: trace.error_span_count ? "dot error" : "dot",
        }));
      return link;
    }));
}

function traceItem(trace, longest) {
  const duration = Number(trace.duration_ns);
  return h("li", { className: "trace-item", "data-testid": "trace-item" },
    h("a", { href: routeHash("request", [trace.trace_id]), className: "trace-link-row" },
      h("div", { className: "trace-title" },
        serviceChip(trace.root_service),
        h("span", { className: "trace-op" }, trace.root_operation || "(missing root span)"),
        h("span", { className: "trace-duration" }, formatDuration(duration))),
      h("div", { className: "trace-bar" }, h("span", { style: { width: `${Math.max(0.5, (duration / longest) * 100)}%`, background: serviceColor(trace.root_service) } })),
      h("div", { className: "trace-meta" },
        h("span", {}, `${trace.span_count} spans`),
        trace.error_span_count ? h("span", { className: "badge error" }, `${trace.error_span_count} errors`) : null,
        trace.orphan_span_count ? h("span", { className: "muted", title: "spans whose parent is not stored" }, `${trace.orphan_span_count} orphans`) : null,
        h("span", { className: "chips" }, (trace.services ?? []).map((service) => serviceChip(service.name, h("span", { className: "muted" }, ` ${service.span_count}`)))),
        h("span", { className: "muted trace-when", title: formatDateTime(trace.start_unix_nano) }, `${formatDateTime(trace.start_unix_nano)} · ${formatAgo(trace.start_unix_nano)}`),
        h("span", { className: "mono muted" }, trace.trace_id.slice(0, 16)))));
}
