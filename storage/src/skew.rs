//! Clock offsets between hosts, estimated continuously from spans as they are applied: each
//! client span and its server child are one NTP-style exchange. With the client's send and
//! receive times `c0`, `c1` and the server's `s0`, `s1`, the server clock's offset is
//! `θ = ((s0 − c0) + (s1 − c1)) / 2` and the exchange's network delay `δ = (c1 − c0) −
//! (s1 − s0)`; the smaller `δ`, the tighter `θ`. Per (client service, client host, server
//! service, server host) the last [`WINDOW`] exchanges are kept, and the estimate is the
//! median offset of the half with the smallest delays, with their spread as the confidence.
//!
//! Client and server spans arrive in different exports, in either order: each waits for its
//! other half in a bounded least-recently-used table. Memory is bounded per tenant (pending
//! halves, pairs, window), whatever the traffic.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use crate::model::{Span, SpanId, SpanKind, TenantId, TraceId};

/// Exchanges kept per host pair.
pub const WINDOW: usize = 128;
/// Half exchanges waiting for their other half, per tenant.
const PENDING: usize = 50_000;
/// Host pairs tracked per tenant; exchanges of further pairs are not counted.
const MAX_PAIRS: usize = 10_000;

/// Who called whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPair {
    /// The calling service.
    pub client_service: String,
    /// Its host.
    pub client_host: String,
    /// The called service.
    pub server_service: String,
    /// Its host.
    pub server_host: String,
}

/// The estimate for one host pair.
#[derive(Debug, Clone, PartialEq)]
pub struct SkewEstimate {
    /// Who called whom.
    pub pair: HostPair,
    /// How far the server's clock is ahead of the client's, ns (negative: behind).
    pub offset_nanos: i64,
    /// Half the range of the offsets the estimate was taken from, ns: how much to trust it.
    pub spread_nanos: u64,
    /// Exchanges in the window.
    pub samples: usize,
    /// The client start of the latest exchange, Unix ns.
    pub last_seen_unix_nano: u64,
}

/// One side of an exchange.
#[derive(Debug, Clone)]
struct Side {
    service: Arc<str>,
    host: Arc<str>,
    start: u64,
    end: u64,
}

#[derive(Debug, Clone, Copy)]
struct Exchange {
    offset: i64,
    delay: i64,
    at: u64,
}

struct TenantSkew {
    /// Client spans by (trace, span), servers by (trace, parent span).
    clients: lru::LruCache<(TraceId, SpanId), Side>,
    servers: lru::LruCache<(TraceId, SpanId), Side>,
    pairs: HashMap<HostPair, VecDeque<Exchange>>,
}

impl TenantSkew {
    fn new() -> Self {
        let capacity = NonZeroUsize::new(PENDING).unwrap_or(NonZeroUsize::MIN);
        Self {
            clients: lru::LruCache::new(capacity),
            servers: lru::LruCache::new(capacity),
            pairs: HashMap::new(),
        }
    }

    fn record(&mut self, client: &Side, server: &Side) {
        // Same host: one clock, nothing to learn.
        if client.host == server.host {
            return;
        }
        let diff = |a: u64, b: u64| (i128::from(a) - i128::from(b)) as i64;
        let exchange = Exchange {
            offset: (diff(server.start, client.start) + diff(server.end, client.end)) / 2,
            delay: diff(client.end, client.start) - diff(server.end, server.start),
            at: client.start,
        };
        let pair = HostPair {
            client_service: client.service.to_string(),
            client_host: client.host.to_string(),
            server_service: server.service.to_string(),
            server_host: server.host.to_string(),
        };
        if !self.pairs.contains_key(&pair) && self.pairs.len() >= MAX_PAIRS {
            return;
        }
        let window = self.pairs.entry(pair).or_default();
        if window.len() == WINDOW {
            window.pop_front();
        }
        window.push_back(exchange);
    }
}

/// Estimates per tenant; fed by the WAL applier, read by the query API.
#[derive(Default)]
pub struct SkewEstimator {
    tenants: Mutex<HashMap<TenantId, TenantSkew>>,
}

impl SkewEstimator {
    /// Takes the client and server spans of an applied export.
    pub fn observe(&self, tenant: &TenantId, spans: &[Span]) {
        if !spans
            .iter()
            .any(|s| matches!(s.kind, SpanKind::Client | SpanKind::Server))
        {
            return;
        }
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let state = tenants
            .entry(tenant.clone())
            .or_insert_with(TenantSkew::new);
        // Resources are shared by the spans of one export group: label each once.
        let mut labels: HashMap<usize, (Arc<str>, Arc<str>)> = HashMap::new();
        for span in spans {
            if !matches!(span.kind, SpanKind::Client | SpanKind::Server) {
                continue;
            }
            let (service, host) = labels
                .entry(Arc::as_ptr(&span.resource) as usize)
                .or_insert_with(|| {
                    (
                        Arc::from(span.resource.service_name()),
                        Arc::from(span.resource.clock_host()),
                    )
                })
                .clone();
            let side = Side {
                service,
                host,
                start: span.start_time_unix_nano,
                end: span.end_time_unix_nano,
            };
            match span.kind {
                SpanKind::Client => {
                    let key = (span.trace_id, span.span_id);
                    match state.servers.pop(&key) {
                        Some(server) => state.record(&side, &server),
                        None => {
                            state.clients.put(key, side);
                        }
                    }
                }
                _ => {
                    let Some(parent) = span.parent_span_id else {
                        continue;
                    };
                    let key = (span.trace_id, parent);
                    match state.clients.pop(&key) {
                        Some(client) => state.record(&client, &side),
                        None => {
                            state.servers.put(key, side);
                        }
                    }
                }
            }
        }
    }

