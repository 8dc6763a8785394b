// The Alerts page (`#/alerts`): what fires and what is pending now, every rule group with each
// rule's state, health and last error, the silences, and (for operator keys) each webhook
// receiver's queue and breaker. Refreshed every 10 s while shown, from `/api/alerts`,
// `/api/rules`, `/api/silences` and `/api/alerts/receivers`.

import { h, replace, notice } from "../lib/dom.mjs";
import { getJson } from "../lib/api.mjs";
import { formatAgo, msToNs } from "../lib/time.mjs";

const REFRESH_MS = 10_000;
const STATE_ORDER = { firing: 0, pending: 1, inactive: 2 };

/** The page's state for one visit: the refresh timer. */
export function create() {
  return { timer: 0 };
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const ago = (rfc3339) => (rfc3339 ? formatAgo(msToNs(Date.parse(rfc3339))) : "never");
const badge = (state) => h("span", { className: `badge alert-${state}`, "data-state": state }, state);

function labelChips(labels, skip = []) {
  return Object.entries(labels ?? {})
    .filter(([name]) => !skip.includes(name))
    .map(([name, value]) => h("span", { className: "chip" }, `${name}=${value}`));
}

function alertsTable(alerts) {
  if (!alerts.length) return notice("empty", "Nothing fires", "No alert is pending or firing for this tenant.");
  const sorted = [...alerts].sort((a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || a.activeAt.localeCompare(b.activeAt));
  return h("table", { className: "grid", "data-testid": "alert-list" },
    h("thead", {}, h("tr", {}, ["State", "Alert", "Labels", "Value", "Active since", "Summary"].map((t) => h("th", {}, t)))),
    h("tbody", {}, sorted.map((alert) => h("tr", { "data-testid": "alert-row", "data-alert": alert.labels.alertname },
      h("td", {}, badge(alert.state), alert.silencedBy?.length ? h("span", { className: "chip", title: alert.silencedBy.join(", ") }, "silenced") : null),
      h("td", {}, h("strong", {}, alert.labels.alertname), h("div", { className: "muted" }, alert.group)),
      h("td", { className: "alert-labels" }, labelChips(alert.labels, ["alertname"])),
      h("td", { className: "mono" }, alert.value),
      h("td", { title: alert.activeAt }, ago(alert.activeAt)),
      h("td", {}, alert.annotations?.summary ?? alert.annotations?.description ?? "")))));
}

function rulesSection(groups) {
  if (!groups.length) {
    return notice("empty", "No rules", "Name Prometheus rule files in [alerting] rule_files (see the README's Alerting section).");
  }
  return groups.map((group) => h("section", { className: "alert-group", "data-testid": "rule-group" },
    h("h3", {}, group.name, h("span", { className: "muted" }, ` · every ${group.interval} s · ${group.file} · evaluated ${ago(group.lastEvaluation)}`)),
    h("table", { className: "grid" },
      h("thead", {}, h("tr", {}, ["Rule", "State", "Health", "Query", "Last evaluation"].map((t) => h("th", {}, t)))),
      h("tbody", {}, group.rules.map((rule) => h("tr", { "data-testid": "rule-row", "data-rule": rule.name },
        h("td", {}, h("strong", {}, rule.name), h("div", { className: "muted" }, rule.type === "recording" ? "recording" : rule.queryLanguage)),
        h("td", {}, rule.type === "alerting" ? badge(rule.state) : "—"),
        h("td", {}, h("span", { className: rule.health === "err" ? "error-text" : "" }, rule.health),
          rule.lastError ? h("div", { className: "error-text alert-error" }, rule.lastError) : null),
        h("td", {}, h("code", { className: "alert-query" }, rule.query)),
        h("td", {}, ago(rule.lastEvaluation))))))));
}

function silencesSection(silences) {
  const shown = silences.filter((s) => s.status.state !== "expired");
  if (!shown.length) return h("p", { className: "muted" }, "No active or pending silence.");
  return h("table", { className: "grid", "data-testid": "silence-list" },
    h("thead", {}, h("tr", {}, ["State", "Matchers", "Ends", "By", "Comment"].map((t) => h("th", {}, t)))),
    h("tbody", {}, shown.map((silence) => h("tr", {},
      h("td", {}, silence.status.state),
      h("td", {}, silence.matchers.map((m) => h("span", { className: "chip" }, `${m.name}${m.isEqual === false ? "!" : "="}${m.isRegex ? "~" : ""}${m.value}`))),
      h("td", { title: silence.endsAt }, silence.endsAt),
      h("td", {}, silence.createdBy),
      h("td", {}, silence.comment)))));
}

function receiversSection(receivers) {
  if (receivers instanceof Error) return h("p", { className: "muted" }, "Receivers' delivery state needs an operator key.");
  if (!receivers.length) return h("p", { className: "muted" }, "No webhook receiver is configured: alerts are evaluated and shown, not sent.");
  return h("table", { className: "grid", "data-testid": "receiver-list" },
    h("thead", {}, h("tr", {}, ["Receiver", "Waiting", "Delivered", "Failed attempts", "Dropped", "Breaker"].map((t) => h("th", {}, t)))),
    h("tbody", {}, receivers.map((r) => h("tr", {},
      h("td", {}, r.name), h("td", {}, r.queued), h("td", {}, r.delivered), h("td", {}, r.failedAttempts), h("td", {}, r.dropped),
      h("td", {}, r.breakerOpen ? h("span", { className: "badge error" }, "open") : "closed")))));
}

/** Renders the page, then refreshes it every 10 s while it is shown. */
export async function show(root, route, view) {
  clearTimeout(view.timer);
  view.dispose = () => clearTimeout(view.timer);
  const title = h("h1", {}, "Alerts");
  if (!root.querySelector("[data-testid=alerts-page]")) replace(root, title, h("p", { className: "loading" }, "Loading alerts and rules"));
  let alerts, rules, silences, receivers;
  try {
    [alerts, rules, silences, receivers] = await Promise.all([
      getJson("/api/alerts", {}, { signal: route.signal }),
      getJson("/api/rules", {}, { signal: route.signal }),
      getJson("/api/silences", {}, { signal: route.signal }),
      getJson("/api/alerts/receivers", {}, { signal: route.signal }).then((body) => body.receivers, (err) => err),
    ]);
  } catch (err) {
    if (route.signal.aborted) return;
    replace(root, title, notice("error", "Alerts could not be loaded", err.message));
    return;
  }
  if (route.signal.aborted) return;
  const firing = alerts.alerts.filter((a) => a.state === "firing").length;
  const pending = alerts.alerts.length - firing;
  const ruleCount = rules.groups.reduce((sum, g) => sum + g.rules.length, 0);
  replace(root,
    h("div", { "data-testid": "alerts-page" },
      title,
      h("p", { className: "muted", role: "status", "data-testid": "alerts-summary" },
        `${firing} firing, ${pending} pending · ${plural(ruleCount, "rule")} in ${plural(rules.groups.length, "group")}`),
      h("h2", {}, "Firing and pending"), alertsTable(alerts.alerts),
      h("h2", {}, "Rules"), rulesSection(rules.groups),
      h("h2", {}, "Silences"), silencesSection(silences),
      h("h2", {}, "Receivers"), receiversSection(receivers)));
  view.timer = setTimeout(() => show(root, route, view).catch(() => {}), REFRESH_MS);
}
