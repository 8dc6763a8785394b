// The service map (`#/map?range=&start=&end=&service=`): who calls whom in a time window from
// `/api/dependencies`, laid out left to right with call counts and error rates on the edges
// and the hosts' clock offsets from `/api/skew`; choosing a service opens its callers and
// callees, operations and recent traces in a side panel.

import { h, svg, replace, notice } from "../lib/dom.mjs";
import { getJson } from "../lib/api.mjs";
import { routeHash, navigate } from "../lib/route.mjs";
import { rangeControl, routeRange, serviceChip } from "../lib/controls.mjs";
import { serviceColor } from "../lib/colors.mjs";
import { formatDuration, formatAgo, msToNs } from "../lib/time.mjs";
import { layoutGraph } from "../lib/graph_layout.mjs";

const NODE_HEIGHT = 36;
const MAX_OPERATIONS = 40;
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });

/** Renders the map for the route's window; fetches only when the window changes. */
export async function show(root, route, view) {
  view.dispose = () => { view.token = null; };
  const params = route.params;
  const service = params.get("service") || "";
  const key = ["range", "start", "end"].map((name) => params.get(name) ?? "").join("|");
  const title = h("h1", {}, "Service map");
  const form = rangeForm(params, view);
  let range;
  try {
    range = routeRange(params);
  } catch (err) {
    replace(root, title, form, notice("error", "The time range is not valid", err.message));
    return;
  }

  if (view.key !== key || !view.graph) {
    view.key = key;
    view.graph = null;
    view.dom = null;
    const token = (view.token = {});
    replace(root, title, form, h("p", { className: "loading" }, "Loading the calls between services"));
    const lookback = range.endMs - range.startMs;
    let deps;
    let skew;
    try {
      [deps, skew] = await Promise.all([
        getJson("/api/dependencies", { endTs: Math.round(range.endMs), lookback: Math.round(lookback) }),
        getJson("/api/skew").catch((err) => err),
      ]);
    } catch (err) {
      if (view.token !== token) return;
      view.key = null;
      replace(root, title, form, notice("error", "The service map could not be loaded", err.message));
      return;
    }
    if (view.token !== token) return;
    view.range = range;
    view.skewError = skew instanceof Error ? skew.message : null;
    view.graph = { deps: (Array.isArray(deps) ? deps : deps?.data) ?? [], pairs: skew instanceof Error ? [] : skew?.pairs ?? [] };
  }

  if (!view.dom?.host.isConnected) build(root, view, title, form, params);
  select(view, service);
}

/** The range form; submitting it reloads even when the range is unchanged. */
function rangeForm(params, view) {
  const range = rangeControl(params, { defaultRange: "1h" });
  return h("form", {
    className: "form",
    onsubmit(event) {
      event.preventDefault();
      view.graph = null;
      navigate(routeHash("map", [], { ...range.read(), service: params.get("service") }));
    },
  }, range.element, h("button", { type: "submit", className: "primary" }, "Show"));
}

