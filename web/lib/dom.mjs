// Building DOM nodes without innerHTML: text is always set as text, so values from telemetry
// (span names, log bodies, attributes) can never inject markup.

/**
 * Creates an element. `props` sets properties (`className`, `onclick`, `value`…), attributes
 * for keys holding a dash, starting with `aria`, or `role`/`for`/`tabindex`, and `style` from
 * an object. `href` and `src` must point into this UI (`#…` or `/…`): no `javascript:` URL
 * can come from data.
 * Children are nodes, strings (text), arrays of them, or null/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if ((key === "href" || key === "src") && !/^[#/]/.test(String(value))) {
      throw new Error(`refusing a ${key} outside this UI: ${value}`);
    }
    if (key === "style" && typeof value === "object") {
      Object.assign(node.style, value);
    } else if (key.includes("-") || key.startsWith("aria") || key === "role" || key === "for" || key === "tabindex") {
      node.setAttribute(key, value === true ? "" : String(value));
    } else {
      node[key] = value;
    }
  }
  append(node, children);
  return node;
}

/** Appends children (nodes, text, nested arrays; null and false skipped). */
export function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

/** Replaces every child of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Creates an SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

/** A message block for empty and error states. */
export function notice(kind, title, detail) {
  return h("div", { className: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("strong", {}, title), detail ? h("p", {}, detail) : null);
}

/** A labelled form field. */
export function field(label, control, hint) {
  return h("label", { className: "field" }, h("span", {}, label), control, hint ? h("small", {}, hint) : null);
}
