//! The server's Prometheus metrics (`GET /metrics`): requests by route
//! and status, leases in use per pool, and the length of each pool's
//! queue; each pool's seats, seats in use and line by feature, refusals
//! by reason, and when each license expires.

use std::collections::BTreeSet;

use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::engine::Engine;

use super::queue::Queues;

type RouteLabels = [(&'static str, String); 3];
type PoolLabels = [(&'static str, String); 1];
type OneLabel = [(&'static str, String); 1];

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    leases: Family<PoolLabels, Gauge>,
    queued: Family<PoolLabels, Gauge>,
    pool_seats: Family<OneLabel, Gauge>,
    pool_in_use: Family<OneLabel, Gauge>,
    pool_queued: Family<OneLabel, Gauge>,
    denials: Family<OneLabel, Counter>,
    license_expires: Family<OneLabel, Gauge>,
    /// Held while the gauges are set and the text written: gauges of
    /// pools and licenses that are gone are cleared first, and two
    /// scrapes at once must not see each other's half-set families.
    rendering: Mutex<()>,
    /// Every pool a gauge was set for: a pool whose last lease ended
    /// reads 0 rather than its last count.
    pools_seen: Mutex<BTreeSet<String>>,
}

/// A pool's label: the feature, or `license` for the license-level pool.
fn pool_label(pool: Option<&str>) -> String {
    pool.map_or_else(|| "license".to_owned(), |f| escape(&format!("feature:{f}")))
}

/// A label value as the text format needs it: the encoder writes values
/// as they are, and a feature code or license id with a `"` or `\` in it
/// would otherwise break the line.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteLabels, Counter>::default();
        let leases = Family::<PoolLabels, Gauge>::default();
        let queued = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "entitle_http_requests",
            "HTTP requests served, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "entitle_leases_in_use",
            "Live floating leases, by pool",
            leases.clone(),
        );
        registry.register(
            "entitle_lease_queue_length",
            "Checkouts waiting for a seat, by pool",
            queued.clone(),
        );
        let pool_seats = Family::<OneLabel, Gauge>::default();
        let pool_in_use = Family::<OneLabel, Gauge>::default();
        let pool_queued = Family::<OneLabel, Gauge>::default();
        let denials = Family::<OneLabel, Counter>::default();
        let license_expires = Family::<OneLabel, Gauge>::default();
        registry.register(
            "entitle_pool_seats",
            "Floating seats a pool offers, by feature (empty: the license-level pool)",
            pool_seats.clone(),
        );
        registry.register(
            "entitle_pool_in_use",
            "Floating seats taken (borrowed and lingering ones included), by feature",
            pool_in_use.clone(),
        );
        registry.register(
            "entitle_pool_queued",
            "Checkouts waiting in a pool's line, by feature",
            pool_queued.clone(),
        );
        registry.register(
            "entitle_denials",
            "Rights and seats refused, by reason code",
            denials.clone(),
        );
        registry.register(
            "entitle_license_expires_at_seconds",
            "When each license that expires does so (Unix seconds)",
            license_expires.clone(),
        );
        Metrics {
            registry,
            requests,
            leases,
            queued,
            pool_seats,
            pool_in_use,
            pool_queued,
            denials,
            license_expires,
            rendering: Mutex::new(()),
            pools_seen: Mutex::new(BTreeSet::new()),
        }
    }

    pub(crate) fn request(&self, method: &str, route: &str, status: u16) {
        // Any token is a method to HTTP: a label per made-up method would
        // let a client grow the registry without bound.
        let method = match method {
            "GET" | "POST" | "DELETE" | "PUT" | "PATCH" | "HEAD" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.requests
            .get_or_create(&[
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// A right or a seat was refused, for `reason` (a code: a bounded set).
    pub(crate) fn denial(&self, reason: &'static str) {
        self.denials
            .get_or_create(&[("reason", escape(reason))])
            .inc();
    }

    /// The text exposition, with the gauges read now.
    pub(crate) fn render(&self, engine: &Engine, queues: &Queues) -> String {
        let _rendering = self.rendering.lock();
        self.pool_seats.clear();
        self.pool_in_use.clear();
        self.pool_queued.clear();
        for pool in engine.pools() {
            let labels = [("feature", escape(pool.feature.as_deref().unwrap_or("")))];
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.pool_seats
                .get_or_create(&labels)
                .set(gauge(pool.seats));
            self.pool_in_use
                .get_or_create(&labels)
                .set(gauge(pool.in_use));
            self.pool_queued
                .get_or_create(&labels)
                .set(gauge(queues.len(&pool.feature) as u64));
        }
        self.license_expires.clear();
        for license in engine.license_infos() {
            if let Some(at) = license.expires_at {
                self.license_expires
                    .get_or_create(&[("license", escape(&license.id))])
                    .set(at.unix());
            }
        }
        let mut in_use: std::collections::BTreeMap<String, i64> = Default::default();
        for lease in engine.leases() {
            *in_use
                .entry(pool_label(lease.feature.as_deref()))
                .or_default() += 1;
        }
        let mut queued: std::collections::BTreeMap<String, i64> = Default::default();
        for (pool, len) in queues.lengths() {
            queued.insert(pool_label(pool.as_deref()), len as i64);
        }
        {
            let mut seen = self.pools_seen.lock();
            seen.extend(in_use.keys().cloned());
            seen.extend(queued.keys().cloned());
            for pool in seen.iter() {
                let labels = [("pool", pool.clone())];
                self.leases
                    .get_or_create(&labels)
                    .set(in_use.get(pool).copied().unwrap_or(0));
                self.queued
                    .get_or_create(&labels)
                    .set(queued.get(pool).copied().unwrap_or(0));
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn a_label_value_with_quotes_backslashes_or_newlines_stays_one_value() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("two\nlines"), r"two\nlines");
        assert_eq!(escape("cad"), "cad");
    }
}
