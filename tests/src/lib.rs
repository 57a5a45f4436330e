//! Integration-test harness for sniffguard.
//!
//! The tests in `tests/tests/*.rs` drive the *built* binaries (`sniffguard`,
//! `sniffguard-runtime`, `sniffguard-hook` in `target/debug`) against real OCI runtimes
//! (runc, and crun through `scripts/crun-hybrid`), with a small root filesystem made by
//! `scripts/build-rootfs.sh` (static busybox plus the host's real tcpdump and its libraries).
//!
//! Pieces:
//! - [`require_root`]: every container test starts with `if !require_root() { return; }`.
//! - [`rootfs`]: the shared rootfs, built once per test process.
//! - [`Supervisor`]: a `sniffguard run` process in its own runtime directory, with its
//!   stdout JSON lines (alerts) collected; [`NoSupervisor`] is a runtime directory without
//!   sockets, for fail-open / fail-closed tests. Both implement [`ShimTarget`].
//! - [`Runtime`]: which real runtime the shim execs.
//! - [`Bundle`]: an OCI bundle (config.json from `runc spec`, edited with serde_json).
//! - [`Container`]: a guard with a unique id and its own runtime state dir; runs, creates
//!   and execs through the shim or the plain runtime, and force-deletes on drop.
//!
//! Every wait is bounded; a command that outlives its bound is killed and fails the test.
//! Declare guards in the order supervisor, bundle, container so that they drop in reverse:
//! the container is deleted before its supervisor stops.
//!
//! Each concern is a module of its own (`root`, `locations`, `temp`, `command`, `rootfs`,
//! `supervisor`, `alerts`, `runtime`, `bundle`, `container`, `process`); every public item
//! is re-exported here, so tests name everything `sniffguard_tests::X`. The bounds every
//! wait uses are the constants below.

// A test-support crate: failing loudly with a message is the right way to report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod alerts;
mod bundle;
mod command;
mod container;
mod locations;
mod process;
mod profiles;
mod root;
mod rootfs;
mod runtime;
mod supervisor;
mod temp;

pub use alerts::{describe_alert, evidence_kinds, is_alert_for, str_at};
pub use bundle::{Bundle, CAPTURE_SCRIPT, EXTRA_CAPABILITIES};
pub use command::{contains_ignore_case, run_command, wait_child, CmdOutput};
pub use container::Container;
pub use locations::{
    binary, find_in_path, hook_bin, repo_root, runtime_shim_bin, script, sniffguard_bin,
    strip_ansi, BIN_DIR_ENV,
};
pub use process::{keeper_pid, poll_until, proc_fd_count, proc_rss_kib, HookInterposer};
pub use profiles::{containers_common_profile, CONTAINERS_COMMON_PROFILE};
pub use root::require_root;
pub use rootfs::rootfs;
pub use runtime::Runtime;
pub use supervisor::{
    policy_without_flood_control, AlertStream, DirTarget, NoSupervisor, ShimTarget, Supervisor,
};
pub use temp::{compile_static, helpers_dir, remove_at_exit, temp_dir};

use std::time::Duration;

/// The annotation that names a container's environment (`ci`, `staging`, `production`).
pub const ENVIRONMENT_ANNOTATION: &str = "sniffguard.io/environment";

/// The rule name every sniffer alert carries.
pub const RULE_NAME: &str = "net_sniff_tool_exec";

/// Bound for one container command (run, create, exec) unless a test sets another.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound for the supervisor to open both of its sockets.
pub const SUPERVISOR_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound for the supervisor to exit after SIGTERM before it gets SIGKILL.
pub const SUPERVISOR_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound for an alert to arrive after the action that causes it.
pub const ALERT_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling interval of every bounded wait.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// Bound for `delete -f` when a [`Container`] drops.
pub(crate) const DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long output readers may lag behind a command's exit (a grandchild may hold a pipe).
pub(crate) const READER_GRACE: Duration = Duration::from_secs(5);
