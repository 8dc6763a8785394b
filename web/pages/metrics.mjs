// The metrics page (`#/metrics?query=&range=&start=&end=&step=&view=table`): a PromQL query
// with metric and label names suggested, drawn as a time-series chart (uPlot) from
// `/api/v1/query_range` or listed as a table from `/api/v1/query` at the end of the range.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h, replace, notice, field } from "../lib/dom.mjs";
import { getJson, latest } from "../lib/api.mjs";
import { routeHash, navigate } from "../lib/route.mjs";
import { rangeControl, routeRange } from "../lib/controls.mjs";
import { PALETTE } from "../lib/colors.mjs";
import { parseDuration, formatDateTime } from "../lib/time.mjs";

const MAX_SERIES = 50;
const MAX_ROWS = 1000;
const MAX_SUGGESTIONS = 60;
const CHART_HEIGHT = 340;
const TARGET_POINTS = 250;
const NICE_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

let stylesheet = null;

/** Sets up the page's lasting state: one query in flight at a time, the name catalog. */
export function create() {
  loadStylesheet();
  return { fetch: latest(), catalog: null, cleanup: null };
}

/** Renders the form from the URL, then runs its query as a chart or a table. */
export async function show(root, route, view) {
  view.cleanup?.();
  view.cleanup = null;
  view.dispose = () => view.cleanup?.();
  const params = route.params;
  const query = (params.get("query") || "").trim();
  const mode = params.get("view") === "table" ? "table" : "chart";
  const results = h("div", { className: "metrics-results", "aria-live": "polite" });
  let range = null;
  let rangeError = null;
  try {
    range = routeRange(params);
  } catch (err) {
    rangeError = err;
  }
  const autoStep = range ? stepFor(range) : null;
  const form = queryForm(params, mode, autoStep);
  replace(root, h("h1", {}, "Metrics"), form.element, results);
  view.catalog ??= loadCatalog().then((catalog) => {
    if (catalog.error) view.catalog = null; // try again on the next render
    return catalog;
  });
  view.catalog.then(form.fill);

  if (!query) {
    replace(results, h("p", { className: "loading" }, "Loading the metric names"));
    const catalog = await view.catalog;
    if (results.isConnected) replace(results, examples(catalog, params));
    return;
  }
  if (rangeError) {
    replace(results, notice("error", "The time range is not valid", rangeError.message));
    return;
  }
  const stepParam = params.get("step") || "";
  const step = stepParam ? parseStep(stepParam) : autoStep;
  if (!step) {
    replace(results, notice("error", "The step is not valid", `“${stepParam}” is not a duration such as 15s, 1m or 30 (seconds).`));
    return;
  }

  const started = performance.now();
  replace(results, h("p", { className: "loading" }, "Running the query"));
  const endS = range.endMs / 1000;
  let data;
  try {
    data = mode === "table"
      ? (await view.fetch("/api/v1/query", { query, time: endS.toFixed(3) })).data
      : (await view.fetch("/api/v1/query_range", {
        query, start: Math.floor(range.startMs / 1000 / step) * step, end: endS.toFixed(3), step,
      })).data;
  } catch (err) {
    if (err.name === "AbortError" || !results.isConnected) return;
    replace(results, notice("error", err.status === 0 ? "No answer from skewer" : "The query failed", err.message));
    return;
  }
  if (!results.isConnected) return;
  if (mode === "table") renderTable(results, data, range);
  else await renderChart(results, view, data, { params, range, step, started });
}

