//! Process facts and interposition for the fault, load and privilege tests: fd counts,
//! resident memory, the fd keeper's pid, bounded polling, and a hook stand-in that holds
//! `create` between two steps.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::locations::hook_bin;
use crate::temp::temp_dir;
use crate::POLL;

/// Number of open fds of process `pid` (`/proc/PID/fd`); 0 when it is gone.
pub fn proc_fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Resident memory of process `pid` in KiB (`VmRSS`); 0 when it is gone.
pub fn proc_rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Polls `check` every 10 ms until it is true or `timeout` has passed; returns its last
/// value.
pub fn poll_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(POLL);
    }
    check()
}

/// The PID of the fd keeper serving `runtime_dir` (the process listening on
/// `keeper.sock`, by `SO_PEERCRED`), or `None` when nobody listens there.
pub fn keeper_pid(runtime_dir: &Path) -> Option<u32> {
    use std::os::fd::AsFd;
    let stream = UnixStream::connect(runtime_dir.join("keeper.sock")).ok()?;
    let cred =
        nix::sys::socket::getsockopt(&stream.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
            .ok()?;
    u32::try_from(cred.pid()).ok()
}

/// An OCI hook stand-in that runs the real `sniffguard-hook` and then, at
/// `create-runtime`, records how long the real hook took (`DIR/timings`, one line of
/// nanoseconds per run) and, when armed, announces itself (`DIR/registered.ID`) and
/// waits for `DIR/go` (bounded: 60 s) before it returns to the runtime. Give its
/// [`HookInterposer::path`] to the shim as `SNIFFGUARD_HOOK`.
///
/// It lets a test act between two steps of `create`: after the container is
/// registered, before the runtime goes on to send the seccomp fd.
pub struct HookInterposer {
    dir: TempDir,
}

impl HookInterposer {
    /// A stand-in that only measures (`hold == false`) or also holds every
    /// `create-runtime` until [`HookInterposer::release`] (`hold == true`).
    pub fn new(hold: bool) -> HookInterposer {
        let dir = temp_dir("sniffguard-hookwrap-");
        // Traversable by the runtime's hook process (root, but keep it obvious).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod the interposer dir");
        let d = dir.path().display();
        let real = hook_bin();
        let hold_part = if hold {
            format!(
                "  id=$(sed -n 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/p' {d}/stdin.$$ | head -n1)\n\
                 \x20 touch \"{d}/registered.$id\"\n\
                 \x20 i=0; while [ ! -e {d}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n"
            )
        } else {
            String::new()
        };
        let script = format!(
            "#!/bin/sh\n\
             # sniffguard test stand-in for the OCI hook (see HookInterposer).\n\
             cat > {d}/stdin.$$\n\
             start=$(date +%s%N)\n\
             {real} \"$@\" < {d}/stdin.$$\n\
             rc=$?\n\
             end=$(date +%s%N)\n\
             case \"$*\" in *create-runtime*)\n\
             \x20 echo $((end - start)) >> {d}/timings\n\
             {hold_part}\
             ;; esac\n\
             rm -f {d}/stdin.$$\n\
             exit $rc\n",
            real = real.display(),
        );
        let path = dir.path().join("hook");
        fs::write(&path, script).expect("write the hook stand-in");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .expect("chmod the hook stand-in");
        HookInterposer { dir }
    }

    /// The stand-in's path (for `SNIFFGUARD_HOOK`).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("hook")
    }

    /// True once the real hook has registered container `id` (held runs only).
    pub fn registered(&self, id: &str) -> bool {
        self.dir.path().join(format!("registered.{id}")).exists()
    }

    /// Lets every held (and every later) `create-runtime` return.
    pub fn release(&self) {
        let _ = fs::write(self.dir.path().join("go"), b"");
    }

    /// How long each real `create-runtime` hook run took, in order of completion.
    pub fn timings(&self) -> Vec<Duration> {
        fs::read_to_string(self.dir.path().join("timings"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .map(Duration::from_nanos)
            .collect()
    }
}

impl Drop for HookInterposer {
    fn drop(&mut self) {
        // Never leave a runtime waiting on a hook that waits on us.
        self.release();
    }
}