/** Builds the graph and the panel host for freshly loaded data. */
function build(root, view, title, form, params) {
  const { deps, pairs } = view.graph;
  const warning = view.skewError ? notice("warn", "Clock offsets are unavailable", view.skewError) : null;
  const panel = h("aside", { className: "map-panel card", "aria-live": "polite" });
  if (!deps.length) {
    const wider = ["24h", "7d"].filter((preset) => preset !== params.get("range"));
    replace(root, title, form, warning, notice("empty", "No calls between services in this window",
      "Calls appear once spans whose parent is in another service are stored."),
    h("p", {}, "Try a wider range: ", wider.map((preset, i) => [i ? " or " : "", h("a", { href: routeHash("map", [], { range: preset }) }, `last ${preset}`)])),
    panel);
    view.dom = { host: panel, nodes: new Map(), edges: [], panel, deps };
    return;
  }
  const measureName = textMeasurer("600 13px");
  const measureLabel = textMeasurer("12px");
  const edges = deps.map((dep) => ({ from: dep.parent, to: dep.child }));
  const widest = Math.max(...deps.map((dep) => measureLabel(`${compact.format(dep.callCount)} calls · ${errorRate(dep)} err`)));
  const layout = layoutGraph([], edges, {
    nodeWidth: (id) => Math.max(96, Math.ceil(measureName(id)) + 36), nodeHeight: NODE_HEIGHT, gapX: Math.max(140, Math.ceil(widest) + 48), gapY: 40, laneHeight: 18,
  });
  const nodes = new Map();
  const reading = [...layout.nodes].sort((a, b) => a.layer - b.layer || a.order - b.order);
  const nodeGroups = reading.map((node) => {
    const group = mapNode(node, deps, view);
    nodes.set(node.id, group);
    return group;
  });
  const drawn = layout.edges.map((edge, i) => mapEdge(edge, deps[i], pairs, measureLabel));
  const edgeGroups = drawn.flatMap(({ line, label }) => [line, label]);
  const drawing = svg("svg", {
    "data-testid": "service-map", class: "map-svg", role: "group", "aria-label": "Service map: callers left, callees right",
    width: layout.width, height: layout.height, viewBox: `0 0 ${layout.width} ${layout.height}`, style: `min-width: ${Math.round(layout.width * 0.75)}px`,
  },
  svg("defs", {}, arrow("map-arrow", "map-arrow-head"), arrow("map-arrow-error", "map-arrow-head error")),
  svg("g", { class: "map-edges" }, drawn.map((d) => d.line)), svg("g", { class: "map-labels" }, drawn.map((d) => d.label)),
  svg("g", { class: "map-nodes" }, nodeGroups));
  const host = h("div", { className: "map-layout" }, h("div", { className: "map-canvas card" }, drawing), panel);
  replace(root, title, form, warning, host,
    h("p", { className: "muted map-help" },
      "Arrows point from caller to callee; labels give the calls and their error rate in the window. ",
      "“clock” is how far the callee host's clock runs ahead of the caller's, learnt from client/server span pairs. ",
      "Choose a service (click, or Tab and Enter) for its operations and recent traces."));
  view.dom = { host, nodes, edges: edgeGroups, panel, deps };
}

/** Marks `service` as chosen on the graph and fills the side panel for it. */
function select(view, service) {
  const { nodes, edges, panel } = view.dom;
  for (const [name, group] of nodes) group.setAttribute("aria-pressed", String(name === service));
  for (const group of edges) {
    group.classList.toggle("dim", Boolean(service) && group.dataset.from !== service && group.dataset.to !== service);
  }
  panel.hidden = !service;
  if (!service) {
    view.panelKey = null;
    replace(panel);
    return;
  }
  const panelKey = `${view.key}|${service}`;
  if (view.panelKey === panelKey) return;
  view.panelKey = panelKey;
  fillPanel(view, panel, service, panelKey);
}

/** The side panel of one service: calls in and out, recent traces, operations. */
async function fillPanel(view, panel, service, panelKey) {
  const operationsList = h("div", { className: "loading" }, "Loading operations");
  const tracesList = h("div", { className: "loading" }, "Loading recent traces");
  const rangeParams = routeParams(view.key);
  const close = h("button", { type: "button", className: "map-close", "aria-label": "Close", title: "Close",
    onclick: () => navigate(routeHash("map", [], rangeParams)) }, "×");
  const deps = view.dom.deps;
  replace(panel,
    h("div", { className: "map-panel-head" }, h("h2", {}, serviceChip(service)), close),
    callsTable("Called by", deps.filter((d) => d.child === service), "parent", rangeParams),
    callsTable("Calls", deps.filter((d) => d.parent === service), "child", rangeParams),
    h("h3", {}, "Recent traces"), tracesList,
    h("h3", {}, "Operations"), operationsList,
    h("p", {}, h("a", { href: routeHash("search", [], { service, ...rangeParams }) }, `Search traces of ${service} →`)));

  const { startMs, endMs } = view.range;
  const [operations, traces] = await Promise.allSettled([
    getJson(`/api/services/${encodeURIComponent(service)}/operations`),
    getJson("/api/search/traces", { service, limit: 10, start: msToNs(startMs), end: msToNs(endMs) }),
  ]);
  if (view.panelKey !== panelKey) return;
  if (operations.status === "rejected") {
    replace(operationsList, notice("error", "Operations could not be listed", operations.reason.message));
  } else {
    const list = (Array.isArray(operations.value) ? operations.value : operations.value?.data ?? [])
      .map((op) => (typeof op === "string" ? { name: op } : op));
    operationsList.className = "";
    replace(operationsList, list.length
      ? h("ul", { className: "map-operations" }, list.slice(0, MAX_OPERATIONS).map((op) => h("li", {},
        h("a", { href: routeHash("search", [], { service, operation: op.name, ...rangeParams }) }, op.name),
        op.spanKind ? h("span", { className: "muted" }, ` ${op.spanKind}`) : null)),
        list.length > MAX_OPERATIONS ? h("li", { className: "muted" }, `and ${list.length - MAX_OPERATIONS} more`) : null)
      : h("p", { className: "muted" }, "No operations recorded."));
  }
  if (traces.status === "rejected") {
    replace(tracesList, notice("error", "Traces could not be searched", traces.reason.message));
  } else {
    tracesList.className = "";
    replace(tracesList, traceList(traces.value?.traces ?? [], service));
  }
}

