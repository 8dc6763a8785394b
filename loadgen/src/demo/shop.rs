//! The demo's shop: four services and the three kinds of request a visitor makes.
//!
//! - browse a product: `frontend GET /api/products/{sku}` → `inventory GET /api/inventory/{sku}`
//!   → PostgreSQL;
//! - look at the cart: `frontend GET /api/cart` → `checkout GET /api/cart` → Redis;
//! - check out: `frontend POST /api/checkout` → `checkout POST /api/checkout` → Redis, then
//!   `inventory POST /api/inventory/reservations` and `payment POST /api/payments` (which
//!   charges the card at an outside card network), then PostgreSQL. A card may be declined
//!   (`402`) or the card network may not answer (`504`, the request fails with `502`), and
//!   the reservation is released; a placed order's reservation is confirmed by the warehouse
//!   in the background, a log line with the request id and no trace context.

use opentelemetry_proto::tonic::resource::v1::Resource;

use super::request::{
    Handled, Hop, HttpRequest, Level, Reply, RequestBuilder, ShopService, between, millis,
};
use crate::common::string;
use crate::rng::Random;

/// The entry service.
pub const FRONTEND: usize = 0;
/// Carts and orders.
pub const CHECKOUT: usize = 1;
/// Card payments.
pub const PAYMENT: usize = 2;
/// Stock.
pub const INVENTORY: usize = 3;

/// Service names by index, and the host each runs on.
const SERVICES: [(&str, &str); 4] = [
    ("frontend", "web-1"),
    ("checkout", "app-1"),
    ("payment", "pay-1"),
    ("inventory", "app-2"),
];

/// What the shop sells: SKU, name, price in cents.
const PRODUCTS: [(&str, &str, u32); 6] = [
    ("SKU-1042", "espresso grinder", 12_900),
    ("SKU-2210", "pour-over kettle", 5_490),
    ("SKU-3305", "ceramic dripper", 2_450),
    ("SKU-4471", "coffee scale", 3_990),
    ("SKU-5120", "milk frother", 4_200),
    ("SKU-6688", "travel mug", 1_990),
];

/// The outside card network payment charges.
const CARD_NETWORK: &str = "api.cardnetwork.example";

/// How long payment waits for the card network.
const CARD_TIMEOUT_MS: f64 = 2_000.0;

/// Share of checkouts whose card is declined, and whose card network times out.
const DECLINED_SHARE: f64 = 0.08;
const TIMEOUT_SHARE: f64 = 0.06;

/// The kinds of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A product page.
    Browse,
    /// The cart.
    Cart,
    /// An order.
    Checkout,
}

/// How a checkout ended, for the orders counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderOutcome {
    /// Paid and placed.
    Placed,
    /// The card was declined.
    Declined,
    /// The card network did not answer.
    Failed,
}

impl OrderOutcome {
    /// The `order.outcome` attribute value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Declined => "declined",
            Self::Failed => "failed",
        }
    }
}

/// The shop's services.
pub struct Shop {
    /// Indexed by [`FRONTEND`], [`CHECKOUT`], [`PAYMENT`], [`INVENTORY`].
    pub services: Vec<ShopService>,
}

/// One request, ready to export.
pub struct ShopRequest<'a> {
    /// Its spans, records and server figures.
    pub built: RequestBuilder<'a>,
    /// How the order ended, for checkouts.
    pub order: Option<OrderOutcome>,
}

impl Shop {
    /// The shop with `skewed`'s clock running `skew_ms` ahead (negative: behind).
    pub fn new(skewed: &str, skew_ms: i64) -> Self {
        let services = SERVICES
            .iter()
            .enumerate()
            .map(|(index, (name, host))| ShopService {
                name,
                resource: Resource {
                    attributes: vec![
                        string("service.name", name),
                        string("service.namespace", "shop"),
                        string("service.version", &format!("2.{index}.0")),
                        string("service.instance.id", &format!("{name}-{host}")),
                        string("host.name", host),
                        string("deployment.environment.name", "demo"),
                    ],
                    ..Resource::default()
                },
                clock_offset_nanos: if *name == skewed {
                    skew_ms.saturating_mul(1_000_000)
                } else {
                    0
                },
            })
            .collect();
        Self { services }
    }

