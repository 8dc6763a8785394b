// End-to-end tests of skewer's web UI in headless Chromium: the real server, the demo
// scenario (four services, logs, payment's clock 250 ms ahead) and a 10,000-span request;
// every page driven as a user would. Screenshots and the measured figures go to
// `$UI_ARTIFACTS` (default target/ui-artifacts).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { launch } from "./browser.mjs";
import { startServer, eventually, getJson } from "./server.mjs";
import { bigTrace } from "./big_trace.mjs";

const ARTIFACTS = resolve(process.env.UI_ARTIFACTS || join(process.env.CARGO_TARGET_DIR || "target", "ui-artifacts"));
const DEMO_SERVICES = ["checkout", "frontend", "inventory", "payment"];
const BIG_SPANS = 10_000;

let server;
let browser;
let demoTraceId;
let rulesDir;
const figures = {};

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  // Two rules over the demo's order counter: one fires at once, one stays pending for an hour.
  rulesDir = await mkdtemp(join(tmpdir(), "skewer-rules-"));
  const rules = join(rulesDir, "rules.yml");
  await writeFile(rules, [
    "groups:",
    "  - name: shop",
    "    interval: 1s",
    "    rules:",
    "      - alert: OrdersSeen",
    "        expr: sum by (order_outcome) (max_over_time(shop_orders_total[1h])) > 0",
    "        annotations: {summary: '{{ $value }} orders {{ $labels.order_outcome }}'}",
    "      - alert: OrdersForAnHour",
    "        expr: sum(max_over_time(shop_orders_total[1h])) > 0",
    "        for: 1h",
    "",
  ].join("\n"));
  server = await startServer(["--alerting-rule-files", rules]);
  const output = await server.loadgen(["--scenario", "demo", "--duration", "8"]);
  demoTraceId = /\b([0-9a-f]{32})\b/.exec(output)?.[1];
  assert.ok(demoTraceId, `the demo printed no trace id:\n${output}`);
  const big = bigTrace(BIG_SPANS);
  const posted = await fetch(`${server.otlpHttp}/v1/traces`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(big.body) });
  assert.equal(posted.status, 200, await posted.text());
  // Everything visible to queries (the demo's skewed trace with its logs, the big trace).
  await eventually(async () => {
    const stitched = await getJson(server.base, `/api/stitch/${demoTraceId}`);
    return stitched.logs.length > 0 && stitched.services.length === 4;
  }, { what: "the demo request with its logs" });
  await eventually(async () => (await getJson(server.base, `/api/stitch/${big.traceId}`)).spans.length === BIG_SPANS, { what: "the big trace" });
  await eventually(async () => (await getJson(server.base, "/api/dependencies?lookback=3600000")).data.length >= 3, { what: "dependencies" });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (rulesDir) await rm(rulesDir, { recursive: true, force: true });
  if (Object.keys(figures).length) {
    await writeFile(join(ARTIFACTS, "figures.json"), `${JSON.stringify(figures, null, 2)}\n`);
    console.log("UI figures:", JSON.stringify(figures));
  }
});

/** A page that fails the test on any script error or request leaving the server. */
async function open(hash, { colorScheme = "light", viewport = { width: 1440, height: 900 } } = {}) {
  const page = await browser.newPage({ colorScheme, viewport });
  const problems = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (message) => {
    // Chromium logs every 4xx answer; the pages turn those into messages, which tests check.
    const answered4xx = /Failed to load resource: the server responded with a status of 4\d\d/.test(message.text());
    if (message.type() === "error" && !answered4xx) problems.push(`console: ${message.text()}`);
  });
  page.on("request", (request) => {
    if (!request.url().startsWith(server.base) && !request.url().startsWith("data:")) problems.push(`request left the host: ${request.url()}`);
  });
  await page.goto(`${server.base}/${hash}`);
  page.problems = problems;
  return page;
}

async function close(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  assert.deepEqual(page.problems, [], `${name}: the page reported problems`);
  await page.close();
}

