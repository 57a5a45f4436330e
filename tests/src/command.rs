//! Commands with a bound: every child the harness runs is waited for at most a given
//! time, its output collected, and killed (failing the test) when it outlives the bound.

use std::fmt;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{POLL, READER_GRACE};

/// What a bounded command produced.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// What was run (for messages).
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output, lossily decoded.
    pub stdout: String,
    /// Its standard error, lossily decoded.
    pub stderr: String,
}

impl CmdOutput {
    /// True when it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// True when stdout or stderr contains `needle`, ignoring ASCII case (runc reports Go's
    /// "operation not permitted", shells and crun print "Operation not permitted").
    pub fn mentions(&self, needle: &str) -> bool {
        contains_ignore_case(&self.stdout, needle) || contains_ignore_case(&self.stderr, needle)
    }

    /// True when stderr contains `needle`, ignoring ASCII case.
    pub fn stderr_mentions(&self, needle: &str) -> bool {
        contains_ignore_case(&self.stderr, needle)
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "unknown status".to_owned(),
        };
        write!(
            f,
            "`{}` -> {status}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.command, self.stdout, self.stderr
        )
    }
}

/// `haystack` contains `needle`, ignoring ASCII case.
pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// Copies a pipe into a shared buffer until EOF, so partial output survives a timeout.
fn spawn_collector(
    mut pipe: impl Read + Send + 'static,
    buffer: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0_u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buffer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
    })
}

/// Waits for `child` at most `timeout` (polling every 10 ms). `None` on timeout.
pub(crate) fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => return None,
            // Never panic while unwinding (drop paths use this): that would abort.
            Err(_) if thread::panicking() => return None,
            Err(e) => panic!("waitpid on child {}: {e}", child.id()),
        }
    }
}

/// Joins collector threads, giving them at most `grace` after the command exited.
pub(crate) fn join_bounded(handles: Vec<JoinHandle<()>>, grace: Duration) {
    let deadline = Instant::now() + grace;
    for handle in handles {
        while !handle.is_finished() && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
        // Otherwise a grandchild still holds the pipe: leave the thread; it ends with it.
    }
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured, for at most `timeout`.
///
/// # Panics
/// When it cannot be spawned, or outlives `timeout` (it is then killed by its PID, and the
/// message shows what it had printed).
pub fn run_command(cmd: &mut Command, timeout: Duration) -> CmdOutput {
    let command = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn `{command}`: {e}"));
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        spawn_collector(child.stdout.take().expect("piped stdout"), Arc::clone(&out)),
        spawn_collector(child.stderr.take().expect("piped stderr"), Arc::clone(&err)),
    ];
    let status = wait_bounded(&mut child, timeout);
    let timed_out = status.is_none();
    let status = match status {
        Some(status) => status,
        None => {
            // Our own child: Child::kill sends SIGKILL to exactly its PID.
            let _ = child.kill();
            child.wait().expect("wait for a killed child")
        }
    };
    join_bounded(readers, READER_GRACE);
    let output = CmdOutput {
        command,
        status,
        stdout: String::from_utf8_lossy(&out.lock().unwrap_or_else(|p| p.into_inner())).into(),
        stderr: String::from_utf8_lossy(&err.lock().unwrap_or_else(|p| p.into_inner())).into(),
    };
    assert!(
        !timed_out,
        "command timed out after {timeout:?} and was killed:\n{output}"
    );
    output
}

/// Waits for `child` at most `timeout`; `None` on timeout (the child is left running).
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    wait_bounded(child, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_command_captures_and_bounds() {
        let out = run_command(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        let hung = std::panic::catch_unwind(|| {
            run_command(Command::new("sleep").arg("30"), Duration::from_millis(200))
        });
        assert!(hung.is_err(), "a hung command must fail the test");
    }
}