    /// Every host pair's estimate for `tenant`, sorted by pair.
    pub fn estimates(&self, tenant: &TenantId) -> Vec<SkewEstimate> {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let Some(state) = tenants.get(tenant) else {
            return Vec::new();
        };
        let mut estimates: Vec<SkewEstimate> = state
            .pairs
            .iter()
            .filter_map(|(pair, window)| estimate(pair, window))
            .collect();
        estimates.sort_by(|a, b| a.pair.cmp(&b.pair));
        estimates
    }

    /// Every tenant's estimates (self-metrics).
    pub fn all_estimates(&self) -> Vec<(TenantId, SkewEstimate)> {
        let tenants: Vec<TenantId> = {
            let guard = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            guard.keys().cloned().collect()
        };
        tenants
            .into_iter()
            .flat_map(|tenant| {
                self.estimates(&tenant)
                    .into_iter()
                    .map(move |estimate| (tenant.clone(), estimate))
            })
            .collect()
    }
}

/// The median offset of the half of the window with the smallest delays.
fn estimate(pair: &HostPair, window: &VecDeque<Exchange>) -> Option<SkewEstimate> {
    let mut exchanges: Vec<Exchange> = window.iter().copied().collect();
    if exchanges.is_empty() {
        return None;
    }
    exchanges.sort_by_key(|e| e.delay);
    let kept = &mut exchanges[..window.len().div_ceil(2)];
    kept.sort_by_key(|e| e.offset);
    let median = kept[kept.len() / 2].offset;
    let spread = (kept[kept.len() - 1].offset - kept[0].offset).unsigned_abs() / 2;
    Some(SkewEstimate {
        pair: pair.clone(),
        offset_nanos: median,
        spread_nanos: spread,
        samples: window.len(),
        last_seen_unix_nano: window.iter().map(|e| e.at).max().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attribute, InstrumentationScope, Resource, StatusCode};

    const MS: u64 = 1_000_000;

    fn resource(service: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![
                Attribute::string("service.name", service),
                Attribute::string("host.name", format!("{service}-host")),
            ],
            ..Resource::default()
        })
    }

    fn span(
        resource: &Arc<Resource>,
        trace: u8,
        id: u64,
        parent: Option<u64>,
        kind: SpanKind,
        start: u64,
        end: u64,
    ) -> Span {
        Span {
            resource: Arc::clone(resource),
            scope: Arc::new(InstrumentationScope::default()),
            trace_id: TraceId([trace; 16]),
            span_id: SpanId(id.to_be_bytes()),
            parent_span_id: parent.map(|p| SpanId(p.to_be_bytes())),
            trace_state: String::new(),
            flags: 0,
            name: "op".into(),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status_code: StatusCode::Unset,
            status_message: String::new(),
        }
    }

    /// `n` calls from `client` to `server` whose clock is `offset_ms` ahead, with network
    /// delays varying from 1 to 20 ms; server spans sent before clients every other time.
    fn feed(estimator: &SkewEstimator, n: u8, offset_ms: i64) {
        let tenant = TenantId::default_tenant();
        let (client, server) = (resource("checkout"), resource("payment"));
        for i in 0..n {
            let base = 1_700_000_000_000_000_000 + u64::from(i) * 1_000 * MS;
            let one_way = (1 + u64::from(i) % 20) * MS / 2;
            let server_start = (base + one_way).saturating_add_signed(offset_ms * MS as i64);
            let calls = [
                span(
                    &client,
                    i,
                    1,
                    None,
                    SpanKind::Client,
                    base,
                    base + 2 * one_way + 30 * MS,
                ),
                span(
                    &server,
                    i,
                    2,
                    Some(1),
                    SpanKind::Server,
                    server_start,
                    server_start + 30 * MS,
                ),
            ];
            if i % 2 == 0 {
                estimator.observe(&tenant, &calls[..1]);
                estimator.observe(&tenant, &calls[1..]);
            } else {
                estimator.observe(&tenant, &calls[1..]);
                estimator.observe(&tenant, &calls[..1]);
            }
        }
    }

    #[test]
    fn offsets_are_found_within_a_millisecond_from_twenty_calls() {
        for offset_ms in [250, -40, 3, 0] {
            let estimator = SkewEstimator::default();
            feed(&estimator, 20, offset_ms);
            let estimates = estimator.estimates(&TenantId::default_tenant());
            assert_eq!(estimates.len(), 1);
            let estimate = &estimates[0];
            assert_eq!(estimate.samples, 20);
            assert_eq!(estimate.pair.client_host, "checkout-host");
            assert_eq!(estimate.pair.server_host, "payment-host");
            let error = (estimate.offset_nanos - offset_ms * MS as i64).unsigned_abs();
            assert!(error <= MS, "{offset_ms} ms: {estimate:?}");
        }
    }

    #[test]
    fn windows_and_pending_halves_stay_bounded_and_one_host_learns_nothing() {
        let estimator = SkewEstimator::default();
        feed(&estimator, 200, 5);
        let estimates = estimator.estimates(&TenantId::default_tenant());
        assert_eq!(estimates[0].samples, WINDOW);
        // A client calling a server on its own host is no exchange between clocks.
        let same = resource("solo");
        let tenant: TenantId = "other".parse().unwrap();
        estimator.observe(
            &tenant,
            &[
                span(&same, 9, 1, None, SpanKind::Client, 0, 10),
                span(&same, 9, 2, Some(1), SpanKind::Server, 2, 8),
            ],
        );
        assert!(estimator.estimates(&tenant).is_empty());
        assert_eq!(estimator.all_estimates().len(), 1);
    }
}
