// The Logs page: full-text search over log records in a time range, filtered by service,
// minimum severity, trace or correlation id; a histogram of the matches over time stacked by
// level (a bar zooms into its bucket), level and service facets that set the filters, and
// the records, each expandable and linking to the request view by trace or correlation id.

import { h, svg, replace, notice, field } from "../lib/dom.mjs";
import { latest } from "../lib/api.mjs";
import { routeHash, navigate } from "../lib/route.mjs";
import { formatClock, formatDateTime, formatDuration, msToNs } from "../lib/time.mjs";
import { rangeControl, routeRange, serviceChip, valueText, attributeTable } from "../lib/controls.mjs";
import { SEVERITY_LEVELS, severityName, logTime } from "../lib/severity.mjs";
import { LEVELS, stackedBars, timeTicks, tickLabel } from "../lib/histogram.mjs";

const SEVERITIES = SEVERITY_LEVELS.map((level) => level.toUpperCase());
const FILTERS = ["q", "service", "min_severity", "trace_id", "correlation_id", "limit", "direction"];
const DEFAULT_LIMIT = "100";
const LIVE_MS = 5000;

const count = (n) => Number(n ?? 0).toLocaleString("en-US");
const short = (text, size) => (text.length > size ? `${text.slice(0, size - 1)}…` : text);

/** The page's state for one visit: one search and one services listing in flight at a time. */
export function create() {
  return { fetchLogs: latest(), fetchServices: latest(), timer: 0 };
}

/**
 * Renders the Logs page for `route` (all state in `route.params`) into `root`, then searches.
 * `view` persists while the user stays on the page.
 */
export async function show(root, route, view) {
  const params = route.params;
  clearTimeout(view.timer);
  view.dispose = () => clearTimeout(view.timer);
  const range = rangeControl(params);
  const serviceSelect = h("select", { name: "service" }, serviceOptions(params.get("service"), null));
  const form = searchForm(params, range, serviceSelect);
  const parts = {
    summary: h("p", { className: "log-summary muted", role: "status" }),
    histogram: h("div", { className: "log-histogram", "data-testid": "log-histogram" }),
    facets: h("aside", { className: "log-facets", "data-testid": "log-facets", "aria-label": "Facets" }),
    results: h("div", { className: "log-results", "data-testid": "log-results" }),
  };
  replace(root, h("div", { className: "logs-page" }, h("h1", {}, "Logs"), form, parts.summary, parts.histogram,
    h("div", { className: "log-layout" }, parts.facets, parts.results)));

  let bounds;
  try {
    bounds = routeRange(params);
  } catch (err) {
    replace(parts.results, notice("error", "The time range is not valid", err.message));
    return;
  }
  const start = msToNs(bounds.startMs);
  const end = msToNs(bounds.endMs);
  view.fetchServices("/api/logs/services", { start, end })
    .then((answer) => replace(serviceSelect, serviceOptions(params.get("service"), answer.services)))
    .catch(() => {}); // The search below reports a server that cannot be reached.
  const query = { facets: true, start, end };
  for (const key of FILTERS) query[key] = params.get(key)?.trim();
  replace(parts.results, h("p", { className: "loading" }, "Searching logs"));
  await search(view, params, query, bounds, parts, false);
}

