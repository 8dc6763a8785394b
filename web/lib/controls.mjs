// Controls and small views several pages share: the time-range picker, service chips,
// severity names, attribute tables.

import { h } from "./dom.mjs";
import { RANGE_PRESETS, toLocalInput, resolveRange } from "./time.mjs";
export { severityName } from "./severity.mjs";
import { serviceColor } from "./colors.mjs";

/**
 * A time-range picker restoring `range` (a preset) or `start`/`end` (ms since the epoch)
 * from `params`. `read()` gives the parameters to put in the URL; `resolve()` the range in ms.
 */
export function rangeControl(params, { defaultRange = "1h" } = {}) {
  const custom = Boolean(params.get("start") || params.get("end"));
  let shown;
  try {
    shown = custom ? routeRange(params, defaultRange) : null;
  } catch {
    shown = null; // The page reports the bad range; the inputs show the last hour.
  }
  const select = h("select", { name: "range", "aria-label": "Time range" },
    RANGE_PRESETS.map((preset) => h("option", { value: preset, selected: !custom && (params.get("range") || defaultRange) === preset }, `Last ${preset}`)),
    h("option", { value: "custom", selected: custom }, "Custom…"));
  const now = Date.now();
  const startInput = h("input", { type: "datetime-local", name: "start", "aria-label": "Start", value: toLocalInput(shown?.startMs ?? now - 3600e3) });
  const endInput = h("input", { type: "datetime-local", name: "end", "aria-label": "End", value: toLocalInput(shown?.endMs ?? now) });
  const absolute = h("span", { className: "range-absolute", hidden: !custom }, startInput, " – ", endInput);
  select.addEventListener("change", () => { absolute.hidden = select.value !== "custom"; });
  const element = h("label", { className: "field" }, h("span", {}, "Time range"), h("span", { className: "range" }, select, absolute));
  return {
    element,
    /** URL parameters for the chosen range. */
    read() {
      if (select.value !== "custom") return { range: select.value };
      const startMs = Date.parse(startInput.value);
      const endMs = Date.parse(endInput.value);
      return { start: Number.isNaN(startMs) ? "" : startMs, end: Number.isNaN(endMs) ? "" : endMs };
    },
  };
}

/** The range in a route's parameters, in ms since the epoch (throws a readable error). */
export function routeRange(params, defaultRange = "1h") {
  return resolveRange({ range: params.get("range") || defaultRange, start: params.get("start"), end: params.get("end") });
}

/** A service name with its colour swatch. */
export function serviceChip(name, extra) {
  return h("span", { className: "chip", title: name },
    h("span", { className: "swatch", style: { background: serviceColor(name) } }), name || "(unknown)", extra ?? null);
}

/** An OTLP-typed value as display text (`{"type": "int", "value": 3}` → `3`). */
export function valueText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  if ("type" in value && "value" in value) {
    if (value.type === "array") return `[${value.value.map(valueText).join(", ")}]`;
    if (value.type === "map") return `{${value.value.map((a) => `${a.key}: ${valueText(a.value)}`).join(", ")}}`;
    return String(value.value);
  }
  if ("type" in value && value.type === "empty") return "";
  return JSON.stringify(value);
}

/** A key/value table of attributes (`[{key, value}]`); null when there are none. */
export function attributeTable(attributes) {
  if (!attributes?.length) return null;
  return h("table", { className: "kv" }, h("tbody", {},
    attributes.map((attribute) => h("tr", {}, h("td", {}, attribute.key), h("td", {}, valueText(attribute.value))))));
}