/** A table of the calls into or out of a service; null when there are none. */
function callsTable(caption, deps, side, rangeParams) {
  if (!deps.length) return null;
  return h("table", { className: "grid map-calls" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", {}, "Service"), h("th", { className: "num" }, "Calls"), h("th", { className: "num" }, "Errors"), h("th", { className: "num" }, "Mean"))),
    h("tbody", {}, deps.map((dep) => h("tr", {},
      h("td", {}, h("a", { href: routeHash("map", [], { ...rangeParams, service: dep[side] }) }, serviceChip(dep[side]))),
      h("td", { className: "num" }, compact.format(dep.callCount)),
      h("td", { className: `num${dep.errorCount > 0 ? " error-text" : ""}` }, errorRate(dep)),
      h("td", { className: "num" }, dep.meanDurationMicros == null ? "–" : formatDuration(dep.meanDurationMicros * 1e3))))));
}

/** The recent traces of a service, each opening the request view. */
function traceList(traces, service) {
  if (!traces.length) return h("p", { className: "muted" }, `No traces of ${service} in this window.`);
  return h("ul", { className: "map-traces" }, traces.map((trace) => h("li", {},
    h("a", { href: routeHash("request", [trace.trace_id]), title: trace.trace_id }, trace.root_operation || trace.trace_id),
    h("div", { className: "muted" },
      [trace.root_service, formatDuration(trace.duration_ns), `${trace.span_count} spans`].filter(Boolean).join(" · "),
      trace.error_span_count > 0 ? [" ", h("span", { className: "badge error" }, `${trace.error_span_count} errors`)] : null,
      trace.start_unix_nano ? ` · ${formatAgo(trace.start_unix_nano)}` : ""))));
}

/** A focusable node of the graph: a rounded box in the service's colour. */
function mapNode(node, deps, view) {
  const name = node.id;
  const calledBy = deps.filter((d) => d.child === name).reduce((sum, d) => sum + d.callCount, 0);
  const calls = deps.filter((d) => d.parent === name).length;
  const color = serviceColor(name);
  const group = svg("g", {
    class: "map-node", "data-testid": "map-node", "data-service": name, tabindex: 0, role: "button",
    "aria-label": `${name}: called ${calledBy} times, calls ${calls} services`, transform: `translate(${node.x} ${node.y})`,
  },
  svg("title", {}, `${name}\ncalled ${calledBy} times · calls ${calls} service${calls === 1 ? "" : "s"}`),
  svg("rect", { class: "map-node-box", width: node.width, height: node.height, rx: 7, stroke: color }),
  svg("rect", { class: "map-node-bar", x: 1, y: 1, width: 6, height: node.height - 2, rx: 3, fill: color }),
  svg("text", { x: 18, y: node.height / 2, "dominant-baseline": "central" }, name));
  const choose = () => {
    const chosen = group.getAttribute("aria-pressed") === "true";
    navigate(routeHash("map", [], { ...routeParams(view.key), service: chosen ? "" : name }));
  };
  group.addEventListener("click", choose);
  group.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    choose();
  });
  return group;
}

/**
 * An edge: its curve with an arrowhead (`line`), and its label (`label`, drawn over every
 * curve): the calls and error rate, and the hosts' clock offset when it is known.
 */
