//! Execs the seccomp path has let through, remembered until the eBPF exec
//! probe reports them, so that one exec is classified once.
//!
//! In an enforced container every exec is decided by the seccomp listener
//! before it runs; its exec event then arrives a few milliseconds later. If the
//! kernel ran the very path the listener checked, the event says nothing new
//! and is dropped unclassified. A different path (a second thread rewrote the
//! string after the check, or an exec of a thread that was not the group
//! leader) is classified as usual: the probe stays the backstop for what the
//! listener could not see. A path the listener checked can still name a file
//! swapped in after the check; such a file runs without a capture socket,
//! which seccomp refuses from the register arguments alone.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the table is emptied (each is a pid and a path).
/// Events for forgotten entries are classified, which is only slower.
const CAPACITY: usize = 16 * 1024;

/// The table of vetted execs, by the calling thread's id.
#[derive(Default)]
pub struct Vetted {
    execs: Mutex<HashMap<u32, Box<[u8]>>>,
}

impl Vetted {
    /// Remembers that thread `tid`'s exec of `path` was let through.
    pub fn record(&self, tid: u32, path: &[u8]) {
        let mut execs = self
            .execs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if execs.len() >= CAPACITY {
            execs.clear();
        }
        execs.insert(tid, path.into());
    }

    /// Whether process `pid`'s exec of `filename` (as the kernel recorded it)
    /// is the one the listener let through. Forgets the entry either way.
    pub fn take(&self, pid: u32, filename: &[u8]) -> bool {
        let mut execs = self
            .execs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        execs
            .remove(&pid)
            .is_some_and(|path| !filename.is_empty() && *path == *filename)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_path_of_the_same_pid_matches_once() {
        let vetted = Vetted::default();
        vetted.record(10, b"/bin/true");
        assert!(!vetted.take(11, b"/bin/true"));
        assert!(vetted.take(10, b"/bin/true"));
        assert!(!vetted.take(10, b"/bin/true"), "an entry is used once");
        vetted.record(10, b"/bin/true");
        assert!(
            !vetted.take(10, b"/tmp/tcpdump"),
            "a rewritten path is classified"
        );
        assert!(!vetted.take(10, b"/bin/true"), "and the entry is gone");
        vetted.record(12, b"");
        assert!(!vetted.take(12, b""));
    }

    #[test]
    fn the_table_is_bounded() {
        let vetted = Vetted::default();
        for pid in 0..(CAPACITY as u32 + 10) {
            vetted.record(pid, b"/bin/true");
        }
        let kept = vetted.execs.lock().map(|e| e.len()).unwrap_or(0);
        assert!(kept <= CAPACITY);
    }
}