/** The query form; `fill(catalog)` adds the name suggestions once they are loaded. */
function queryForm(params, mode, autoStep) {
  const input = h("input", {
    name: "query", value: params.get("query") || "", className: "mono metrics-query", autocomplete: "off", spellcheck: false,
    placeholder: "PromQL, e.g. rate(http_server_request_count_total[5m])", "data-testid": "metric-query",
  });
  const datalist = h("datalist", { id: "metric-suggestions" });
  input.setAttribute("list", datalist.id);
  const labels = h("div", { className: "metrics-labels", hidden: true });
  const range = rangeControl(params, { defaultRange: "1h" });
  const step = h("input", { name: "step", value: params.get("step") || "", size: 8, placeholder: autoStep ? `auto (${stepText(autoStep)})` : "auto" });
  const toggle = h("div", { className: "segmented", role: "group", "aria-label": "Show as" },
    ["chart", "table"].map((name) => h("button", {
      type: "button", "aria-pressed": String(mode === name),
      onclick() {
        const next = new URLSearchParams(params);
        if (name === "table") next.set("view", "table");
        else next.delete("view");
        navigate(routeHash("metrics", [], next));
      },
    }, name === "chart" ? "Chart" : "Table")));
  const element = h("form", {
    className: "form metrics-form",
    onsubmit(event) {
      event.preventDefault();
      navigate(routeHash("metrics", [], { query: input.value.trim(), ...range.read(), step: step.value.trim(), view: mode === "table" ? "table" : "" }));
    },
  },
  h("label", { className: "field grow" }, h("span", {}, "Query"), input, datalist),
  range.element,
  field("Step", step),
  h("button", { type: "submit", className: "primary" }, "Run"),
  toggle,
  labels);

  let catalog = { names: [], labels: [], metadata: {} };
  const suggest = () => {
    const caret = input.selectionStart ?? input.value.length;
    const before = input.value.slice(0, caret);
    const word = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(before)?.[0] ?? "";
    const inBraces = before.lastIndexOf("{") > before.lastIndexOf("}");
    const pool = inBraces ? catalog.labels : catalog.names;
    const head = before.slice(0, before.length - word.length);
    const chosen = caret === input.value.length && (word || !before) ? pool.filter((name) => name.startsWith(word)).slice(0, MAX_SUGGESTIONS) : [];
    replace(datalist, chosen.map((name) => h("option", { value: head + name, label: inBraces ? "label" : describe(catalog.metadata, name) })));
  };
  input.addEventListener("input", suggest);
  input.addEventListener("focus", suggest);
  return {
    element,
    fill(loaded) {
      catalog = loaded;
      if (document.activeElement === input) suggest();
      if (!loaded.labels.length) return;
      labels.hidden = false;
      replace(labels, h("span", { className: "muted" }, "Labels:"),
        loaded.labels.map((name) => h("button", { type: "button", className: "metrics-label mono", title: `Insert a ${name} matcher`, onclick: () => insertMatcher(input, name) }, name)));
    },
  };
}

