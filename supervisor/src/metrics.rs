//! Prometheus metrics, served on `/metrics` when the policy gives an address.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a decision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The environment.
    pub environment: String,
    /// What was done (`denied`, `allowed`, `killed`, …).
    pub action: String,
    /// The strongest evidence kind.
    pub evidence: String,
}

/// Every metric the supervisor keeps.
pub struct Metrics {
    /// Sniffer decisions by environment, action and evidence.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Seccomp decision latency (every notification, sniffer or not).
    pub decision_latency: Histogram,
    /// Ring-buffer reservations that failed in the kernel.
    pub ringbuf_drops: Gauge<u64, AtomicU64>,
    /// Containers attached.
    pub attached_containers: Gauge,
    /// Containers that started without supervision (fail open).
    pub fail_open_starts: Gauge<u64, AtomicU64>,
    /// 1 while a part of the supervisor is down (see [`crate::health`]).
    pub degraded: Gauge,
    /// Webhook deliveries given up.
    pub webhook_failures: Counter,
    /// Alerts folded into a later one by flood control.
    pub alerts_suppressed: Counter,
    /// Alerts lost because the queue was full.
    pub alerts_dropped: Counter,
    /// Alert lines a sink could not write (the alert file's disk full, stdout
    /// closed); the alert writer counts them, [`Metrics::set_alert_write_failures`]
    /// copies its count here at scrape time.
    pub alert_write_failures: Counter,
    registry: Registry,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("sniffguard");
        let decisions = Family::<DecisionLabels, Counter>::default();
        // 1 µs … ~16 ms: the range where a seccomp answer is useful (runc's
        // entrypoint retry starts at a few milliseconds), finer around the
        // figures an operator checks (p50 ≤ 15 µs, p99 ≤ 150 µs).
        let decision_latency = Histogram::new([
            1e-6, 2e-6, 5e-6, 10e-6, 15e-6, 20e-6, 30e-6, 50e-6, 75e-6, 100e-6, 150e-6, 200e-6,
            500e-6, 1e-3, 2e-3, 5e-3, 16e-3,
        ]);
        let ringbuf_drops = Gauge::<u64, AtomicU64>::default();
        let attached_containers = Gauge::default();
        let fail_open_starts = Gauge::<u64, AtomicU64>::default();
        let degraded = Gauge::default();
        let webhook_failures = Counter::default();
        let alerts_suppressed = Counter::default();
        let alerts_dropped = Counter::default();
        let alert_write_failures = Counter::default();
        registry.register("decisions", "Sniffer decisions", decisions.clone());
        registry.register(
            "decision_latency_seconds",
            "Time from a seccomp notification to its answer",
            decision_latency.clone(),
        );
        registry.register(
            "ringbuf_drops",
            "eBPF events lost to a full ring buffer",
            ringbuf_drops.clone(),
        );
        registry.register(
            "attached_containers",
            "Containers attached to the supervisor",
            attached_containers.clone(),
        );
        registry.register(
            "fail_open_starts",
            "Containers started without supervision because the supervisor was unreachable",
            fail_open_starts.clone(),
        );
        registry.register(
            "degraded",
            "1 while a part of the supervisor is down (eBPF probes, ring reader): `sniffguard status` says which",
            degraded.clone(),
        );
        registry.register(
            "webhook_failures",
            "Alerts the webhook could not deliver",
            webhook_failures.clone(),
        );
        registry.register(
            "alerts_suppressed",
            "Alerts folded by flood control",
            alerts_suppressed.clone(),
        );
        registry.register(
            "alerts_dropped",
            "Alerts lost to a full queue",
            alerts_dropped.clone(),
        );
        registry.register(
            "alert_write_failures",
            "Alert lines a sink (the alert file, stdout) could not write",
            alert_write_failures.clone(),
        );
        Arc::new(Metrics {
            decisions,
            decision_latency,
            ringbuf_drops,
            attached_containers,
            fail_open_starts,
            degraded,
            webhook_failures,
            alerts_suppressed,
            alerts_dropped,
            alert_write_failures,
            registry,
        })
    }

    /// Brings `alert_write_failures` up to `total`, the count the alert writer
    /// keeps ([`crate::sinks::AlertSink::write_failures`]). The counter never
    /// goes down, whatever order concurrent scrapes call this in.
    pub fn set_alert_write_failures(&self, total: u64) {
        self.alert_write_failures
            .inner()
            .fetch_max(total, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%err, "cannot encode metrics");
        }
        out
    }
}

/// Serves `/metrics` on `address` from a thread of its own; `refresh` updates
/// the gauges read at scrape time.
pub fn serve(
    address: &str,
    metrics: Arc<Metrics>,
    refresh: impl Fn(&Metrics) + Send + 'static,
) -> std::io::Result<()> {
    let server = tiny_http::Server::http(address).map_err(std::io::Error::other)?;
    tracing::info!(address, "metrics on /metrics");
    std::thread::Builder::new()
        .name("sniffguard-metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    refresh(&metrics);
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                    );
                    let mut response = tiny_http::Response::from_string(metrics.render());
                    if let Ok(header) = header {
                        response.add_header(header);
                    }
                    response
                } else {
                    tiny_http::Response::from_string("not found; try /metrics\n")
                        .with_status_code(404)
                };
                let _ = request.respond(response);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_write_failures_are_exported_as_a_counter() {
        let metrics = Metrics::new();
        assert!(metrics
            .render()
            .contains("sniffguard_alert_write_failures_total 0\n"));
        metrics.set_alert_write_failures(3);
        // A stale (lower) total never takes the counter back.
        metrics.set_alert_write_failures(2);
        let text = metrics.render();
        assert!(
            text.contains("# TYPE sniffguard_alert_write_failures counter\n"),
            "{text}"
        );
        assert!(
            text.contains("sniffguard_alert_write_failures_total 3\n"),
            "{text}"
        );
    }
}
