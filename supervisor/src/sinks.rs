//! Where alerts go: stdout, a file, a webhook, and `events --follow`
//! subscribers, behind flood control.
//!
//! [`AlertSink::raise`] never blocks a decision: incidents go through a bounded
//! queue to one writer task, which completes them (the binary's SHA-256 is
//! computed there), applies flood control, renders them and hands the line to
//! each sink. The webhook has its own bounded queue and thread, so a slow or dead
//! receiver delays nothing but its own deliveries.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::Value;
use sniffguard_common::policy::{AlertFormat, AlertsConfig, Policy, WebhookConfig};
use tokio::sync::{broadcast, mpsc};

use crate::alert::{self, Incident};
use crate::classify;
use crate::metrics::{DecisionLabels, Metrics};

/// Incidents queued before new ones are dropped (and counted).
/// How long an alert waits for its binary's SHA-256: hashing is bounded in
/// bytes (`MAX_HASHED_BYTES`), so only a file system that stops answering
/// takes longer.
const DIGEST_BOUND: Duration = Duration::from_secs(5);

const QUEUE_DEPTH: usize = 4096;

/// Alert lines kept in memory for `sniffguard events` (without `--follow`).
pub const RECENT_ALERTS: usize = 100;

/// Lines buffered per `events --follow` subscriber; a slower one skips ahead.
const SUBSCRIBER_BACKLOG: usize = 1024;

/// Binaries whose digest the writer remembers.
const DIGEST_CACHE: usize = 1024;

/// Longest wait between two webhook attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

enum Control {
    Reopen,
}

/// The handle the rest of the supervisor raises alerts through.
#[derive(Clone)]
pub struct AlertSink {
    queue: mpsc::Sender<Incident>,
    write_failures: Arc<AtomicU64>,
    control: mpsc::UnboundedSender<Control>,
    subscribers: broadcast::Sender<Arc<str>>,
    recent: Recent,
    metrics: Arc<Metrics>,
}

/// The last [`RECENT_ALERTS`] alert lines, oldest first.
type Recent = Arc<Mutex<VecDeque<Arc<str>>>>;

impl AlertSink {
    /// Starts the writer task with the sinks `policy` configures.
    pub fn start(policy: Arc<ArcSwap<Policy>>, metrics: Arc<Metrics>) -> AlertSink {
        let (queue, incidents) = mpsc::channel::<Incident>(QUEUE_DEPTH);
        let (control, controls) = mpsc::unbounded_channel();
        let (subscribers, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
        let config = policy.load().alerts.clone();
        let write_failures = Arc::new(AtomicU64::new(0));
        let recent = Recent::default();
        let writer = Writer {
            write_failures: write_failures.clone(),
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file: config.file.as_ref().and_then(open_append),
            webhook: config
                .webhook
                .as_ref()
                .map(|hook| Webhook::start(hook.clone(), metrics.clone())),
            flood: Flood::default(),
            digests: HashMap::new(),
            subscribers: subscribers.clone(),
            recent: recent.clone(),
            metrics: metrics.clone(),
            policy,
            config,
        };
        tokio::spawn(writer.run(incidents, controls));
        AlertSink {
            queue,
            write_failures,
            control,
            subscribers,
            recent,
            metrics,
        }
    }

    /// Queues an incident; never waits. A full queue drops it and counts it.
    pub fn raise(&self, incident: Incident) {
        if self.queue.try_send(incident).is_err() {
            self.metrics.alerts_dropped.inc();
            tracing::warn!("alert queue full; alert dropped");
        }
    }

    /// Alerts dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.metrics.alerts_dropped.get()
    }

    /// Alert lines a sink could not write (stdout closed, the alert file's disk
    /// full); the other sinks still got them.
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    /// Reopens the alert file (after logrotate moved it).
    pub fn reopen(&self) {
        let _ = self.control.send(Control::Reopen);
    }

    /// How many `events --follow` subscribers are connected.
    pub fn subscribers(&self) -> usize {
        self.subscribers.receiver_count()
    }

    /// A stream of every alert line from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.subscribers.subscribe()
    }

    /// The alert lines raised last (at most [`RECENT_ALERTS`]), oldest first.
    pub fn recent(&self) -> Vec<Arc<str>> {
        self.recent
            .lock()
            .map(|recent| recent.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn open_append(path: &PathBuf) -> Option<File> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => Some(file),
        Err(err) => {
            tracing::error!(path = %path.display(), %err, "cannot open the alert file");
            None
        }
    }
}