function mapEdge(edge, dep, pairs, measure) {
  const failing = dep.errorCount > 0;
  const skew = pairs.filter((p) => p.client_service === dep.parent && p.server_service === dep.child);
  const text = `${compact.format(dep.callCount)} call${dep.callCount === 1 ? "" : "s"} · ${errorRate(dep)} err`;
  const clock = skew.length ? skewLabel(skew) : "";
  const mean = dep.meanDurationMicros == null ? "" : `, mean ${formatDuration(dep.meanDurationMicros * 1e3)}, max ${formatDuration(dep.maxDurationMicros * 1e3)}`;
  const tip = `${dep.parent} → ${dep.child}: ${dep.callCount} calls, ${dep.errorCount} with errors${mean}`;
  const kind = `map-edge${failing ? " error" : ""}`;
  const ends = { "data-from": dep.parent, "data-to": dep.child };
  const width = Math.max(measure(text), clock ? measure(clock) : 0) + 8;
  const height = clock ? 30 : 16;
  const top = edge.labelY - height / 2;
  return {
    line: svg("g", { class: kind, "data-testid": "map-edge", ...ends },
      svg("title", {}, tip),
      svg("path", { class: "map-edge-line", d: edge.path, "stroke-width": (1.25 + Math.min(2.5, Math.log10(dep.callCount + 1) * 0.6)).toFixed(2),
        "marker-end": `url(#${failing ? "map-arrow-error" : "map-arrow"})` })),
    label: svg("g", { class: `${kind} map-label`, ...ends },
      svg("title", {}, tip),
      svg("rect", { x: edge.labelX - width / 2, y: top, width, height, rx: 4 }),
      svg("text", { class: "map-edge-label", x: edge.labelX, y: top + 8, "text-anchor": "middle", "dominant-baseline": "central" }, text),
      clock ? svg("text", { class: `map-skew${skewed(skew) ? " off" : ""}`, x: edge.labelX, y: top + 22, "text-anchor": "middle", "dominant-baseline": "central" },
        svg("title", {}, skew.map(skewText).join("\n")), clock) : null),
  };
}

/**
 * `clock +250 ms` (under a millisecond `clock ≈ 0`), or the span of the offsets when several
 * host pairs call each other.
 */
function skewLabel(pairs) {
  const offsets = pairs.map((p) => Number(p.offset_ns)).sort((a, b) => a - b);
  const signed = (ns) => (Math.abs(ns) < 1e6 ? "≈ 0" : `${ns > 0 ? "+" : ""}${formatDuration(ns)}`);
  const [low, high] = [signed(offsets[0]), signed(offsets[offsets.length - 1])];
  return low === high ? `clock ${low}` : `clock ${low} … ${high}`;
}

/** Whether any host pair's clocks disagree by a millisecond or more. */
function skewed(pairs) {
  return pairs.some((p) => Math.abs(Number(p.offset_ns)) >= 1e6);
}

/** One host pair's offset in words, for the tooltip. */
function skewText(p) {
  const ns = Number(p.offset_ns);
  const way = ns >= 0 ? "ahead of" : "behind";
  return `${p.server_service}@${p.server_host}'s clock is ${formatDuration(Math.abs(ns))} ${way} ${p.client_service}@${p.client_host}'s` +
    ` (${p.samples} exchanges, spread ${formatDuration(p.spread_ns)})`;
}

/** An arrowhead marker. */
function arrow(id, className) {
  return svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto" },
    svg("path", { d: "M0 0 L10 5 L0 10 z", class: className }));
}

/** A calls' error share as text: `0%`, `<0.1%`, `2.5%`, `40%`. */
function errorRate(dep) {
  if (!dep.errorCount) return "0%";
  const pct = (100 * dep.errorCount) / Math.max(1, dep.callCount);
  if (pct < 0.1) return "<0.1%";
  return `${pct < 10 ? pct.toFixed(1).replace(/\.0$/, "") : Math.round(pct)}%`;
}

/** The width of text in the page's font at `font` (weight and size). */
function textMeasurer(font) {
  const context = document.createElement("canvas").getContext("2d");
  context.font = `${font} ${getComputedStyle(document.body).fontFamily}`;
  return (text) => context.measureText(text).width;
}

/** The URL parameters of the range in a view key (`range|start|end`). */
function routeParams(key) {
  const [range, start, end] = (key ?? "").split("|");
  return { range, start, end };
}