async function timing(page, key) {
  return page.waitForFunction((name) => window.__skewer?.[name], key).then((handle) => handle.jsonValue());
}

test("search finds the demo's traces, draws them, and opens one", async () => {
  const page = await open("#/search?service=frontend&range=15m");
  await page.waitForSelector('[data-testid="trace-item"]');
  const items = await page.locator('[data-testid="trace-item"]').count();
  assert.ok(items > 0 && items <= 20, `items: ${items}`);
  assert.equal(await page.locator('[data-testid="search-scatter"] circle').count(), items);
  assert.match(await page.locator('[data-testid="trace-item"]').first().innerText(), /frontend/);
  figures.search_rendered_ms = await timing(page, "searchRenderedMs");

  // The form drives the URL: another service and a tag condition (a span in error).
  await page.evaluate(() => { window.__skewer.searchRenderedMs = 0; });
  await page.selectOption('[data-testid="search-service"]', "checkout");
  await page.fill('[data-testid="search-tags"]', "error");
  await page.click('[data-testid="search-submit"]');
  await page.waitForFunction(() => location.hash.includes("service=checkout") && location.hash.includes("where=error"));
  await timing(page, "searchRenderedMs");
  const filtered = await page.locator('[data-testid="trace-item"]').evaluateAll((list) => list.map((item) => Boolean(item.querySelector(".badge.error"))));
  assert.ok(filtered.length > 0, "the demo has failed requests through checkout");
  assert.ok(filtered.every(Boolean), "every trace found carries an error span");
  // Deep link: reloading restores the form.
  await page.reload();
  await page.waitForSelector('[data-testid="search-tags"]');
  assert.equal(await page.inputValue('[data-testid="search-tags"]'), "error");
  assert.equal(await page.inputValue('[data-testid="search-service"]'), "checkout");

  // Every service at once: traces found whatever their service, operations not narrowed.
  await timing(page, "searchRenderedMs"); // the reloaded page's search drawn first
  await page.evaluate(() => { window.__skewer.searchRenderedMs = 0; });
  await page.selectOption('[data-testid="search-service"]', "*");
  await page.fill('[data-testid="search-tags"]', "");
  await page.click('[data-testid="search-submit"]');
  await page.waitForFunction(() => /service=(\*|%2A)/.test(location.hash));
  await timing(page, "searchRenderedMs");
  assert.ok(await page.locator('[data-testid="trace-item"]').count() > 0, "traces of every service");
  assert.equal(await page.locator('[data-testid="search-operation"] option').count(), 1);
  await close(page, "search");
});

