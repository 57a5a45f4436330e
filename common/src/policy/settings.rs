//! Settings only the supervisor acts on: where alerts go and how they are
//! rendered, the webhook, flood control, the Prometheus endpoint and forensic
//! records.
//!
//! They live in `common` although neither the shim nor the hook uses them,
//! because all three read the one policy file and each refuses unknown keys:
//! a shim that did not know the `[alerts]` table would refuse every policy
//! that has one, and a shim that skipped it would accept a typo there that the
//! supervisor refuses. One schema parsed by one function means the shim,
//! the hook, the supervisor and `check-config` agree on whether a file is
//! valid, and say so with the same words.

use serde::Deserialize;

/// How alerts are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// sniffguard's own document.
    #[default]
    Sniffguard,
    /// Falco's JSON output (for falcosidekick).
    Falco,
}

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Write alerts to stdout.
    pub stdout: bool,
    /// Append alerts to this file (reopened on SIGHUP, for logrotate).
    pub file: Option<std::path::PathBuf>,
    /// Rendering for stdout, the file and the webhook.
    pub format: AlertFormat,
    /// POST every alert to an HTTP endpoint.
    pub webhook: Option<WebhookConfig>,
    /// Flood control.
    pub flood: FloodConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            // stdout is where a container platform collects a daemon's output.
            stdout: true,
            file: None,
            format: AlertFormat::Sniffguard,
            webhook: None,
            flood: FloodConfig::default(),
        }
    }
}

/// An HTTP endpoint for alerts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://host:port/path` (plain HTTP: put a local forwarder in front for TLS).
    pub url: String,
    /// Per-request timeout.
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// Alerts queued for delivery before new ones are dropped (and counted).
    #[serde(default = "default_webhook_queue")]
    pub queue: usize,
    /// Delivery attempts per alert, with exponential backoff between them.
    #[serde(default = "default_webhook_attempts")]
    pub attempts: u32,
}

fn default_webhook_timeout_ms() -> u64 {
    // Long enough for a loaded collector on the node, short enough that a dead
    // one does not hold the queue for long.
    2000
}
fn default_webhook_queue() -> usize {
    1024
}
fn default_webhook_attempts() -> u32 {
    5
}

/// Flood control: per container and program, the first `burst` alerts of an
/// `interval_seconds` window are written; later ones are counted and written as
/// one alert carrying the count when the window ends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// Alerts written at once per key and window.
    pub burst: u32,
    /// Window length.
    pub interval_seconds: u64,
}

impl Default for FloodConfig {
    fn default() -> Self {
        // Five alerts show a pattern; one summary a minute keeps a loop that
        // retries 10,000 times from drowning the sink.
        FloodConfig {
            burst: 5,
            interval_seconds: 60,
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `address:port` to serve `/metrics` on; off when absent.
    pub listen: Option<String>,
}

/// Where forensic records go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForensicsConfig {
    /// Directory of per-incident JSON records.
    pub dir: std::path::PathBuf,
    /// Records one container may get per [`ForensicsConfig::window_seconds`]:
    /// a sniffer retried in a loop must not fill the disk.
    pub per_container: u32,
    /// The window of [`ForensicsConfig::per_container`].
    pub window_seconds: u64,
    /// Bytes the directory may hold before no more records are written.
    pub max_total_bytes: u64,
}

impl Default for ForensicsConfig {
    fn default() -> Self {
        ForensicsConfig {
            // 10 an hour is 240 a day per container retrying all day (a few
            // megabytes), well under the directory's 256 MiB.
            per_container: 10,
            window_seconds: 3600,
            max_total_bytes: 256 * 1024 * 1024,
            dir: std::path::PathBuf::from("/var/lib/sniffguard/forensics"),
        }
    }
}
