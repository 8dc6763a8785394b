// Page state lives in the URL hash (`#/search?service=checkout&range=1h`), so every view
// can be bookmarked, shared and restored with the back button.

/** The route of a hash: `{ page, rest, params }`, `rest` the path after the page name. */
export function parseRoute(hash) {
  const text = String(hash ?? "").replace(/^#\/?/, "");
  const [path, query = ""] = splitOnce(text, "?");
  const segments = path.split("/").filter(Boolean).map(decodeSegment);
  return {
    page: segments[0] || "search",
    rest: segments.slice(1),
    params: new URLSearchParams(query),
  };
}

/** A path segment decoded; a malformed escape is kept as written rather than thrown. */
function decodeSegment(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + 1)];
}

/** The hash for a page, path segments and parameters (empty values left out). */
export function routeHash(page, rest = [], params = {}) {
  const query = new URLSearchParams();
  const entries = params instanceof URLSearchParams ? params.entries() : Object.entries(params);
  for (const [key, value] of entries) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null && item !== "" && item !== false) query.append(key, String(item));
    }
  }
  const path = [page, ...rest.map(encodeURIComponent)].join("/");
  const text = query.toString();
  return `#/${path}${text ? `?${text}` : ""}`;
}

/** Goes to a route; `replace` rewrites the current history entry instead of adding one. */
export function navigate(hash, { replace = false } = {}) {
  if (location.hash === hash) {
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else if (replace) {
    history.replaceState(null, "", hash);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}
