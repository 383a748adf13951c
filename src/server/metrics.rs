//! The server's Prometheus metrics (`GET /metrics`): requests by route
//! and status, leases in use per pool, and the length of each pool's
//! queue.

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

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    leases: Family<PoolLabels, Gauge>,
    queued: Family<PoolLabels, Gauge>,
    /// Every pool a gauge was set for: a pool whose last lease ended
    /// reads 0 rather than its last count.
    pools_seen: Mutex<BTreeSet<String>>,
}

/// A pool's label: the feature, or `license` for the license-level pool.
fn pool_label(pool: Option<&str>) -> String {
    pool.map_or_else(|| "license".to_owned(), |f| format!("feature:{f}"))
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
        Metrics {
            registry,
            requests,
            leases,
            queued,
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

    /// The text exposition, with the gauges read now.
    pub(crate) fn render(&self, engine: &Engine, queues: &Queues) -> String {
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
