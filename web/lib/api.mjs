// Fetching from skewer's own APIs. Every error becomes an ApiError carrying the server's
// message (each API family words its errors differently), never a blank page.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** The message in an error body, whichever API family answered. */
export function errorMessage(body, status) {
  if (body && typeof body === "object") {
    if (typeof body.error === "string") return body.error; // native, Prometheus
    if (body.error && typeof body.error.message === "string") return body.error.message; // api_v3
    if (Array.isArray(body.errors) && body.errors[0]?.msg) return body.errors[0].msg; // Jaeger v1
    if (typeof body.message === "string") return body.message; // Loki
  }
  if (typeof body === "string" && body.trim()) return body.trim();
  return `the server answered ${status}`;
}

/** `path` with the query parameters in `params` (arrays repeat the key; empty values skipped). */
export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null && item !== "") query.append(key, String(item));
    }
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * GETs JSON. Throws ApiError with the server's message on an error status, and a clear one
 * when the server cannot be reached. `signal` aborts a request a newer one replaced.
 */
export async function getJson(path, params = {}, { signal } = {}) {
  let response;
  try {
    response = await fetch(url(path, params), { signal, headers: { accept: "application/json" } });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("skewer cannot be reached: is the server running?", 0);
  }
  const text = await response.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: keep the text for the message.
  }
  if (!response.ok) throw new ApiError(errorMessage(body, response.status), response.status);
  if (body && body.status === "error") throw new ApiError(errorMessage(body, response.status), response.status);
  return body;
}

/** One request at a time per caller: starting a new one aborts the previous. */
export function latest() {
  let controller = null;
  return (path, params) => {
    controller?.abort();
    controller = new AbortController();
    return getJson(path, params, { signal: controller.signal });
  };
}
