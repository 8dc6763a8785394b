// The shell: routes the URL hash to a page, keeps the navigation current, and turns a page
// that fails into a message instead of a blank screen.

import { h, replace, notice } from "./lib/dom.mjs";
import { parseRoute, routeHash, navigate } from "./lib/route.mjs";
import { getJson } from "./lib/api.mjs";
import { registerServices } from "./lib/colors.mjs";
import * as search from "./pages/search.mjs";
import * as request from "./pages/request.mjs";
import * as logs from "./pages/logs.mjs";
import * as metrics from "./pages/metrics.mjs";
import * as map from "./pages/map.mjs";
import * as alerts from "./pages/alerts.mjs";

const PAGES = { search, request, trace: request, logs, metrics, map, alerts };

const TITLES = { search: "Search", request: "Request", trace: "Request", logs: "Logs", metrics: "Metrics", map: "Service map", alerts: "Alerts" };
const root = document.getElementById("page");
let current = null;
let navigation = null;

async function show() {
  // Each navigation gets a signal; the next one aborts it, so a slow answer for a page the
  // user has left never draws over the page they are on.
  navigation?.abort();
  navigation = new AbortController();
  const route = { ...parseRoute(location.hash), signal: navigation.signal };
  const page = PAGES[route.page];
  document.title = `${TITLES[route.page] ?? "Not found"}${route.rest[0] ? ` ${route.rest[0]}` : ""} · skewer`;
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    link.toggleAttribute("aria-current", link.dataset.page === route.page);
  }
  if (current?.page !== page) {
    current?.dispose?.();
    current = null;
    root.focus({ preventScroll: true }); // screen readers hear the new page
  }
  if (!page) {
    replace(root, notice("error", "No such page", `“${route.page}” is not a page of skewer's UI.`),
      h("p", {}, h("a", { href: "#/search" }, "Go to search")));
    return;
  }
  try {
    const view = current ?? { page, ...(page.create?.(root) ?? {}) };
    current = view;
    await page.show(root, route, view);
  } catch (err) {
    if (err.name === "AbortError" || route.signal.aborted) return;
    console.error(err);
    replace(root, notice("error", "This page failed", err.message));
  }
}

document.getElementById("goto").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = new FormData(event.target).get("id").trim();
  if (id) navigate(routeHash("request", [id]));
});

window.addEventListener("hashchange", show);
// Known services first, so each keeps one distinct colour on every page.
getJson("/api/v3/services")
  .then((answer) => registerServices(answer.services ?? []))
  .catch(() => {})
  .finally(show);