/** Inserts `name=""` at the caret (wrapped in braces outside a selector), caret in the quotes. */
function insertMatcher(input, name) {
  const at = input.selectionStart ?? input.value.length;
  const before = input.value.slice(0, at);
  const inBraces = before.lastIndexOf("{") > before.lastIndexOf("}");
  const comma = inBraces && !/[{,]\s*$/.test(before) ? ", " : "";
  const text = inBraces ? `${comma}${name}=""` : `{${name}=""}`;
  input.value = before + text + input.value.slice(at);
  const caret = at + text.length - (inBraces ? 1 : 2);
  input.focus();
  input.setSelectionRange(caret, caret);
}

/** Metric names, label names and metadata; each part empty when its API fails, `error` the first failure. */
async function loadCatalog() {
  let error = null;
  const part = (path, fallback) => getJson(path).then((body) => body?.data ?? fallback, (err) => {
    error ??= err.message;
    return fallback;
  });
  const [names, labels, metadata] = await Promise.all([
    part("/api/v1/label/__name__/values", []), part("/api/v1/labels", []), part("/api/v1/metadata", {}),
  ]);
  return { names, labels: labels.filter((name) => name !== "__name__"), metadata, error };
}

/** `counter: help text` for a metric from `/api/v1/metadata` (histogram series by family). */
function describe(metadata, name) {
  const family = name.replace(/_(bucket|sum|count)$/, "");
  const entry = (metadata[name] ?? metadata[family])?.[0];
  return entry ? [entry.type, entry.help].filter(Boolean).join(": ") : "";
}

/** The empty state: what to type, with example queries from the stored metric names. */
function examples(catalog, params) {
  const { names, labels, metadata, error } = catalog;
  if (error && !names.length) return notice("error", "The metric names could not be listed", error);
  if (!names.length) {
    return notice("empty", "No metrics yet", "Send metrics over OTLP (ports 4317 and 4318) or Prometheus remote write, then query them here.");
  }
  const by = ["service_name", "job", "service"].find((label) => labels.includes(label));
  const group = by ? ` by (${by})` : "";
  const counter = names.find((n) => n.endsWith("_total"));
  const bucket = names.find((n) => n.endsWith("_bucket"));
  const gauge = names.find((n) => metadata[n]?.[0]?.type === "gauge") ?? names.find((n) => !/_(total|bucket|sum|count)$/.test(n));
  const queries = [
    counter && `sum${group} (rate(${counter}[5m]))`,
    bucket && `histogram_quantile(0.95, sum by (le) (rate(${bucket}[5m])))`,
    gauge,
    counter && `topk(5, increase(${counter}[1h]))`,
  ].filter(Boolean);
  const keep = Object.fromEntries(["range", "start", "end", "step", "view"].map((k) => [k, params.get(k)]));
  return h("div", { className: "notice empty", role: "status" },
    h("strong", {}, "Type a PromQL query"),
    h("p", {}, `${names.length} metric${names.length === 1 ? " is" : "s are"} stored; the query box suggests their names and the label buttons insert matchers. Try:`),
    h("ul", { className: "metrics-examples" }, queries.map((q) => h("li", {}, h("a", { className: "mono", href: routeHash("metrics", [], { ...keep, query: q }) }, q)))));
}

/** Draws a matrix as a uPlot chart: one line per series, legend with hover values. */
async function renderChart(results, view, data, { params, range, step, started }) {
  const all = data?.resultType === "matrix" ? [...data.result] : [];
  if (!all.length) {
    replace(results, notice("empty", "No data", `The query matched no series between ${formatDateTime(range.startMs * 1e6)} and ${formatDateTime(range.endMs * 1e6)}. Widen the range or loosen the matchers.`));
    return;
  }
  all.sort((a, b) => seriesText(a.metric).localeCompare(seriesText(b.metric)));
  const shown = all.slice(0, MAX_SERIES);
  const { common, labels } = legendLabels(shown.map((s) => s.metric));
  const { table, infinite } = align(shown);
  const chart = h("div", { className: "metric-chart card", "data-testid": "metric-chart" });
  replace(results,
    all.length > MAX_SERIES ? notice("warn", `Showing ${MAX_SERIES} of ${all.length} series`, "Narrow the query with a label matcher, aggregate it (sum by (…)), or keep the largest with topk(…).") : null,
    infinite ? notice("warn", `${infinite} point${infinite === 1 ? " is" : "s are"} ±Inf and not drawn`, null) : null,
    h("p", { className: "muted metrics-summary" }, `${all.length} series · step ${stepText(step)}`,
      common ? [" · all ", h("span", { className: "mono" }, common)] : null),
    chart);
  await loadStylesheet();
  if (!chart.isConnected) return;

  let plot = null;
  const draw = () => {
    plot?.destroy();
    plot = new uPlot(chartOptions(chart.clientWidth, labels, params, range), table, chart);
  };
  draw();
  let width = chart.clientWidth;
  const resize = new ResizeObserver(() => {
    if (chart.clientWidth === width) return;
    width = chart.clientWidth;
    plot.setSize({ width, height: CHART_HEIGHT });
  });
  resize.observe(chart);
  const scheme = matchMedia("(prefers-color-scheme: dark)");
  scheme.addEventListener("change", draw);
  view.cleanup = () => {
    resize.disconnect();
    scheme.removeEventListener("change", draw);
    plot.destroy();
  };
  requestAnimationFrame(() => {
    window.__skewer = Object.assign(window.__skewer || {}, { metricsRenderedMs: performance.now() - started, metricSeries: shown.length });
  });
}

/** uPlot options: the whole range shown, theme colours from the CSS variables, drag to zoom into the URL. */
function chartOptions(width, labels, params, range) {
  const css = getComputedStyle(document.documentElement);
  const text = css.getPropertyValue("--muted").trim();
  const line = css.getPropertyValue("--border").trim();
  const axis = { stroke: text, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 }, font: "11px system-ui, sans-serif" };
  return {
    width: Math.max(320, width),
    height: CHART_HEIGHT,
    padding: [12, 28, 0, 4],
    cursor: { drag: { x: true, y: false, setScale: false } },
    select: { show: true },
    legend: { live: true, markers: { fill: (u, i) => PALETTE[(i - 1) % PALETTE.length] } },
    scales: { x: { time: true, range: [range.startMs / 1000, range.endMs / 1000] } },
    axes: [
      { ...axis, values: (u, splits, axisIndex, space, increment) => splits.map((t) => timeTick(t, increment)) },
      { ...axis, values: (u, splits) => splits.map(formatValue), size: (u, values) => 16 + 7 * Math.max(3, ...(values ?? []).map((v) => v.length)) },
    ],
    series: [
      { label: "Time", value: (u, t) => (t == null ? "–" : formatDateTime(t * 1e9)) },
      ...labels.map((label, i) => ({
        label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false,
        value: (u, v) => (v == null ? "–" : formatValue(v)),
      })),
    ],
    hooks: {
      setSelect: [(u) => {
        if (u.select.width < 5) return;
        const from = u.posToVal(u.select.left, "x");
        const to = u.posToVal(u.select.left + u.select.width, "x");
        const next = new URLSearchParams(params);
        next.delete("range");
        next.set("start", String(Math.round(from * 1000)));
        next.set("end", String(Math.round(to * 1000)));
        navigate(routeHash("metrics", [], next));
      }],
    },
  };
}

