// The request view's waterfall: one row per visible span, drawn only while on screen (a
// 10,000-span request keeps ~60 rows in the DOM), bars in each service's colour, the
// critical path and errors marked, clock-skew marks with the reason and the delta, and, in
// adjusted mode, a dashed outline where a moved span's own clock put it.

import { h, replace } from "../lib/dom.mjs";
import { serviceColor } from "../lib/colors.mjs";
import { formatDuration, niceTicks, toBigNs } from "../lib/time.mjs";
import { buildTree, visibleRows, timeBounds, barGeometry, intervalGeometry, segmentsIn, visibleSlice, ancestors, descendantCount, startOf, endOf } from "../lib/waterfall.mjs";

/** Height of one row in px (CSS `.wf-row` matches it). */
export const ROW_HEIGHT = 26;
const MAX_INDENT_LEVELS = 30;

/**
 * Creates the waterfall. `onSelect(index)` is called when a span is chosen (click, Enter).
 * Returns `{ element, setData, setMode, select, reveal, bounds, dispose }`.
 */
export function createWaterfall({ onSelect }) {
  const state = { spans: [], mode: "adjusted", tree: null, rows: [], bounds: null, collapsed: new Set(), selected: -1, extraTimes: [], critical: new Map() };
  const axis = h("div", { className: "wf-axis", "aria-hidden": "true" });
  const inner = h("div", { className: "wf-inner", role: "rowgroup" });
  const scroller = h("div", { className: "wf-scroller", tabindex: "-1", "data-testid": "waterfall-scroller" }, inner);
  const element = h("section", { className: "waterfall card", role: "treegrid", "aria-label": "Spans of the request", "data-testid": "waterfall" },
    h("div", { className: "wf-head" }, h("div", { className: "wf-head-name" }, "Service · operation"), axis),
    scroller);

  let frame = 0;
  /** The rows in the DOM by position. */
  const drawn = new Map();
  scroller.addEventListener("scroll", () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; drawRows(false); });
  });
  const onResize = () => drawRows();
  window.addEventListener("resize", onResize);

  inner.addEventListener("click", (event) => {
    const row = event.target.closest(".wf-row");
    if (!row) return;
    const index = Number(row.dataset.index);
    if (event.target.closest(".wf-toggle")) toggle(index);
    else onSelect(index);
  });
  inner.addEventListener("keydown", (event) => {
    const row = event.target.closest(".wf-row");
    if (!row || event.target.closest(".wf-toggle")) return;
    const index = Number(row.dataset.index);
    const position = state.rows.findIndex((r) => r.index === index);
    if (event.key === "Enter" || event.key === " ") onSelect(index);
    else if (event.key === "ArrowRight" && state.collapsed.has(index)) toggle(index);
    else if (event.key === "ArrowLeft" && !state.collapsed.has(index) && state.tree.children.has(index)) toggle(index);
    else if (event.key === "ArrowDown" || event.key === "ArrowUp") focusRow(position + (event.key === "ArrowDown" ? 1 : -1));
    else return;
    event.preventDefault();
  });

  function relayout() {
    state.tree = buildTree(state.spans, state.mode);
    state.bounds = timeBounds(state.spans, state.mode, state.extraTimes);
    refreshRows();
    scroller.style.height = `${Math.min(Math.max(state.rows.length, 3) * ROW_HEIGHT + 2, Math.max(240, window.innerHeight * 0.62))}px`;
    drawAxis();
    drawRows();
  }

  function drawAxis() {
    const { ticks } = niceTicks(0, state.bounds.total, 6);
    replace(axis, ticks.map((tick) => h("span", { className: "wf-tick", style: { left: `${(tick / state.bounds.total) * 100}%` } }, formatDuration(tick))));
  }

  /**
   * Draws the rows in view. Scrolling keeps the rows still in view and builds only those
   * coming in (a few a frame); `full` rebuilds all after the rows or their look changed. The
   * row holding keyboard focus keeps it.
   */
  function drawRows(full = true) {
    const { first, last } = visibleSlice(scroller.scrollTop, scroller.clientHeight || 600, ROW_HEIGHT, state.rows.length);
    const focused = inner.contains(document.activeElement) ? document.activeElement.closest(".wf-row")?.dataset.index : undefined;
    if (full) {
      drawn.clear();
      inner.replaceChildren();
    }
    for (const [position, node] of drawn) {
      if (position < first || position >= last) {
        node.remove();
        drawn.delete(position);
      }
    }
    const fresh = [];
    for (let position = first; position < last; position++) {
      if (drawn.has(position)) continue;
      const node = rowNode(state.rows[position], position);
      drawn.set(position, node);
      fresh.push(node);
    }
    inner.append(...fresh);
    inner.setAttribute("aria-rowcount", String(state.rows.length));
    if (focused !== undefined) inner.querySelector(`.wf-row[data-index="${focused}"]`)?.focus({ preventScroll: true });
  }

  function rowNode(row, position) {
    const span = state.spans[row.index];
    const color = serviceColor(span.service_name);
    const { left, width } = barGeometry(span, state.bounds, state.mode);
    const duration = Number(toBigNs(endOf(span, state.mode)) - toBigNs(startOf(span, state.mode)));
    const isError = span.status === "error";
    const skew = span.skew;
    const collapsed = state.collapsed.has(row.index);
    const indent = Math.min(row.depth, MAX_INDENT_LEVELS) * 14;
    const classes = ["wf-row"];
    if (row.index === state.selected) classes.push("selected");
    if (isError) classes.push("error");
    if (span.on_critical_path) classes.push("critical");
    const ghost = skew?.applied && state.mode === "adjusted" ? rawGhost(span) : null;
    const segments = state.critical.get(row.index);
    return h("div", {
      className: classes.join(" "), role: "row", tabindex: "0", "data-index": row.index, "data-testid": "span-row",
      "data-service": span.service_name, "aria-selected": row.index === state.selected ? "true" : "false",
      "aria-level": row.depth + 1, "aria-rowindex": position + 1, "aria-expanded": row.childCount ? String(!collapsed) : undefined,
      style: { transform: `translateY(${position * ROW_HEIGHT}px)` },
    },
    h("div", { className: "wf-name", role: "gridcell", style: { paddingLeft: `${indent + 4}px` } },
      row.childCount
        ? h("button", { className: "wf-toggle", type: "button", tabindex: "-1", "aria-label": collapsed ? "Expand" : "Collapse", "aria-expanded": collapsed ? "false" : "true" }, collapsed ? "▸" : "▾")
        : h("span", { className: "wf-toggle-space" }),
      row.depth > MAX_INDENT_LEVELS ? h("span", { className: "wf-depth", title: `depth ${row.depth}` }, row.depth) : null,
      h("span", { className: "swatch", style: { background: color } }),
      h("span", { className: "wf-service" }, span.service_name),
      h("span", { className: "wf-op", title: span.name }, span.name),
      collapsed ? h("span", { className: "muted wf-hidden" }, `+${descendantCount(state.tree, row.index)}`) : null,
      isError ? h("span", { className: "badge error", title: span.status_message || "status error" }, "error") : null,
      skew ? skewBadge(skew) : null),
    h("div", { className: "wf-track", role: "gridcell" },
      ghost ? h("div", { className: "wf-ghost", title: "where this span's own clock put it", style: { left: `${ghost.left * 100}%`, width: `${ghost.width * 100}%` } }) : null,
      h("div", { className: "wf-bar", style: { left: `${left * 100}%`, width: `${width * 100}%`, background: color } }),
      segments ? segmentsIn(span, segments, state.mode).map(([start, end]) => {
        const place = intervalGeometry(start, end, state.bounds);
        return h("div", { className: "wf-critical", title: "on the critical path", style: { left: `${place.left * 100}%`, width: `${place.width * 100}%` } });
      }) : null,
      h("span", { className: "wf-duration", style: left + width > 0.85 ? { right: `${(1 - left) * 100 + 0.5}%` } : { left: `${(left + width) * 100 + 0.5}%` } }, formatDuration(duration))));
  }

  /** The span's raw times on the adjusted axis; none when they fall off the window. */
  function rawGhost(span) {
    const start = toBigNs(startOf(span, "raw")) - state.bounds.base;
    const end = toBigNs(endOf(span, "raw")) - state.bounds.base;
    if (start < 0n || Number(end) > state.bounds.total) return null;
    return barGeometry(span, state.bounds, "raw");
  }

  /** Recomputes the visible rows after a subtree opened or closed. */
  function refreshRows() {
    state.rows = visibleRows(state.tree, state.collapsed);
    inner.style.height = `${state.rows.length * ROW_HEIGHT}px`;
  }

  function toggle(index) {
    if (state.collapsed.has(index)) state.collapsed.delete(index);
    else state.collapsed.add(index);
    refreshRows();
    drawRows();
    inner.querySelector(`.wf-row[data-index="${index}"]`)?.focus();
  }

  function focusRow(position) {
    if (position < 0 || position >= state.rows.length) return;
    scrollToPosition(position);
    drawRows();
    inner.querySelector(`.wf-row[data-index="${state.rows[position].index}"]`)?.focus();
  }

  function scrollToPosition(position) {
    const top = position * ROW_HEIGHT;
    if (top < scroller.scrollTop || top + ROW_HEIGHT > scroller.scrollTop + scroller.clientHeight) {
      scroller.scrollTop = Math.max(0, top - scroller.clientHeight / 3);
    }
  }

  return {
    element,
    /**
     * New spans in `mode` times, log times widening the axis, and the critical path as a Map
     * from span index to its `[start, end]` stretches (ns); collapsed subtrees reset.
     */
    setData(spans, mode, extraTimes = [], critical = new Map()) {
      state.spans = spans;
      state.mode = mode;
      state.critical = critical;
      state.extraTimes = extraTimes;
      state.collapsed = new Set();
      state.selected = -1;
      relayout();
    },
    /** "adjusted" or "raw" times. */
    setMode(mode, extraTimes = state.extraTimes) {
      state.mode = mode;
      state.extraTimes = extraTimes;
      relayout();
    },
    /** Marks a span selected (-1 for none). */
    select(index) {
      state.selected = index;
      drawRows();
    },
    /** Expands the span's ancestors and scrolls it into view. */
    reveal(index) {
      let changed = false;
      for (const parent of ancestors(state.spans, index)) changed = state.collapsed.delete(parent) || changed;
      if (changed) refreshRows();
      const position = state.rows.findIndex((row) => row.index === index);
      if (position >= 0) scrollToPosition(position);
      drawRows();
    },
    /** The window the bars are drawn on. */
    bounds: () => state.bounds,
    /** Stops listening to the window (the page is left or another request loaded). */
    dispose() {
      window.removeEventListener("resize", onResize);
    },
  };
}

/** A clock-skew mark: filled when the span was moved, outlined when only flagged. */
function skewBadge(skew) {
  const delta = Number(skew.delta_ns);
  const text = `⏱ ${delta > 0 ? "+" : ""}${formatDuration(delta)}`;
  const title = `${skew.reason}\nhost ${skew.host}${skew.other_host ? ` vs ${skew.other_host}` : ""}: ${formatDuration(delta)}${skew.applied ? " (adjusted)" : " (not adjusted)"}`;
  return h("span", { className: `badge skew${skew.applied ? "" : " flagged"}`, title, "data-testid": "skew-mark" }, text);
}