struct Writer {
    write_failures: Arc<AtomicU64>,
    host: String,
    file: Option<File>,
    webhook: Option<Webhook>,
    flood: Flood,
    digests: HashMap<(u64, u64, u64, i64, i64), String>,
    subscribers: broadcast::Sender<Arc<str>>,
    recent: Recent,
    metrics: Arc<Metrics>,
    policy: Arc<ArcSwap<Policy>>,
    config: AlertsConfig,
}

impl Writer {
    async fn run(
        mut self,
        mut incidents: mpsc::Receiver<Incident>,
        mut controls: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                incident = incidents.recv() => match incident {
                    Some(incident) => self.handle(incident).await,
                    None => break,
                },
                Some(Control::Reopen) = controls.recv() => {
                    if let Some(path) = &self.config.file {
                        self.file = open_append(path);
                        tracing::info!(path = %path.display(), "alert file reopened");
                    }
                }
                _ = tick.tick() => {
                    for summary in self.flood.expired(Instant::now(), self.window()) {
                        self.emit(summary);
                    }
                }
            }
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.config.flood.interval_seconds.max(1))
    }

    async fn handle(&mut self, mut incident: Incident) {
        if let Some(file) = incident.file.take() {
            if incident.process.sha256.is_none() {
                incident.process.sha256 = self.digest(file).await;
            }
        }
        let policy = self.policy.load();
        let doc = alert::document(&incident, &self.host, &policy);
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                environment: incident.environment.clone(),
                action: doc["action"].as_str().unwrap_or_default().to_string(),
                evidence: doc
                    .pointer("/evidence/0/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("none")
                    .to_string(),
            })
            .inc();
        let key = FloodKey {
            container: incident.container_id.clone(),
            exe: incident.process.exe.clone().unwrap_or_default(),
            action: doc["action"].as_str().unwrap_or_default().to_string(),
        };
        let burst = self.config.flood.burst.max(1);
        match self
            .flood
            .admit(key, doc, Instant::now(), self.window(), burst)
        {
            Some(doc) => self.emit(doc),
            None => {
                self.metrics.alerts_suppressed.inc();
            }
        }
    }

    /// SHA-256 of an alert's binary, cached by identity: a retry loop of
    /// 10,000 attempts hashes tcpdump once, not 10,000 times.
    async fn digest(&mut self, file: File) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().ok()?;
        let key = (
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
        );
        if let Some(digest) = self.digests.get(&key) {
            return Some(digest.clone());
        }
        // Off the alert path and bounded: a file whose file system stops
        // answering would otherwise hold this task, and every alert after it.
        // The blocking thread is left to its read (it cannot be cancelled).
        let hashing = tokio::task::spawn_blocking(move || classify::sha256_hex(&file));
        let digest = match tokio::time::timeout(DIGEST_BOUND, hashing).await {
            Ok(joined) => joined.ok().flatten()?,
            Err(_) => {
                tracing::warn!(
                    "an alert's binary could not be hashed within {DIGEST_BOUND:?}: alerted without its SHA-256"
                );
                return None;
            }
        };
        if self.digests.len() >= DIGEST_CACHE {
            self.digests.clear();
        }
        self.digests.insert(key, digest.clone());
        Some(digest)
    }

    /// Renders and writes one alert document to every sink.
    fn emit(&mut self, doc: Value) {
        let rendered = match self.config.format {
            AlertFormat::Sniffguard => doc,
            AlertFormat::Falco => alert::falco(&doc),
        };
        let mut line = rendered.to_string();
        line.push('\n');
        if self.config.stdout {
            let mut out = std::io::stdout().lock();
            if let Err(err) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                let failures = self.write_failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(%err, failures, "cannot write an alert to stdout");
            }
        }
        if let Some(file) = self.file.as_mut() {
            if let Err(err) = file.write_all(line.as_bytes()) {
                // A full disk must not stop decisions: count, report and go on.
                let failures = self.write_failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(%err, failures, "cannot append an alert to the alert file");
            }
        }
        if let Some(webhook) = &self.webhook {
            webhook.send(line.trim_end().to_string());
        }
        let line: Arc<str> = Arc::from(line.trim_end());
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT_ALERTS {
                recent.pop_front();
            }
            recent.push_back(line.clone());
        }
        let _ = self.subscribers.send(line);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FloodKey {
    container: String,
    exe: String,
    action: String,
}

#[derive(Debug)]
struct FloodState {
    window_start: Instant,
    emitted: u32,
    suppressed: u64,
    last: Option<Value>,
}

