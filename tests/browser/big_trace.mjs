// A synthetic request of many spans across eight services (a 4-ary tree, each child inside
// its parent), as one OTLP/HTTP JSON export: the 10,000-span request view's load.

const SERVICES = ["gateway", "auth", "catalog", "pricing", "stock", "cart", "orders", "mailer"];

/** The export and its trace id. */
export function bigTrace(spanCount, nowNs = BigInt(Date.now()) * 1_000_000n) {
  const traceId = "b16b16b16b16b16b16b16b16b16b1600";
  const spans = [];
  const depthOf = [0];
  const window = [[nowNs - 5_000_000_000n, nowNs]];
  for (let i = 0; i < spanCount; i++) {
    const parent = i === 0 ? -1 : Math.floor((i - 1) / 4);
    const depth = parent < 0 ? 0 : depthOf[parent] + 1;
    depthOf[i] = depth;
    let start;
    let end;
    if (parent < 0) {
      [start, end] = window[0];
    } else {
      const [ps, pe] = window[parent];
      const slot = BigInt((i - 1) % 4);
      const width = (pe - ps) / 4n;
      start = ps + slot * width + width / 10n;
      end = start + (width * 8n) / 10n;
    }
    window[i] = [start, end];
    spans.push({
      service: SERVICES[depth % SERVICES.length],
      span: {
        traceId,
        spanId: (i + 1).toString(16).padStart(16, "0"),
        parentSpanId: parent < 0 ? "" : (parent + 1).toString(16).padStart(16, "0"),
        name: `op-${depth}-${i % 7}`,
        kind: depth === 0 ? 2 : 1,
        startTimeUnixNano: String(start),
        endTimeUnixNano: String(end),
        status: { code: i % 97 === 0 ? 2 : 0 },
        attributes: [{ key: "index", value: { intValue: String(i) } }],
      },
    });
  }
  const byService = new Map();
  for (const { service, span } of spans) {
    if (!byService.has(service)) byService.set(service, []);
    byService.get(service).push(span);
  }
  return {
    traceId,
    body: {
      resourceSpans: [...byService].map(([service, list]) => ({
        resource: { attributes: [{ key: "service.name", value: { stringValue: service } }, { key: "host.name", value: { stringValue: `${service}-1` } }] },
        scopeSpans: [{ spans: list }],
      })),
    },
  };
}