const pad = (n) => String(n).padStart(2, "0");

/** A time axis tick in 24-hour local time: `14:05`, `14:05:30` under a minute apart, `12-02` at midnight or a day apart. */
function timeTick(seconds, increment) {
  const date = new Date(seconds * 1000);
  const day = `${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  if (increment >= 86400 || (date.getHours() === 0 && date.getMinutes() === 0 && increment >= 60)) return day;
  return increment < 60 ? `${clock}:${pad(date.getSeconds())}` : clock;
}

/** uPlot's data from matrix series: shared timestamps, NaN and ±Inf as gaps (±Inf counted). */
function align(series) {
  const times = [...new Set(series.flatMap((s) => s.values.map(([t]) => Number(t))))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  let infinite = 0;
  const columns = series.map((s) => {
    const column = new Array(times.length).fill(null);
    for (const [t, text] of s.values) {
      const value = parseValue(text);
      if (Number.isFinite(value)) column[index.get(Number(t))] = value;
      else if (!Number.isNaN(value)) infinite++;
    }
    return column;
  });
  return { table: [times, ...columns], infinite };
}

/** The legend text of each series, leaving out the labels all share (given once as `common`). */
function legendLabels(metrics) {
  if (metrics.length < 2) return { common: "", labels: metrics.map((m) => seriesText(m)) };
  const keys = new Set(metrics.flatMap(Object.keys));
  const shared = new Set([...keys].filter((key) => metrics.every((m) => m[key] === metrics[0][key])));
  const commonMetric = Object.fromEntries([...shared].map((key) => [key, metrics[0][key]]));
  return {
    common: shared.size ? seriesText(commonMetric) : "",
    labels: metrics.map((m) => seriesText(m, shared)),
  };
}

/** `name{a="1", b="2"}`, labels sorted, those in `omit` left out. */
function seriesText(metric, omit = new Set()) {
  const name = omit.has("__name__") ? "" : metric.__name__ ?? "";
  const pairs = Object.keys(metric).filter((key) => key !== "__name__" && !omit.has(key)).sort()
    .map((key) => `${key}=${JSON.stringify(metric[key])}`);
  return pairs.length || !name ? `${name}{${pairs.join(", ")}}` : name;
}

/** Lists an instant query's result: a row per series, or the scalar or string. */
function renderTable(results, data, range) {
  const at = formatDateTime(range.endMs * 1e6);
  const type = data?.resultType;
  let rows;
  if (type === "scalar" || type === "string") {
    rows = [[h("span", { className: "muted" }, type), h("span", {}, String(data.result[1]))]];
  } else {
    const series = [...(data?.result ?? [])].sort((a, b) => seriesText(a.metric).localeCompare(seriesText(b.metric)));
    if (!series.length) {
      replace(results, notice("empty", "No data", `The query matched no series at ${at}, the end of the range.`));
      return;
    }
    rows = series.slice(0, MAX_ROWS).map((s) => [
      h("span", { className: "mono" }, seriesText(s.metric)),
      type === "matrix"
        ? h("span", { className: "metrics-samples" }, s.values.map(([t, v]) => h("span", {}, `${v} @ ${formatDateTime(Number(t) * 1e9)}`)))
        : h("span", {}, s.value[1]),
    ]);
    if (series.length > MAX_ROWS) rows.push([h("span", { className: "muted" }, `and ${series.length - MAX_ROWS} more series`), ""]);
  }
  replace(results,
    h("p", { className: "muted metrics-summary" }, `Instant query at ${at} (the end of the range)`),
    h("table", { className: "grid metric-table", "data-testid": "metric-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Series"), h("th", { className: "num" }, "Value"))),
      h("tbody", {}, rows.map(([label, value]) => h("tr", {}, h("td", {}, label), h("td", { className: "num mono" }, value))))));
}

/** A Prometheus sample value (`"1.5"`, `"NaN"`, `"+Inf"`) as a number. */
function parseValue(text) {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

const SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

/** A value in a few significant digits: `0.25`, `12.5k`, `3.2M`, `1.5e-7`. */
function formatValue(value) {
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1e15 || abs < 1e-4) return value.toExponential(2).replace(/\.?0+e/, "e");
  for (const [size, suffix] of SI) {
    if (abs >= size) return `${Number((value / size).toPrecision(4))}${suffix}`;
  }
  return String(Number(value.toPrecision(4)));
}

/** The automatic step of a range: about TARGET_POINTS points, a round number of seconds. */
function stepFor({ startMs, endMs }) {
  const rough = (endMs - startMs) / 1000 / TARGET_POINTS;
  return NICE_STEPS.find((s) => s >= rough) ?? Math.ceil(rough / 86400) * 86400;
}

/** A step the user typed (`15s`, `1m`, `30`) in seconds; null when it is not one. */
function parseStep(text) {
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : (parseDuration(text) ?? NaN) / 1e9;
  return seconds > 0 ? seconds : null;
}

/** Seconds as a Prometheus duration: `15s`, `5m`, `2h`, `1d`. */
function stepText(seconds) {
  for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "m"]]) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** uPlot's stylesheet, added to the page once; resolves when it has loaded. */
function loadStylesheet() {
  stylesheet ??= new Promise((resolve) => {
    const link = h("link", { rel: "stylesheet", href: "/ui/vendor/uplot/uPlot.min.css", onload: resolve, onerror: resolve });
    document.head.append(link);
  });
  return stylesheet;
}