/// Per-key windows: the first `burst` alerts pass; the rest are counted and
/// the last one is written with `"count"` when the window ends.
#[derive(Debug, Default)]
struct Flood {
    keys: HashMap<FloodKey, FloodState>,
}

impl Flood {
    fn admit(
        &mut self,
        key: FloodKey,
        doc: Value,
        now: Instant,
        window: Duration,
        burst: u32,
    ) -> Option<Value> {
        let state = self.keys.entry(key).or_insert(FloodState {
            window_start: now,
            emitted: 0,
            suppressed: 0,
            last: None,
        });
        if now.duration_since(state.window_start) >= window && state.suppressed == 0 {
            state.window_start = now;
            state.emitted = 0;
        }
        if state.emitted < burst {
            state.emitted += 1;
            return Some(doc);
        }
        state.suppressed += 1;
        state.last = Some(doc);
        None
    }

    /// Summaries of windows that ended with suppressed alerts; forgets idle keys.
    fn expired(&mut self, now: Instant, window: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        self.keys.retain(|_, state| {
            if now.duration_since(state.window_start) < window {
                return true;
            }
            if let Some(mut doc) = state.last.take() {
                if let Value::Object(map) = &mut doc {
                    map.insert("count".into(), Value::from(state.suppressed));
                    map.insert(
                        "summary_of_window_seconds".into(),
                        Value::from(window.as_secs()),
                    );
                }
                out.push(doc);
            }
            // A key that was busy keeps its state (a new window starts now);
            // an idle one is dropped.
            if state.suppressed > 0 {
                state.window_start = now;
                state.emitted = 0;
                state.suppressed = 0;
                true
            } else {
                false
            }
        });
        out
    }
}

/// Webhook delivery on a thread of its own.
struct Webhook {
    queue: std_mpsc::SyncSender<String>,
    metrics: Arc<Metrics>,
}

impl Webhook {
    fn start(config: WebhookConfig, metrics: Arc<Metrics>) -> Webhook {
        let (queue, lines) = std_mpsc::sync_channel::<String>(config.queue.max(1));
        let failures = metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("sniffguard-webhook".into())
            .spawn(move || deliver_all(&config, &lines, &failures));
        if let Err(err) = spawned {
            tracing::error!(%err, "cannot start the webhook thread; alerts will not be posted");
        }
        Webhook { queue, metrics }
    }

    fn send(&self, line: String) {
        if self.queue.try_send(line).is_err() {
            self.metrics.webhook_failures.inc();
            tracing::warn!("webhook queue full; alert not posted");
        }
    }
}

fn deliver_all(config: &WebhookConfig, lines: &std_mpsc::Receiver<String>, metrics: &Metrics) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
        .http_status_as_error(true)
        .build()
        .into();
    for line in lines {
        let mut backoff = Duration::from_millis(100);
        let mut delivered = false;
        for attempt in 1..=config.attempts.max(1) {
            match agent
                .post(&config.url)
                .header("Content-Type", "application/json")
                .send(line.as_bytes())
            {
                Ok(_) => {
                    delivered = true;
                    break;
                }
                Err(err) => {
                    tracing::debug!(attempt, %err, "webhook delivery failed");
                    if attempt < config.attempts {
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        if !delivered {
            metrics.webhook_failures.inc();
            tracing::warn!(url = config.url, "webhook delivery given up");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FloodKey {
        FloodKey {
            container: "c".into(),
            exe: "/usr/bin/tcpdump".into(),
            action: "denied".into(),
        }
    }

    #[test]
    fn a_retry_loop_gives_a_bounded_number_of_alerts_with_a_count() {
        let mut flood = Flood::default();
        let start = Instant::now();
        let window = Duration::from_secs(60);
        let passed = (0..10_000)
            .filter(|i| {
                flood
                    .admit(key(), serde_json::json!({ "n": i }), start, window, 5)
                    .is_some()
            })
            .count();
        assert_eq!(passed, 5);
        assert!(flood
            .expired(start + Duration::from_secs(1), window)
            .is_empty());
        let summaries = flood.expired(start + window, window);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0]["count"], 9_995);
        assert_eq!(summaries[0]["n"], 9_999);
        // The next window starts fresh, and an idle key is forgotten.
        assert!(flood
            .admit(key(), Value::Null, start + window, window, 5)
            .is_some());
        assert!(flood.expired(start + window * 3, window).is_empty());
        assert!(flood.keys.is_empty());
    }
}