/** Runs the search and renders its answer; `quiet` (live refresh) keeps the old view meanwhile. */
async function search(view, params, query, bounds, parts, quiet) {
  let answer;
  try {
    answer = await view.fetchLogs("/api/logs", query);
  } catch (err) {
    if (err.name === "AbortError") return;
    if (quiet) return scheduleLive(view, params, query, parts);
    replace(parts.summary);
    replace(parts.histogram);
    replace(parts.facets);
    replace(parts.results, notice("error", err.status === 400 ? "The search is not valid" : "Logs could not be loaded", err.message));
    return;
  }
  const received = performance.now();
  const facets = answer.facets ?? {};
  const records = answer.records ?? [];
  const shown = { count: records.length };
  const setSummary = () => replace(parts.summary, shown.count ? `${count(shown.count)} of ${count(facets.total ?? shown.count)} matching records, ${query.direction === "forward" ? "oldest" : "newest"} first · ` : "",
    `${formatDateTime(query.start)} – ${formatDateTime(query.end)}`);
  setSummary();
  replace(parts.histogram, records.length || facets.total ? histogramChart(facets, bounds, params, parts.histogram.parentElement.clientWidth) : null);
  replace(parts.facets, facets.total ? facetList(facets, params) : null);
  if (!records.length) {
    const empty = notice("empty", "No log records match", "Try a wider time range, fewer search terms or a lower minimum severity.");
    if (params.get("range") !== "7d") empty.append(h("p", {}, h("button", { type: "button", onclick: () => go(params, { range: "7d", start: "", end: "" }) }, "Search the last 7 days")));
    replace(parts.results, empty);
  } else {
    const list = h("div", { className: "log-list", role: "list" }, records.map(logRow));
    replace(parts.results, list, moreButton(view, query, answer.next_cursor, list, () => { shown.count = list.childElementCount; setSummary(); }));
  }
  window.__skewer = Object.assign(window.__skewer || {}, { logsRenderedMs: performance.now() - received });
  scheduleLive(view, params, query, parts);
}

/** With `live=1` and a preset range, searches again every few seconds, unless a row is open. */
function scheduleLive(view, params, query, parts) {
  if (!params.get("live") || params.get("start") || params.get("end")) return;
  view.timer = setTimeout(() => {
    if (!parts.results.isConnected) return;
    if (parts.results.querySelector(".log-row.open") || parts.results.dataset.paged) return scheduleLive(view, params, query, parts);
    const next = routeRange(params);
    Object.assign(query, { start: msToNs(next.startMs), end: msToNs(next.endMs) });
    search(view, params, query, next, parts, true);
  }, LIVE_MS);
}

/** Goes to the Logs page with `params` changed by `changes` (empty values removed). */
function go(params, changes) {
  const next = Object.fromEntries(params);
  navigate(routeHash("logs", [], { ...next, ...changes }));
}

function hrefWith(params, changes) {
  return routeHash("logs", [], { ...Object.fromEntries(params), ...changes });
}

function searchForm(params, range, serviceSelect) {
  const minSeverity = (params.get("min_severity") || "").toUpperCase();
  const severities = SEVERITIES.includes(minSeverity) || !minSeverity ? SEVERITIES : [...SEVERITIES, minSeverity];
  const text = (name, label, attrs = {}) => field(label, h("input", { name, value: params.get(name) ?? "", autocomplete: "off", ...attrs }));
  const form = h("form", { className: "form log-form", role: "search" },
    h("label", { className: "field grow" },
      h("span", {}, "Search ", h("small", {}, "words in the body, all required; \"quoted phrases\" as written")),
      h("input", { name: "q", type: "search", value: params.get("q") ?? "", placeholder: "timeout \"connection refused\"", autocomplete: "off" })),
    range.element,
    h("button", { type: "submit", className: "primary" }, "Search"),
    h("div", { className: "form-break" }),
    field("Service", serviceSelect),
    field("Min severity", h("select", { name: "min_severity" }, h("option", { value: "" }, "Any"),
      severities.map((name) => h("option", { value: name, selected: name === minSeverity }, name)))),
    text("trace_id", "Trace id", { className: "mono id-input", placeholder: "32 hex digits" }),
    text("correlation_id", "Correlation id", { className: "mono id-input" }),
    field("Limit", h("input", { name: "limit", type: "number", min: 1, max: 5000, value: params.get("limit") || DEFAULT_LIMIT, className: "limit-input" })),
    field("Order", h("select", { name: "direction" },
      h("option", { value: "" }, "Newest first"),
      h("option", { value: "forward", selected: params.get("direction") === "forward" }, "Oldest first"))),
    h("label", { className: "live-toggle", title: "Search again every 5 s (preset ranges)" },
      h("input", { type: "checkbox", name: "live", checked: Boolean(params.get("live")) }), " Live"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const key of FILTERS) next[key] = String(data.get(key) ?? "").trim();
    if (next.limit === DEFAULT_LIMIT) next.limit = "";
    navigate(routeHash("logs", [], { ...next, live: data.get("live") ? 1 : "", ...range.read() }));
  });
  return form;
}

