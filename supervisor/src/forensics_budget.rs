//! How many forensic records the supervisor writes: a sniffer retried in a
//! loop must not fill the disk, one record per try. Each container may have
//! `per_container` records per `window_seconds`, and the directory at most
//! `max_total_bytes` (policy `[forensics]`); what is not written is counted
//! (`forensics_skipped` in `status`) and said in the incident's alert, and the
//! first skip of a container in a window is logged as a warning.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sniffguard_common::policy::ForensicsConfig;

/// Directory entries looked at when the directory's size is first taken.
const MAX_ENTRIES_COUNTED: usize = 100_000;

/// The budget's state.
#[derive(Debug, Default)]
pub struct ForensicsBudget {
    state: Mutex<State>,
    written: AtomicU64,
    skipped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Per container: when its window started and how many records it got.
    windows: HashMap<String, (Instant, u32)>,
    /// Bytes in the directory (taken once, then kept up to date).
    bytes: Option<u64>,
}

/// The size of the regular files in `dir` (bounded).
fn directory_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .take(MAX_ENTRIES_COUNTED)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl ForensicsBudget {
    /// Whether a record for `container` may be written now; `Err` says why
    /// not (and the skip is counted).
    pub fn admit(&self, container: &str, config: &ForensicsConfig) -> Result<(), String> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let window = Duration::from_secs(config.window_seconds.max(1));
        let bytes = *state
            .bytes
            .get_or_insert_with(|| directory_bytes(&config.dir));
        let refusal = if bytes >= config.max_total_bytes {
            Some(format!(
                "the forensics directory holds {bytes} bytes, its budget is {}",
                config.max_total_bytes
            ))
        } else {
            let entry = state
                .windows
                .entry(container.to_string())
                .or_insert((now, 0));
            if now.duration_since(entry.0) >= window {
                *entry = (now, 0);
            }
            if entry.1 >= config.per_container {
                Some(format!(
                    "{} records for this container in {} s already",
                    entry.1, config.window_seconds
                ))
            } else {
                entry.1 += 1;
                None
            }
        };
        drop(state);
        match refusal {
            None => Ok(()),
            Some(why) => {
                let before = self.skipped.fetch_add(1, Ordering::Relaxed);
                if before == 0 {
                    tracing::warn!(container, why, "forensic record skipped: budget reached (counted from now on as forensics_skipped)");
                }
                Err(why)
            }
        }
    }

    /// Records that a record of `bytes` was written.
    pub fn wrote(&self, bytes: u64) {
        self.written.fetch_add(1, Ordering::Relaxed);
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(total) = state.bytes.as_mut() {
            *total = total.saturating_add(bytes);
        }
    }

    /// Records written since start-up.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records not written because of the budget, since start-up.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, per_container: u32, max_total_bytes: u64) -> ForensicsConfig {
        ForensicsConfig {
            dir: dir.to_path_buf(),
            per_container,
            window_seconds: 3600,
            max_total_bytes,
        }
    }

    #[test]
    fn a_container_gets_its_share_and_the_directory_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let budget = ForensicsBudget::default();
        let small = config(dir.path(), 2, 1000);
        assert!(budget.admit("a", &small).is_ok());
        assert!(budget.admit("a", &small).is_ok());
        let third = budget.admit("a", &small).unwrap_err();
        assert!(third.contains("2 records"), "{third}");
        assert!(
            budget.admit("b", &small).is_ok(),
            "another container has its own share"
        );
        budget.wrote(1000);
        let full = budget.admit("c", &small).unwrap_err();
        assert!(full.contains("budget is 1000"), "{full}");
        assert_eq!((budget.written(), budget.skipped()), (1, 2));
    }
}