test("the request view shows every service, skew marks, the critical path and the request's logs", async () => {
  const page = await open(`#/request/${demoTraceId}`);
  await page.waitForSelector('[data-testid="span-row"]');
  const services = await page.locator('[data-testid="span-row"]').evaluateAll((rows) => [...new Set(rows.map((row) => row.dataset.service))].sort());
  assert.deepEqual(services, DEMO_SERVICES);
  assert.ok(await page.locator('[data-testid="skew-mark"]').count() > 0, "payment's 250 ms must be marked");
  assert.match(await page.locator('[data-testid="skew-mark"]').first().getAttribute("title"), /payment|host/);
  assert.ok(await page.locator(".wf-critical").count() > 0, "the critical path is marked");
  const logLines = await page.locator('[data-testid="request-log-line"]').count();
  assert.ok(logLines > 0, "the request's logs are listed");
  const chips = await page.locator('[data-testid="request-services"]').innerText();
  for (const service of DEMO_SERVICES) assert.match(chips, new RegExp(service));

  // A log line jumps to its span; the choice lands in the URL.
  await page.locator('[data-testid="request-log-line"] .rl-span').first().click();
  await page.waitForFunction(() => location.hash.includes("span="));
  await page.waitForSelector('.wf-row.selected');
  assert.match(await page.locator('[data-testid="span-detail"]').innerText(), /Logs of this span \([1-9]/);
  await page.screenshot({ path: join(ARTIFACTS, "request-adjusted.png"), fullPage: true });

  // Raw times: the toggle moves bars back to where the hosts' clocks put them.
  const adjustedLeft = await page.locator('.wf-row[data-service="payment"] .wf-bar').first().evaluate((bar) => bar.style.left);
  await page.getByRole("button", { name: "Raw" }).click();
  await page.waitForFunction(() => location.hash.includes("raw=1"));
  const rawLeft = await page.locator('.wf-row[data-service="payment"] .wf-bar').first().evaluate((bar) => bar.style.left);
  assert.notEqual(rawLeft, adjustedLeft, "raw and adjusted place payment's span differently");
  assert.equal(await page.getByRole("button", { name: "Raw" }).getAttribute("aria-pressed"), "true");

  // Collapsing the root hides the rest.
  const rowsBefore = await page.locator('[data-testid="span-row"]').count();
  await page.locator('.wf-row .wf-toggle').first().click();
  const hidden = Number((await page.locator(".wf-hidden").first().innerText()).replace("+", ""));
  assert.ok(hidden > 0);
  assert.equal(await page.locator('[data-testid="span-row"]').count(), rowsBefore - hidden);
  await close(page, "request-raw");
});

test("a deep link restores the request view's state, in dark mode too", async () => {
  const stitched = await getJson(server.base, `/api/stitch/${demoTraceId}`);
  const payment = stitched.spans.find((span) => span.service_name === "payment");
  const page = await open(`#/request/${demoTraceId}?raw=1&span=${payment.trace_id}/${payment.span_id}`, { colorScheme: "dark" });
  await page.waitForSelector(".wf-row.selected");
  assert.equal(await page.locator(".wf-row.selected").getAttribute("data-service"), "payment");
  assert.equal(await page.getByRole("button", { name: "Raw" }).getAttribute("aria-pressed"), "true");
  // The detail shows the time as payment's clock wrote it; Adjusted switches it.
  const clock = (ns) => new Date(Number(BigInt(ns) / 1_000_000n)).toTimeString().slice(0, 8);
  assert.match(await page.locator('[data-testid="span-detail"]').innerText(), new RegExp(clock(payment.raw_start_unix_nano)));
  await page.getByRole("button", { name: "Adjusted" }).click();
  await page.waitForFunction(() => !location.hash.includes("raw=1"));
  assert.match(await page.locator('[data-testid="span-detail"]').innerText(), new RegExp(`start\\s+\\S+ ${clock(payment.start_unix_nano)}`));
  assert.match(await page.locator('[data-testid="span-detail"]').innerText(), new RegExp(payment.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  await close(page, "request-dark");
});

test("the waterfall works from the keyboard", async () => {
  const page = await open(`#/request/${demoTraceId}`);
  await page.waitForSelector('[data-testid="span-row"]');
  await page.locator('[data-testid="span-row"]').first().focus();
  for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowDown");
  const focused = await page.evaluate(() => document.activeElement?.dataset.index);
  assert.ok(focused !== undefined, "a row keeps the focus");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => location.hash.includes("span="));
  assert.equal(await page.locator(".wf-row.selected").getAttribute("data-index"), focused);
  // Left collapses the root, right opens it again.
  const rows = await page.locator('[data-testid="span-row"]').count();
  await page.locator('[data-testid="span-row"]').first().focus();
  await page.keyboard.press("ArrowLeft");
  assert.equal(await page.locator('[data-testid="span-row"]').count(), 1);
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.locator('[data-testid="span-row"]').count(), rows);
  await close(page, "request-keyboard");
});

test("a 10,000-span request keeps only what is visible in the page and scrolls", async () => {
  const { traceId } = bigTrace(1);
  const page = await open(`#/request/${traceId}`);
  await page.waitForSelector('[data-testid="span-row"]');
  figures.big_request_spans = await timing(page, "requestSpans");
  assert.equal(figures.big_request_spans, BIG_SPANS);
  figures.big_request_interactive_ms = await timing(page, "requestInteractiveMs");
  figures.big_request_rendered_ms = await timing(page, "requestRenderedMs");
  const drawn = await page.locator('[data-testid="span-row"]').count();
  assert.ok(drawn > 10 && drawn < 120, `rows in the DOM: ${drawn}`);
  // Scroll 120 frames, 130 px a frame (five rows); count frames over 25 ms (a 60 Hz budget and a half).
  const scroll = await page.evaluate(() => new Promise((done) => {
    const scroller = document.querySelector('[data-testid="waterfall-scroller"]');
    const deltas = [];
    let last = performance.now();
    const step = () => {
      const now = performance.now();
      deltas.push(now - last);
      last = now;
      if (deltas.length > 120) {
        done({ frames: deltas.length - 1, ms: deltas.slice(1).reduce((a, b) => a + b, 0), slow: deltas.slice(1).filter((d) => d > 25).length, top: scroller.scrollTop, rows: scroller.querySelectorAll(".wf-row").length });
        return;
      }
      scroller.scrollTop += 130;
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }));
  figures.big_request_scroll_frames = scroll.frames;
  figures.big_request_scroll_mean_frame_ms = scroll.ms / scroll.frames;
  figures.big_request_scroll_slow_frames = scroll.slow;
  assert.equal(scroll.top, 120 * 130);
  assert.ok(scroll.rows > 10 && scroll.rows < 120, `rows after scrolling: ${scroll.rows}`);
  await close(page, "request-10k");
});

test("the logs page finds the demo's logs, counts them by level and links to requests", async () => {
  const page = await open("#/logs?service=payment&range=15m");
  await page.waitForSelector('[data-testid="log-row"]');
  assert.ok(await page.locator('[data-testid="log-row"]').count() > 0);
  assert.ok(await page.locator('[data-testid="log-histogram"] rect').count() > 0, "a histogram is drawn");
  assert.match(await page.locator('[data-testid="log-facets"]').innerText(), /info|error|warn/i);
  const link = page.locator('[data-testid="log-results"] a[href^="#/request/"]').first();
  await link.click();
  await page.waitForSelector('[data-testid="span-row"]');
  await close(page, "logs-to-request");
});

test("a bad log query shows the server's message", async () => {
  const page = await open("#/logs?q=%28&range=15m");
  await page.waitForSelector(".notice.error");
  assert.match(await page.locator(".notice.error").innerText(), /syntax error|parse|expected/i);
  await close(page, "logs-error");
});

test("a PromQL chart renders the demo's metrics, with a table view", async () => {
  const query = encodeURIComponent("sum by (job) (rate(http_server_request_duration_seconds_count[1m]))");
  const page = await open(`#/metrics?query=${query}&range=15m`);
  await page.waitForSelector('[data-testid="metric-chart"] canvas');
  figures.metric_series = await timing(page, "metricSeries");
  assert.ok(figures.metric_series >= 1);
  figures.metrics_rendered_ms = await timing(page, "metricsRenderedMs");
  await page.screenshot({ path: join(ARTIFACTS, "metrics-chart.png"), fullPage: true });
  await page.goto(`${server.base}/#/metrics?query=${query}&range=15m&view=table`);
  await page.waitForSelector('[data-testid="metric-table"] tr');
  assert.match(await page.locator('[data-testid="metric-table"]').innerText(), /checkout|frontend|payment|inventory/);
  await close(page, "metrics-table");
});

test("the service map draws the demo's calls and payment's clock offset", async () => {
  const page = await open("#/map?range=1h");
  await page.waitForSelector('[data-testid="map-node"]');
  const nodes = await page.locator('[data-testid="map-node"]').evaluateAll((list) => list.map((node) => node.dataset.service).sort());
  for (const service of DEMO_SERVICES) assert.ok(nodes.includes(service), `${service} in ${nodes}`);
  assert.ok(await page.locator('[data-testid="map-edge"]').count() >= 3);
  assert.match(await page.locator('[data-testid="service-map"]').textContent(), /clock/i);
  await close(page, "service-map");
});

test("unknown ids and an unreachable backend give messages, not blank pages", async () => {
  const page = await open("#/request/00000000000000000000000000000bad");
  await page.waitForSelector(".notice");
  assert.match(await page.locator(".notice").innerText(), /Nothing found/);
  await page.route("**/api/**", (route) => route.abort());
  await page.goto(`${server.base}/#/search?service=frontend`);
  await page.waitForSelector(".notice.error");
  assert.match(await page.locator(".notice.error").innerText(), /cannot be reached/);
  // The aborted requests are this test's doing; anything else is a problem.
  const own = (problem) => /ERR_FAILED|Failed to load resource/.test(problem);
  page.problems.splice(0, page.problems.length, ...page.problems.filter((problem) => !own(problem)));
  await close(page, "errors");
});

test("the UI loads under 400 KB, from this host only, and is cached by validator", async () => {
  const page = await browser.newPage();
  const sizes = new Map();
  page.on("response", (response) => {
    const path = new URL(response.url()).pathname;
    if (path === "/" || path.startsWith("/ui/")) sizes.set(path, response.body().then((body) => body.length));
  });
  // One load, then every page: the UI's files are fetched once and cached by the browser.
  const pages = [
    ["#/search?service=frontend", '[data-testid="trace-item"]'],
    [`#/request/${demoTraceId}`, '[data-testid="span-row"]'],
    ["#/logs", '[data-testid="log-row"]'],
    ["#/metrics?query=up", 'link[href$="uPlot.min.css"]'],
    ["#/map", '[data-testid="map-node"]'],
  ];
  for (const [hash, shown] of pages) {
    await page.goto(`${server.base}/${hash}`);
    await page.waitForSelector(shown, { state: "attached" });
    await page.waitForLoadState("networkidle");
  }
  const total = (await Promise.all(sizes.values())).reduce((sum, size) => sum + size, 0);
  for (const file of ["/ui/vendor/uplot/uPlot.esm.js", "/ui/vendor/uplot/uPlot.min.css"]) {
    assert.ok(sizes.has(file), `the metrics page loaded ${file}`);
  }
  figures.ui_bytes = total;
  assert.ok(total > 10_000 && total <= 400 * 1024, `the UI weighs ${total} bytes`);
  const first = await fetch(`${server.base}/ui/app.mjs`);
  assert.equal(first.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.match(first.headers.get("content-security-policy"), /default-src 'none'/);
  const again = await fetch(`${server.base}/ui/app.mjs`, { headers: { "if-none-match": first.headers.get("etag") } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${server.base}/ui/../Cargo.toml`)).status, 404);
  await page.close();
});

test("the alerts page shows firing and pending alerts and every rule's state", async () => {
  await eventually(async () => (await getJson(server.base, "/api/alerts")).alerts.some((a) => a.state === "firing"), { what: "a firing alert" });
  const page = await open("#/alerts");
  await page.waitForSelector('[data-testid="alert-row"][data-alert="OrdersSeen"]');
  const states = await page.locator('[data-testid="rule-row"]').evaluateAll((rows) =>
    Object.fromEntries(rows.map((row) => [row.dataset.rule, row.querySelector("[data-state]")?.dataset.state])));
  assert.deepEqual(states, { OrdersSeen: "firing", OrdersForAnHour: "pending" });
  const summary = await page.locator('[data-testid="alert-row"][data-alert="OrdersSeen"]').first().textContent();
  assert.match(summary, /orders (placed|failed|declined)/);
  assert.match(await page.locator('[data-testid="alerts-summary"]').textContent(), /firing, 1 pending · 2 rules in 1 group$/);
  await close(page, "alerts");
});
