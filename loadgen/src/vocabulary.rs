//! Words, names and routes the generators draw from, so bodies and attributes look real.

/// Words for log bodies.
pub const WORDS: &[&str] = &[
    "request",
    "handled",
    "payment",
    "authorized",
    "declined",
    "inventory",
    "reserved",
    "cache",
    "miss",
    "hit",
    "retrying",
    "upstream",
    "timeout",
    "connection",
    "pool",
    "exhausted",
    "order",
    "created",
    "shipped",
    "user",
    "session",
    "expired",
    "token",
    "refreshed",
    "query",
    "slow",
    "database",
    "replica",
    "lag",
    "queue",
    "message",
    "published",
    "consumed",
    "checkout",
    "completed",
    "failed",
    "validation",
    "error",
    "warning",
    "latency",
    "budget",
    "exceeded",
    "circuit",
    "breaker",
    "opened",
    "closed",
    "feature",
    "flag",
    "enabled",
    "price",
    "quote",
];

/// HTTP routes by service role.
pub const ROUTES: &[&str] = &[
    "/api/cart",
    "/api/checkout",
    "/api/payment",
    "/api/inventory/{sku}",
    "/api/orders/{id}",
    "/api/users/{id}",
    "/api/shipping/quote",
    "/api/recommendations",
    "/api/currency/convert",
];

/// Database systems for client spans.
pub const DB_SYSTEMS: &[&str] = &["postgresql", "redis", "mysql", "mongodb"];

/// HTTP methods with their weights folded in (GET most common).
pub const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"];

/// Default service names for generated topologies.
pub const SERVICES: &[&str] = &[
    "frontend",
    "checkout",
    "payment",
    "inventory",
    "shipping",
    "currency",
    "users",
    "email",
    "recommendation",
    "ad",
    "cart",
    "quote",
];