    /// The `index`-th request of a run, starting at `start` (Unix ns, true time). The first
    /// five tell the story's main lines (a placed order, a product page, an order the card
    /// network fails, the cart, a declined card); then half are product pages, a fifth carts,
    /// the rest checkouts.
    pub fn next(&self, rng: &mut Random, index: u64, start: u64) -> ShopRequest<'_> {
        let (kind, outcome) = match index {
            0 => (Kind::Checkout, Some(OrderOutcome::Placed)),
            1 => (Kind::Browse, None),
            2 => (Kind::Checkout, Some(OrderOutcome::Failed)),
            3 => (Kind::Cart, None),
            4 => (Kind::Checkout, Some(OrderOutcome::Declined)),
            _ => match rng.unit() {
                roll if roll < 0.5 => (Kind::Browse, None),
                roll if roll < 0.7 => (Kind::Cart, None),
                _ => (Kind::Checkout, None),
            },
        };
        self.request(rng, kind, start, outcome)
    }

    /// One request of `kind`; a checkout ends in `outcome`, or one drawn at the set shares.
    fn request(
        &self,
        rng: &mut Random,
        kind: Kind,
        start: u64,
        outcome: Option<OrderOutcome>,
    ) -> ShopRequest<'_> {
        let mut built = RequestBuilder::new(&self.services, rng);
        let user = format!("user-{:04}", rng.below(5_000));
        let order = match kind {
            Kind::Browse => {
                browse(&mut built, rng, start);
                None
            }
            Kind::Cart => {
                cart(&mut built, rng, start, &user);
                None
            }
            Kind::Checkout => {
                let outcome = outcome.unwrap_or_else(|| match rng.unit() {
                    roll if roll < DECLINED_SHARE => OrderOutcome::Declined,
                    roll if roll < DECLINED_SHARE + TIMEOUT_SHARE => OrderOutcome::Failed,
                    _ => OrderOutcome::Placed,
                });
                checkout(&mut built, rng, start, &user, outcome);
                Some(outcome)
            }
        };
        ShopRequest { built, order }
    }
}