function serviceOptions(current, services) {
  const options = [h("option", { value: "" }, services ? `All services (${services.length})` : "All services")];
  for (const service of services ?? []) {
    options.push(h("option", { value: service.name, selected: service.name === current }, `${service.name} (${count(service.records)})`));
  }
  if (current && !services?.some((service) => service.name === current)) {
    options.push(h("option", { value: current, selected: true }, services ? `${current} (0)` : current));
  }
  return options;
}

const HEIGHT = 120;
const MARGIN = { left: 40, right: 8, top: 6, bottom: 20 };

/** The histogram as an SVG `width` px wide; every bar links to a search over its bucket. */
function histogramChart(facets, { startMs, endMs }, params, width) {
  const outer = Math.max(320, width || 900);
  const plotWidth = outer - MARGIN.left - MARGIN.right;
  const { axis, bars } = stackedBars(facets.histogram, { startMs, endMs, stepNs: facets.step_ns, width: plotWidth, height: HEIGHT });
  const time = timeTicks(startMs, endMs, Math.max(2, Math.floor(plotWidth / 110)), new Date().getTimezoneOffset());
  const x = (ms) => MARGIN.left + ((ms - startMs) / (endMs - startMs)) * plotWidth;
  const y = (n) => MARGIN.top + HEIGHT - (n / axis.top) * HEIGHT;
  const step = formatDuration(Number(facets.step_ns));
  return svg("svg", { width: outer, height: HEIGHT + MARGIN.top + MARGIN.bottom, role: "img", "aria-label": `Matching records over time, ${step} per bar` },
    svg("g", { class: "chart-grid" }, axis.ticks.map((tick) => svg("line", { x1: MARGIN.left, x2: outer - MARGIN.right, y1: y(tick), y2: y(tick) }))),
    svg("g", { class: "chart-axis" },
      axis.ticks.map((tick) => svg("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, count(tick))),
      time.ticks.map((tick) => svg("g", {},
        svg("line", { x1: x(tick), x2: x(tick), y1: MARGIN.top + HEIGHT, y2: MARGIN.top + HEIGHT + 4 }),
        svg("text", { x: x(tick), y: MARGIN.top + HEIGHT + 16, "text-anchor": x(tick) > outer - 30 ? "end" : "middle" }, tickLabel(tick, time.step))))),
    svg("g", { class: "log-bars", transform: `translate(${MARGIN.left} ${MARGIN.top})` }, bars.map((bar) => {
      const levels = LEVELS.filter((level) => bar.levels[level]).map((level) => `${level} ${count(bar.levels[level])}`).join(", ");
      const title = `${formatDateTime(bar.startNs)} (+${step}): ${count(bar.total)} records\n${levels}\nClick to zoom in`;
      return svg("a", { href: hrefWith(params, { range: "", start: Math.floor(bar.startMs), end: Math.ceil(bar.startMs + Number(facets.step_ns) / 1e6) }), "aria-label": title },
        svg("title", {}, title),
        svg("rect", { class: "hit", x: bar.x, y: 0, width: bar.width, height: HEIGHT }),
        bar.segments.map((segment) => svg("rect", { class: `lvl-${segment.level}`, x: bar.x, y: segment.y, width: bar.width, height: segment.height })));
    })));
}

/** Level and service counts as buttons setting the filters (the level swatches are the legend). */
function facetList(facets, params) {
  const minSeverity = (params.get("min_severity") || "").toUpperCase();
  const service = params.get("service");
  const levels = [...LEVELS].reverse().filter((level) => facets.levels?.[level]);
  const services = [...(facets.services ?? [])].sort((a, b) => b.records - a.records || a.name.localeCompare(b.name));
  return [
    h("h2", {}, "Levels"),
    h("ul", { className: "facet-list" }, levels.map((level) => h("li", {},
      h("button", {
        type: "button", className: "facet", disabled: level === "unknown", "aria-pressed": String(minSeverity === level.toUpperCase()),
        title: level === "unknown" ? "Records without a severity" : `Show ${level} and more severe`,
        onclick: () => go(params, { min_severity: minSeverity === level.toUpperCase() ? "" : level.toUpperCase() }),
      }, h("span", { className: `swatch lvl-${level}` }), h("span", { className: `severity ${level}` }, level), h("span", { className: "facet-count" }, count(facets.levels[level])))))),
    h("h2", {}, "Services"),
    h("ul", { className: "facet-list" }, services.map((item) => h("li", {},
      h("button", {
        type: "button", className: "facet", "aria-pressed": String(item.name === service),
        title: item.name === service ? "Show every service" : `Show only ${item.name}`,
        onclick: () => go(params, { service: item.name === service ? "" : item.name }),
      }, serviceChip(item.name), h("span", { className: "facet-count" }, count(item.records)))))),
  ];
}

/** One record: a summary line (the time toggles the details) and its details when open. */
function logRow(record) {
  const level = severityName(record.severity_number);
  const ns = logTime(record);
  const toggle = h("button", { type: "button", className: "log-time mono", "aria-expanded": "false", title: formatDateTime(ns) }, formatClock(ns));
  const details = h("div", { className: "log-details", hidden: true });
  const links = h("span", { className: "log-links" },
    record.trace_id ? h("a", { href: routeHash("request", [record.trace_id]), title: `Trace ${record.trace_id}`, className: "mono" }, `trace ${record.trace_id.slice(0, 8)}`) : null,
    record.correlation_id ? h("a", { href: routeHash("request", [record.correlation_id]), title: `Request ${record.correlation_id}`, className: "mono" }, short(record.correlation_id, 24)) : null);
  const row = h("div", { className: "log-row", role: "listitem", "data-testid": "log-row" },
    toggle,
    h("span", { className: `severity ${level}` }, record.severity_text || (level === "unknown" ? "–" : level.toUpperCase())),
    serviceChip(record.service_name),
    h("span", { className: "log-body" }, valueText(record.body)),
    links, details);
  const flip = () => {
    const open = details.hidden;
    if (open && !details.hasChildNodes()) replace(details, recordDetails(record));
    details.hidden = !open;
    row.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", flip);
  row.addEventListener("click", (event) => {
    if (event.target.closest("a, button, .log-details") || String(window.getSelection?.() ?? "")) return;
    flip();
  });
  return row;
}

function recordDetails(record) {
  const pairs = [
    ["time", record.time], ["observed", record.observed_time_unix_nano && record.observed_time_unix_nano !== "0" ? formatDateTime(record.observed_time_unix_nano) : ""],
    ["severity", `${record.severity_text || "–"} (${record.severity_number ?? 0})`], ["event", record.event_name],
    ["trace id", record.trace_id], ["span id", record.span_id], ["correlation id", record.correlation_id],
    ["scope", [record.scope?.name, record.scope?.version].filter(Boolean).join(" ")],
  ].filter(([, value]) => value);
  const section = (title, table) => table ? [h("h3", {}, title), table] : null;
  return [
    h("table", { className: "kv" }, h("tbody", {}, pairs.map(([key, value]) => h("tr", {}, h("td", {}, key), h("td", {}, String(value)))))),
    section("Attributes", attributeTable(record.attributes)),
    section("Resource", attributeTable(record.resource?.attributes)),
  ];
}

/** "Load more" for the page after `cursor`: appends to `list`, then replaces itself. */
function moreButton(view, query, cursor, list, onPage) {
  if (!cursor) return null;
  const box = h("div", { className: "log-more" });
  const button = h("button", { type: "button" }, "Load more");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Loading…";
    list.closest(".log-results").dataset.paged = "1";
    try {
      const answer = await view.fetchLogs("/api/logs", { ...query, facets: "", cursor });
      list.append(...(answer.records ?? []).map(logRow));
      onPage();
      box.replaceWith(moreButton(view, query, answer.next_cursor, list, onPage) ?? "");
    } catch (err) {
      if (err.name === "AbortError") return;
      button.disabled = false;
      button.textContent = "Load more";
      box.append(notice("error", "The next page could not be loaded", err.message));
    }
  });
  box.append(button);
  return box;
}