/// A visitor's request: the frontend serves `page` by calling `callee` with `backend` (whose
/// work `handle` does), logs its answer and answers what the callee did.
fn through_frontend(
    b: &mut RequestBuilder<'_>,
    rng: &mut Random,
    start: u64,
    page: &HttpRequest,
    callee: usize,
    backend: &HttpRequest,
    handle: impl FnOnce(&mut RequestBuilder<'_>, &mut Random, Hop) -> Handled,
) -> Reply {
    b.serve(rng, FRONTEND, None, page, start, |b, rng, hop| {
        let reply = b.call(rng, hop, callee, backend, hop.start, handle);
        let end = reply.end + between(rng, 1.0, 6.0);
        let took = (end - hop.start) / 1_000_000;
        let status = reply.status;
        b.log(
            hop,
            end,
            Level::of_status(status),
            format!(
                "{} {} answered {status} in {took} ms",
                page.method, page.path
            ),
        );
        Handled::answer(end, status)
    })
}

/// `from` has inventory change a reservation (`request`): one `statement` on the stock table,
/// logged as `message`, answered `status`; returns when the answer arrived.
#[allow(clippy::too_many_arguments)]
fn update_stock(
    b: &mut RequestBuilder<'_>,
    rng: &mut Random,
    from: Hop,
    request: &HttpRequest,
    after: u64,
    statement: &str,
    message: String,
    status: u16,
) -> u64 {
    b.call(rng, from, INVENTORY, request, after, |b, rng, hop| {
        let end = b.query(
            rng,
            hop,
            "postgresql",
            "UPDATE",
            "stock",
            statement,
            hop.start,
        );
        b.log(hop, end, Level::Info, message);
        Handled::answer(end + between(rng, 0.2, 1.0), status)
    })
    .end
}

fn browse(b: &mut RequestBuilder<'_>, rng: &mut Random, start: u64) {
    let (sku, product, _) = *rng.pick(&PRODUCTS);
    let page = HttpRequest::new("GET", "/api/products/{sku}", format!("/api/products/{sku}"));
    let stock = HttpRequest::new(
        "GET",
        "/api/inventory/{sku}",
        format!("/api/inventory/{sku}"),
    );
    through_frontend(b, rng, start, &page, INVENTORY, &stock, |b, rng, hop| {
        let end = b.query(
            rng,
            hop,
            "postgresql",
            "SELECT",
            "stock",
            "SELECT quantity FROM stock WHERE sku = $1",
            hop.start,
        );
        let units = rng.below(40);
        let message = format!("{sku} ({product}): {units} in stock");
        b.log(hop, end, Level::Info, message);
        Handled::answer(end + between(rng, 0.2, 1.0), 200)
    });
}

fn cart(b: &mut RequestBuilder<'_>, rng: &mut Random, start: u64, user: &str) {
    let page = HttpRequest::new("GET", "/api/cart", "/api/cart");
    through_frontend(b, rng, start, &page, CHECKOUT, &page, |b, rng, hop| {
        let command = format!("HGETALL cart:{user}");
        let end = b.query(rng, hop, "redis", "HGETALL", "carts", &command, hop.start);
        let items = rng.below(5);
        b.log(
            hop,
            end,
            Level::Info,
            format!("cart of {user}: {items} items"),
        );
        Handled::answer(end + between(rng, 0.2, 1.0), 200)
    });
}

/// What one checkout buys.
struct OrderLine {
    order: String,
    sku: &'static str,
    product: &'static str,
    quantity: u32,
    /// The total, in euros (`59.90`).
    amount: String,
}

fn checkout(
    b: &mut RequestBuilder<'_>,
    rng: &mut Random,
    start: u64,
    user: &str,
    outcome: OrderOutcome,
) {
    let order = format!("ord-{:08x}", rng.next_u64() as u32);
    let (sku, product, price) = *rng.pick(&PRODUCTS);
    let quantity = 1 + rng.below(3) as u32;
    let total = price * quantity;
    let line = OrderLine {
        order,
        sku,
        product,
        quantity,
        amount: format!("{}.{:02}", total / 100, total % 100),
    };
    let request = HttpRequest::new("POST", "/api/checkout", "/api/checkout");
    let reply = through_frontend(
        b,
        rng,
        start,
        &request,
        CHECKOUT,
        &request,
        |b, rng, hop| place_order(b, rng, hop, user, &line, outcome),
    );
    if reply.status == 201 {
        let time = reply.end + between(rng, 20.0, 80.0);
        let message = format!(
            "warehouse confirmed the reservation of order {}",
            line.order
        );
        b.log_untraced(INVENTORY, time, Level::Info, message);
    }
}

/// checkout's `POST /api/checkout`: the cart, a reservation, the payment, then the order, or
/// the reservation released.
fn place_order(
    b: &mut RequestBuilder<'_>,
    rng: &mut Random,
    hop: Hop,
    user: &str,
    line: &OrderLine,
    outcome: OrderOutcome,
) -> Handled {
    let OrderLine {
        order,
        sku,
        product,
        quantity,
        amount,
    } = line;
    let cart = format!("HGETALL cart:{user}");
    let mut now = b.query(rng, hop, "redis", "HGETALL", "carts", &cart, hop.start);
    let message = format!("checking out {user}: {quantity} x {sku} ({product}), order {order}");
    b.log(hop, now, Level::Info, message);
    let reservations = "/api/inventory/reservations";
    let reserve = HttpRequest::new("POST", reservations, reservations);
    now = update_stock(
        b,
        rng,
        hop,
        &reserve,
        now,
        "UPDATE stock SET reserved = reserved + $2 WHERE sku = $1",
        format!("reserved {quantity} x {sku} for order {order}"),
        201,
    );
    let charge = HttpRequest::new("POST", "/api/payments", "/api/payments");
    let paid = b.call(rng, hop, PAYMENT, &charge, now, |b, rng, hop| {
        charge_card(b, rng, hop, line, outcome)
    });
    now = paid.end;
    let status = match outcome {
        OrderOutcome::Placed => {
            now = b.query(
                rng,
                hop,
                "postgresql",
                "INSERT",
                "orders",
                "INSERT INTO orders (id, user_id, sku, quantity, amount) VALUES ($1, $2, $3, $4, $5)",
                now,
            );
            let message = format!("order {order} placed: {quantity} x {sku}, {amount} EUR");
            b.log(hop, now, Level::Info, message);
            201
        }
        OrderOutcome::Declined | OrderOutcome::Failed => {
            let (status, why) = match outcome {
                OrderOutcome::Declined => (402, "payment declined".to_owned()),
                _ => (502, format!("payment answered {}", paid.status)),
            };
            let message = format!("order {order} not placed: {why}; releasing its reservation");
            b.log(hop, now, Level::of_status(status), message);
            let release = HttpRequest::new(
                "DELETE",
                "/api/inventory/reservations/{order}",
                format!("{reservations}/{order}"),
            );
            now = update_stock(
                b,
                rng,
                hop,
                &release,
                now,
                "UPDATE stock SET reserved = reserved - $2 WHERE sku = $1",
                format!("released {quantity} x {sku} of order {order}"),
                204,
            );
            status
        }
    };
    Handled::answer(now + between(rng, 0.2, 1.0), status)
}

/// payment's `POST /api/payments`: the card network authorizes, declines, or never answers.
fn charge_card(
    b: &mut RequestBuilder<'_>,
    rng: &mut Random,
    hop: Hop,
    line: &OrderLine,
    outcome: OrderOutcome,
) -> Handled {
    let (order, amount) = (&line.order, &line.amount);
    let asked = hop.start + between(rng, 0.3, 1.5);
    b.log(
        hop,
        asked,
        Level::Info,
        format!("charging {amount} EUR for order {order}"),
    );
    let charges = "/v1/charges";
    match outcome {
        OrderOutcome::Placed => {
            let answer = asked + between(rng, 60.0, 240.0);
            b.outside_call(
                rng,
                hop,
                "POST",
                CARD_NETWORK,
                charges,
                asked,
                answer,
                Some(201),
            );
            let end = b.query(
                rng,
                hop,
                "postgresql",
                "INSERT",
                "payments",
                "INSERT INTO payments (order_id, amount, status) VALUES ($1, $2, 'captured')",
                answer,
            );
            let message = format!("payment of {amount} EUR authorized for order {order}");
            b.log(hop, end, Level::Info, message);
            Handled::answer(end + between(rng, 0.2, 1.0), 201)
        }
        OrderOutcome::Declined => {
            let answer = asked + between(rng, 40.0, 160.0);
            b.outside_call(
                rng,
                hop,
                "POST",
                CARD_NETWORK,
                charges,
                asked,
                answer,
                Some(402),
            );
            let message = format!("card declined by issuer (insufficient_funds) for order {order}");
            b.log(hop, answer, Level::Warn, message);
            Handled::answer(answer + between(rng, 0.2, 1.0), 402)
        }
        OrderOutcome::Failed => {
            let gave_up = asked + millis(CARD_TIMEOUT_MS);
            b.outside_call(
                rng,
                hop,
                "POST",
                CARD_NETWORK,
                charges,
                asked,
                gave_up,
                None,
            );
            let message = format!(
                "card network did not answer within {CARD_TIMEOUT_MS} ms; \
                 charge for order {order} abandoned"
            );
            b.log(hop, gave_up, Level::Error, message.clone());
            Handled {
                end: gave_up + between(rng, 0.2, 1.0),
                status: 504,
                exception: Some(("TimeoutError", message)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    use super::*;
    use crate::demo::request::REQUEST_ID_KEY;

    fn attribute<'a>(
        attributes: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
        key: &str,
    ) -> Option<&'a Value> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
        match attribute(&span.attributes, key)? {
            Value::StringValue(text) => Some(text),
            _ => None,
        }
    }

    /// Two hundred requests of a shop whose payment clock runs 250 ms ahead.
    fn requests(shop: &Shop) -> Vec<ShopRequest<'_>> {
        let mut rng = Random::new(11);
        (0..200)
            .map(|index| {
                shop.next(
                    &mut rng,
                    index,
                    1_700_000_000_000_000_000 + index * 1_000_000_000,
                )
            })
            .collect()
    }

    #[test]
    fn every_call_is_answered_by_the_service_and_route_it_names() {
        let shop = Shop::new("payment", 250);
        for request in requests(&shop) {
            let spans = &request.built.spans;
            let by_id: HashMap<&[u8], &(usize, Span)> = spans
                .iter()
                .map(|entry| (entry.1.span_id.as_slice(), entry))
                .collect();
            assert_eq!(by_id.len(), spans.len(), "span ids unique");
            assert_eq!(
                spans
                    .iter()
                    .filter(|(_, s)| s.parent_span_id.is_empty())
                    .count(),
                1
            );
            for (service, span) in spans {
                let name = shop.services[*service].name;
                if span.kind == SpanKind::Server as i32 {
                    let route = text(span, "http.route").expect("server spans carry their route");
                    let method = text(span, "http.request.method").expect("and method");
                    assert_eq!(span.name, format!("{method} {route}"));
                    assert_eq!(text(span, "server.address"), Some(name));
                    assert_eq!(
                        text(span, REQUEST_ID_KEY),
                        Some(request.built.request_id.as_str())
                    );
                    if let Some((_, parent)) = by_id.get(span.parent_span_id.as_slice()) {
                        // The caller's client span names this service, route and method.
                        assert_eq!(parent.kind, SpanKind::Client as i32);
                        assert_eq!(
                            text(parent, "server.address"),
                            Some(name),
                            "{}",
                            parent.name
                        );
                        assert_eq!(text(parent, "url.template"), Some(route));
                        assert_eq!(text(parent, "http.request.method"), Some(method));
                    }
                }
                if let Some(template) = text(span, "url.template") {
                    let children: Vec<_> = spans
                        .iter()
                        .filter(|(_, child)| child.parent_span_id == span.span_id)
                        .collect();
                    assert_eq!(children.len(), 1, "{} is answered once", span.name);
                    assert_eq!(text(&children[0].1, "http.route"), Some(template));
                    assert_ne!(children[0].0, *service, "a call leaves its service");
                }
            }
        }
    }

    #[test]
    fn children_lie_within_their_parents_on_the_true_clock() {
        let shop = Shop::new("payment", 250);
        for request in requests(&shop) {
            let spans = &request.built.spans;
            let true_times = |(service, span): &(usize, Span)| {
                let offset = shop.services[*service].clock_offset_nanos;
                (
                    span.start_time_unix_nano.saturating_add_signed(-offset),
                    span.end_time_unix_nano.saturating_add_signed(-offset),
                )
            };
            for child in spans {
                if let Some(parent) = spans
                    .iter()
                    .find(|(_, p)| p.span_id == child.1.parent_span_id)
                {
                    let (start, end) = true_times(child);
                    let (parent_start, parent_end) = true_times(parent);
                    assert!(
                        parent_start <= start && end <= parent_end,
                        "{} in {}",
                        child.1.name,
                        parent.1.name
                    );
                }
                assert!(child.1.start_time_unix_nano < child.1.end_time_unix_nano);
            }
            // Payment writes on a clock 250 ms ahead.
            for (service, span) in spans {
                if *service == PAYMENT && span.kind == SpanKind::Server as i32 {
                    let parent = spans
                        .iter()
                        .find(|(_, p)| p.span_id == span.parent_span_id)
                        .expect("called by checkout");
                    assert!(
                        span.start_time_unix_nano > parent.1.start_time_unix_nano + 249_000_000
                    );
                }
            }
        }
    }

    #[test]
    fn one_request_id_per_request_on_every_record() {
        let shop = Shop::new("payment", 250);
        let requests = requests(&shop);
        let mut ids = HashSet::new();
        for request in &requests {
            let built = &request.built;
            assert!(
                ids.insert(built.request_id.clone()),
                "request ids are unique"
            );
            assert!(!built.logs.is_empty());
            let span_ids: HashSet<(usize, &[u8])> = built
                .spans
                .iter()
                .map(|(service, span)| (*service, span.span_id.as_slice()))
                .collect();
            for (service, record) in &built.logs {
                let id = match attribute(&record.attributes, REQUEST_ID_KEY) {
                    Some(Value::StringValue(id)) => id,
                    other => panic!("no request id: {other:?}"),
                };
                assert_eq!(id, &built.request_id);
                if !record.span_id.is_empty() {
                    assert_eq!(record.trace_id, built.trace_id.to_vec());
                    assert!(
                        span_ids.contains(&(*service, record.span_id.as_slice())),
                        "a record lies in a span of its own service"
                    );
                }
            }
            // Every service a request touches logs in it.
            let logged: HashSet<usize> = built.logs.iter().map(|(service, _)| *service).collect();
            let traced: HashSet<usize> = built.spans.iter().map(|(service, _)| *service).collect();
            assert_eq!(logged, traced);
        }
    }

    #[test]
    fn checkouts_reach_every_service_and_end_in_each_outcome() {
        let shop = Shop::new("payment", 250);
        let requests = requests(&shop);
        let first = &requests[0];
        assert_eq!(
            first.order,
            Some(OrderOutcome::Placed),
            "the printed example is a placed order"
        );
        let services: HashSet<usize> = first
            .built
            .spans
            .iter()
            .map(|(service, _)| *service)
            .collect();
        assert_eq!(services.len(), 4, "a checkout crosses the whole shop");
        let outcomes: HashSet<_> = requests.iter().filter_map(|r| r.order).collect();
        assert_eq!(
            outcomes.len(),
            3,
            "placed, declined and failed orders: {outcomes:?}"
        );
        for request in &requests {
            let root = request
                .built
                .spans
                .iter()
                .find(|(_, s)| s.parent_span_id.is_empty())
                .expect("root");
            let failed = root.1.status.as_ref().is_some_and(|s| s.code == 2);
            assert_eq!(
                failed,
                request.order == Some(OrderOutcome::Failed),
                "{}",
                root.1.name
            );
            let bodies: Vec<String> = request
                .built
                .logs
                .iter()
                .filter_map(|(_, r)| match r.body.as_ref()?.value.as_ref()? {
                    Value::StringValue(body) => Some(body.clone()),
                    _ => None,
                })
                .collect();
            match request.order {
                Some(OrderOutcome::Declined) => {
                    assert!(bodies.iter().any(|b| b.contains("declined")))
                }
                Some(OrderOutcome::Placed) => {
                    // The warehouse's confirmation: the request id and no trace context.
                    let untraced: Vec<_> = request
                        .built
                        .logs
                        .iter()
                        .filter(|(_, r)| r.trace_id.is_empty())
                        .collect();
                    assert_eq!(untraced.len(), 1);
                    assert_eq!(untraced[0].0, INVENTORY);
                }
                _ => {}
            }
        }
    }
}
