//! Podman 4.3 (Debian 12) with sniffguard, three ways, each with the files that ship in
//! `config/` (only their host paths are pointed at the test's supervisor):
//!
//! - the runtime shim as a runtime: the `config/podman/containers.conf` entry
//!   (`podman --runtime sniffguard`) and a plain path (`podman --runtime /path/sniffguard-runc`);
//! - the seccomp profile `config/podman/seccomp-staging.json` (`--security-opt seccomp=`),
//!   enforcement with the real runc and no shim (and, with `listenerMetadata` set to
//!   `ci`, audit through the same notifications);
//! - the hooks.d files of `config/podman/hooks.d/` (`--hooks-dir`), detection without the shim.
//!
//! Podman runs privately (`wiring/podman.rs`): its own containers.conf and storage.conf,
//! storage and run state under a temporary directory, containers from a copy of the test
//! rootfs, and a guard that removes what a failed test left.
//!
//! Needs root, podman, runc, jq, and the built workspace.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod wiring;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sniffguard_tests::{
    find_in_path, hook_bin, is_alert_for, repo_root, require_root, run_command, str_at, temp_dir,
    CmdOutput, Runtime, ShimTarget, Supervisor, ALERT_TIMEOUT, CAPTURE_SCRIPT,
    ENVIRONMENT_ANNOTATION,
};
use wiring::podman::{HooksDirs, Podman};
use wiring::{shipped, ShimWrapper};

/// podman.rs's containers: the environment annotation and NET_RAW plus NET_ADMIN.
impl Podman {
    /// `podman GLOBAL... run --rm` of `sh -c SCRIPT` in an `environment` container with
    /// NET_RAW and NET_ADMIN (so that an allowed tcpdump really captures), plus `extra`
    /// run options. Returns the container id (from `--cidfile`) and the output.
    fn run(
        &self,
        global: &[&str],
        extra: &[&str],
        environment: &str,
        script: &str,
    ) -> (String, CmdOutput) {
        let annotation = format!("{ENVIRONMENT_ANNOTATION}={environment}");
        let mut options = vec![
            "--annotation",
            &annotation,
            "--cap-add",
            "NET_RAW,NET_ADMIN",
        ];
        options.extend_from_slice(extra);
        self.run_container(global, &options, script)
    }
}

/// The first alert about container `id` that matches `pred`, or a panic with the
/// supervisor's output.
fn wait_alert(sup: &Supervisor, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    sup.wait_alert(|a| is_alert_for(a, id) && pred(a), ALERT_TIMEOUT)
        .unwrap_or_else(|| {
            panic!(
                "no {what} alert for container {id} within {ALERT_TIMEOUT:?}\n{}",
                sup.report()
            )
        })
}

/// Checks what a staging container reports and the alert for its refused tcpdump.
fn assert_staging_denied(sup: &Supervisor, id: &str, out: &CmdOutput, registered: bool) {
    assert!(out.success(), "{out}\n{}", sup.report());
    for needle in ["started", "tcpdump_rc=126", "ls_rc=0"] {
        assert!(out.stdout.contains(needle), "no {needle:?}: {out}");
    }
    assert!(out.mentions("Operation not permitted"), "{out}");
    let alert = wait_alert(sup, id, "denied", |a| {
        str_at(a, "/action") == Some("denied")
            && str_at(a, "/process/exe") == Some("/usr/bin/tcpdump")
    });
    assert_eq!(str_at(&alert, "/environment"), Some("staging"), "{alert}");
    assert_eq!(str_at(&alert, "/mode"), Some("enforce"), "{alert}");
    assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
    assert_eq!(str_at(&alert, "/syscall"), Some("execve"), "{alert}");
    assert_eq!(
        alert.pointer("/container/registered"),
        Some(&json!(registered)),
        "{alert}"
    );
}

/// A script for a staging container: a benign exec before and after the refused one.
const STAGING_SCRIPT: &str =
    "echo started; tcpdump -D; echo tcpdump_rc=$?; ls / >/dev/null; echo ls_rc=$?";

/// Checks that a ci container's tcpdump captured and was alerted by the exec probe.
fn assert_ci_alerted(sup: &Supervisor, id: &str, out: &CmdOutput) {
    assert!(out.success(), "{out}\n{}", sup.report());
    assert!(
        out.stdout.contains("tcpdump_rc=0") && out.stdout.contains("1 packet captured"),
        "tcpdump did not capture in the ci container: {out}"
    );
    let alert = wait_alert(sup, id, "allowed tcpdump", |a| {
        str_at(a, "/process/exe") == Some("/usr/bin/tcpdump")
    });
    assert_eq!(str_at(&alert, "/action"), Some("allowed"), "{alert}");
    assert_eq!(str_at(&alert, "/mechanism"), Some("exec_probe"), "{alert}");
    assert_eq!(str_at(&alert, "/environment"), Some("ci"), "{alert}");
    assert_eq!(str_at(&alert, "/mode"), Some("audit"), "{alert}");
    assert_eq!(
        alert.pointer("/container/registered"),
        Some(&json!(true)),
        "{alert}"
    );
}

/// Polls `status` until container `id` is no longer registered (the poststop hook ran).
fn assert_deregistered(sup: &Supervisor, id: &str) {
    let deadline = Instant::now() + ALERT_TIMEOUT;
    loop {
        let status = sup.status();
        let listed = status["containers"]
            .as_array()
            .is_some_and(|list| list.iter().any(|c| c["id"] == id));
        if !listed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} still registered after it was removed: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn runtime_entry_staging_tcpdump_is_denied() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let wrapper = ShimWrapper::new(&sup);
    let podman = Podman::new(Some(&wrapper), None);
    let (id, out) = podman.run(&["--runtime", "sniffguard"], &[], "staging", STAGING_SCRIPT);
    assert_staging_denied(&sup, &id, &out, true);
    let alert = sup
        .wait_alert(|a| is_alert_for(a, &id), ALERT_TIMEOUT)
        .unwrap();
    assert_eq!(
        str_at(&alert, "/container/runtime"),
        Some("runc"),
        "{alert}"
    );
    assert_deregistered(&sup, &id);
}

#[test]
fn runtime_path_ci_tcpdump_is_alerted() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let wrapper = ShimWrapper::new(&sup);
    let podman = Podman::new(Some(&wrapper), None);
    let runtime = wrapper.path().display().to_string();
    let (id, out) = podman.run(&["--runtime", &runtime], &[], "ci", CAPTURE_SCRIPT);
    assert_ci_alerted(&sup, &id, &out);
    assert_deregistered(&sup, &id);
}

#[test]
fn seccomp_profile_staging_tcpdump_is_denied_without_the_shim() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let podman = Podman::new(None, None);
    let mut profile: Value = serde_json::from_str(&shipped("config/podman/seccomp-staging.json"))
        .expect("config/podman/seccomp-staging.json is JSON");
    assert_eq!(profile["listenerPath"], "/run/sniffguard/seccomp.sock");
    // containers-common's socket rules travel to the supervisor.
    assert!(
        profile["listenerMetadata"]
            .as_str()
            .is_some_and(|m| m.starts_with("staging;socket=")),
        "{}",
        profile["listenerMetadata"]
    );
    profile["listenerPath"] = json!(sup.runtime_dir().join("seccomp.sock"));
    let path = podman.path("seccomp.json");
    fs::write(&path, profile.to_string()).expect("write the profile");

    let runc = Runtime::Runc.path().display().to_string();
    let opt = format!("seccomp={}", path.display());
    let (id, out) = podman.run(
        &["--runtime", &runc],
        &["--security-opt", &opt],
        "staging",
        STAGING_SCRIPT,
    );
    // No hook registers the container: the decision rests on what the runtime sent
    // with the notify fd (its state and listenerMetadata).
    assert_staging_denied(&sup, &id, &out, false);
}

/// The shipped profile with `listenerMetadata` set to an audit environment: the sniffer
/// runs and the supervisor alerts from the notification (each exec pays a round trip;
/// the hooks.d files observe audit containers without that cost).
#[test]
fn seccomp_profile_ci_tcpdump_is_alerted_without_the_shim() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let podman = Podman::new(None, None);
    let mut profile: Value =
        serde_json::from_str(&shipped("config/podman/seccomp-staging.json")).unwrap();
    profile["listenerPath"] = json!(sup.runtime_dir().join("seccomp.sock"));
    let metadata = profile["listenerMetadata"].as_str().unwrap_or_default();
    let ci = metadata.replacen("staging", "ci", 1);
    assert!(ci.starts_with("ci;"), "{metadata}");
    profile["listenerMetadata"] = json!(ci);
    let path = podman.path("seccomp-ci.json");
    fs::write(&path, profile.to_string()).expect("write the profile");
    let runc = Runtime::Runc.path().display().to_string();
    let opt = format!("seccomp={}", path.display());
    let (id, out) = podman.run(
        &["--runtime", &runc],
        &["--security-opt", &opt],
        "ci",
        CAPTURE_SCRIPT,
    );
    assert!(out.success(), "{out}\n{}", sup.report());
    assert!(
        out.stdout.contains("tcpdump_rc=0") && out.stdout.contains("1 packet captured"),
        "tcpdump did not capture: {out}"
    );
    let alert = wait_alert(&sup, &id, "allowed tcpdump", |a| {
        str_at(a, "/process/exe") == Some("/usr/bin/tcpdump")
    });
    assert_eq!(str_at(&alert, "/action"), Some("allowed"), "{alert}");
    assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
    assert_eq!(str_at(&alert, "/environment"), Some("ci"), "{alert}");
    assert_eq!(
        alert.pointer("/container/registered"),
        Some(&json!(false)),
        "{alert}"
    );
}

#[test]
fn hooks_dir_ci_tcpdump_is_alerted_without_the_shim() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let hooks = temp_dir("sniffguard-hooks-");
    let shipped_dir = repo_root().join("config/podman/hooks.d");
    let mut installed = 0;
    for entry in fs::read_dir(&shipped_dir).expect("read config/podman/hooks.d") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let mut hook: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(hook["version"], "1.0.0", "{}", path.display());
        assert_eq!(hook["hook"]["path"], "/usr/local/bin/sniffguard-hook");
        hook["hook"]["path"] = json!(hook_bin());
        let args = hook["hook"]["args"].as_array_mut().expect("hook.args");
        let at = args
            .iter()
            .position(|a| a == "--runtime-dir")
            .expect("--runtime-dir in hook.args");
        args[at + 1] = json!(sup.runtime_dir());
        fs::write(
            hooks.path().join(path.file_name().unwrap()),
            hook.to_string(),
        )
        .unwrap();
        installed += 1;
    }
    assert!(installed >= 2, "no hooks in {}", shipped_dir.display());
    let podman = Podman::new(None, Some(hooks.path()));
    let runc = Runtime::Runc.path().display().to_string();
    let (id, out) = podman.run(&["--runtime", &runc], &[], "ci", CAPTURE_SCRIPT);
    assert_ci_alerted(&sup, &id, &out);
    assert_deregistered(&sup, &id);
}

/// Where Podman as installed reads OCI hooks (containers-common's built-in `hooks_dir`).
const ENGINE_HOOKS_DIR: &str = "/usr/share/containers/oci/hooks.d";

/// Where administrators expect hooks, read only with `config/podman/hooks-dirs.conf`.
const ETC_HOOKS_DIR: &str = "/etc/containers/oci/hooks.d";

/// The annotation that selects a test's own containers for the hooks it installs.
const TEST_RUN_ANNOTATION: &str = "sniffguard-test.io/run";

/// Serialises the tests that install hooks on the host, so that one never removes a
/// hooks directory another has just written to.
static HOST_HOOKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The shipped hooks.d files installed in a host directory that Podman reads on its own,
/// changed the way the walk-through says (the hook's path, `/run/sniffguard` replaced by
/// the supervisor's runtime directory in every file) plus one more `when` condition:
/// [`TEST_RUN_ANNOTATION`] must carry this test's unique value, so that no other
/// container on the host gets these hooks. File names are unique too. On drop (a failed
/// test too) the files are removed, and the directory if the test created them.
struct HostHooks {
    files: Vec<std::path::PathBuf>,
    /// The directories the test created, deepest first.
    created_dirs: Vec<std::path::PathBuf>,
    run: String,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl HostHooks {
    fn install(dir: &Path, sup: &Supervisor) -> HostHooks {
        let serial = HOST_HOOKS.lock().unwrap_or_else(|p| p.into_inner());
        let created_dirs: Vec<_> = dir
            .ancestors()
            .take_while(|d| !d.exists())
            .map(Path::to_path_buf)
            .collect();
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let run = format!("{}-{nanos}", std::process::id());
        let mut hooks = HostHooks {
            files: Vec::new(),
            created_dirs,
            run,
            _serial: serial,
        };
        let shipped_dir = repo_root().join("config/podman/hooks.d");
        let runtime_dir = sup.runtime_dir().display().to_string();
        let mut names: Vec<_> = fs::read_dir(&shipped_dir)
            .expect("read config/podman/hooks.d")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        for path in names {
            let text = fs::read_to_string(&path).unwrap();
            assert!(
                text.contains("\"--runtime-dir\", \"/run/sniffguard\""),
                "{}: the walk-through's sed needs --runtime-dir /run/sniffguard",
                path.display()
            );
            let text = text.replace("/run/sniffguard", &runtime_dir).replace(
                "/usr/local/bin/sniffguard-hook",
                &hook_bin().display().to_string(),
            );
            let mut hook: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let when = hook["when"]["annotations"]
                .as_object_mut()
                .unwrap_or_else(|| panic!("{}: no when.annotations", path.display()));
            when.insert(
                format!("^{}$", TEST_RUN_ANNOTATION.replace('.', "\\.")),
                json!(format!("^{}$", hooks.run)),
            );
            let name = format!(
                "sniffguard-test-{}-{}",
                hooks.run,
                path.file_name().unwrap().to_string_lossy()
            );
            let target = dir.join(name);
            fs::write(&target, hook.to_string())
                .unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
            hooks.files.push(target);
        }
        assert!(
            hooks.files.len() >= 2,
            "no hooks in {}",
            shipped_dir.display()
        );
        hooks
    }

    /// The `--annotation` that gives a container these hooks.
    fn annotation(&self) -> String {
        format!("{TEST_RUN_ANNOTATION}={}", self.run)
    }
}

impl Drop for HostHooks {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = fs::remove_file(file);
        }
        for dir in &self.created_dirs {
            // Only if empty: a hook someone else installed meanwhile stays.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The shipped seccomp profile pointed at `sup`, written into `podman`'s directory;
/// returns the `--security-opt` value.
fn staging_profile(sup: &Supervisor, podman: &Podman) -> String {
    let mut profile: Value =
        serde_json::from_str(&shipped("config/podman/seccomp-staging.json")).unwrap();
    profile["listenerPath"] = json!(sup.runtime_dir().join("seccomp.sock"));
    let path = podman.path("seccomp.json");
    fs::write(&path, profile.to_string()).expect("write the profile");
    format!("seccomp={}", path.display())
}

/// Podman as installed, no `--hooks-dir` and no `hooks_dir`: the hooks in
/// /usr/share/containers/oci/hooks.d register a ci container (alerted) and, with the
/// shipped seccomp profile, a staging one (tcpdump refused, the alert from a registered
/// container).
#[test]
fn default_hooks_dir_is_read_by_podman_as_installed() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let hooks = HostHooks::install(Path::new(ENGINE_HOOKS_DIR), &sup);
    let podman = Podman::with(None, HooksDirs::EngineDefault, None);
    let runc = Runtime::Runc.path().display().to_string();
    let run = hooks.annotation();
    let (id, out) = podman.run(
        &["--runtime", &runc],
        &["--annotation", &run],
        "ci",
        CAPTURE_SCRIPT,
    );
    assert_ci_alerted(&sup, &id, &out);
    assert_deregistered(&sup, &id);

    let opt = staging_profile(&sup, &podman);
    let (id, out) = podman.run(
        &["--runtime", &runc],
        &["--annotation", &run, "--security-opt", &opt],
        "staging",
        STAGING_SCRIPT,
    );
    assert_staging_denied(&sup, &id, &out, true);
    assert_deregistered(&sup, &id);
}

/// Hooks in /etc/containers/oci/hooks.d are read once `config/podman/hooks-dirs.conf`
/// sets `hooks_dir`.
#[test]
fn etc_hooks_dir_is_read_with_the_shipped_drop_in() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let hooks = HostHooks::install(Path::new(ETC_HOOKS_DIR), &sup);
    let dropin = shipped("config/podman/hooks-dirs.conf");
    assert!(dropin.contains(ENGINE_HOOKS_DIR) && dropin.contains(ETC_HOOKS_DIR));
    let podman = Podman::with(None, HooksDirs::FromConf(dropin), None);
    let runc = Runtime::Runc.path().display().to_string();
    let (id, out) = podman.run(
        &["--runtime", &runc],
        &["--annotation", &hooks.annotation()],
        "ci",
        CAPTURE_SCRIPT,
    );
    assert_ci_alerted(&sup, &id, &out);
    assert_deregistered(&sup, &id);
}

/// `podman run --name`: the name Podman recorded is the container's name for the policy's
/// `container` rules and in alerts; a caller's `io.podman.annotations.name` does not
/// replace it.
#[test]
fn podman_name_is_the_container_name_in_rules_and_alerts() {
    if !require_root() {
        return;
    }
    let policy = "default_environment = \"ci\"\n\n\
                  [[rules]]\nenvironment = \"staging\"\ncontainer = \"web-*\"\n\n\
                  [environments.ci]\nmode = \"audit\"\n\n\
                  [environments.staging]\nmode = \"enforce\"\n";
    let sup = Supervisor::start(Some(policy));
    let wrapper = ShimWrapper::new(&sup);
    let podman = Podman::new(Some(&wrapper), None);
    let unique = std::process::id();
    let forged = format!("io.podman.annotations.name=web-{unique}-forged");
    // (the --name, other options, what tcpdump gets, the alert's action and environment)
    // The second container's caller writes a name annotation that the rule would match;
    // Podman's own name stands, and the default decides.
    for (name, options, rc, action, environment) in [
        (format!("web-{unique}"), vec![], "126", "denied", "staging"),
        (
            format!("job-{unique}"),
            vec!["--annotation", forged.as_str(), "--cap-add", "NET_RAW"],
            "0",
            "allowed",
            "ci",
        ),
    ] {
        let mut args = vec!["--name", name.as_str()];
        args.extend(options);
        let (id, out) = podman.run_container(
            &["--runtime", "sniffguard"],
            &args,
            "tcpdump -D >/dev/null; echo tcpdump_rc=$?",
        );
        assert!(
            out.stdout.contains(&format!("tcpdump_rc={rc}")),
            "{name}: {out}\n{}",
            sup.report()
        );
        let alert = wait_alert(&sup, &id, action, |a| str_at(a, "/action") == Some(action));
        assert_eq!(
            str_at(&alert, "/container/name"),
            Some(name.as_str()),
            "{alert}"
        );
        assert_eq!(str_at(&alert, "/environment"), Some(environment), "{alert}");
    }
}

/// The uid a rootless test runs Podman as: no account has it, and it differs per test
/// process (a rootless Podman keeps per-uid state in its pause process).
fn rootless_uid() -> u32 {
    3_000_000 + std::process::id() % 1_000_000
}

/// Rootless Podman through the shim: a staging container is refused with the reason
/// (nothing could enforce it); a ci one starts, and the start is recorded in the user's
/// `$XDG_RUNTIME_DIR/sniffguard/unsupervised/` (the supervisor's directory is root's).
/// Before: both started silently unwatched, tcpdump running in staging.
#[test]
fn rootless_podman_refuses_enforced_and_records_audited_containers() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let wrapper = ShimWrapper::new(&sup);
    // The rootless user must run the wrapper and read its settings.
    let wrapper_dir = wrapper.path().parent().unwrap().to_path_buf();
    fs::set_permissions(&wrapper_dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(
        wrapper_dir.join("runtime.env"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let uid = rootless_uid();
    let podman = Podman::with(Some(&wrapper), HooksDirs::Only(None), Some(uid));
    let runtime = wrapper.path().display().to_string();

    let (_, out) = podman.run(&["--runtime", &runtime], &[], "staging", STAGING_SCRIPT);
    assert!(
        !out.success(),
        "a rootless staging container started: {out}"
    );
    assert!(!out.stdout.contains("started"), "{out}");
    for needle in [
        "sniffguard-runtime: container refused",
        "user namespace",
        &format!("uid {uid} on the host"),
        "\"staging\" enforces",
    ] {
        assert!(out.stderr_mentions(needle), "no {needle:?}: {out}");
    }

    let (id, out) = podman.run(&["--runtime", &runtime], &[], "ci", "echo started");
    assert!(out.success() && out.stdout.contains("started"), "{out}");
    let notes = podman.path("xdg/sniffguard/unsupervised");
    let entries: Vec<_> = fs::read_dir(&notes)
        .unwrap_or_else(|e| panic!("no note in {}: {e}\n{out}", notes.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&id))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let note: Value = serde_json::from_str(&fs::read_to_string(&entries[0]).unwrap()).unwrap();
    assert_eq!(note["environment"], "ci", "{note}");
    assert!(
        note["reason"]
            .as_str()
            .is_some_and(|r| r.contains("user namespace")),
        "{note}"
    );
    // Nothing reached the supervisor.
    assert!(
        !sup.status()["containers"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["id"] == id.as_str())),
        "{}",
        sup.report()
    );
}

/// The hook as rootless Podman runs it from a hooks.d file (not root, or root of a user
/// namespace), fed the state a runtime writes: a staging container is refused, a ci one
/// warned about, and poststop says nothing.
#[test]
fn hook_without_root_refuses_enforced_and_warns_for_audited() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(None);
    let bundle = temp_dir("sniffguard-rootless-hook-");
    fs::set_permissions(bundle.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let uid = rootless_uid().to_string();
    let hook = |stage: &str, environment: &str| {
        let state = json!({
            "ociVersion": "1.0.2-dev", "id": format!("rootless-{environment}"),
            "status": "creating", "pid": std::process::id(),
            "bundle": bundle.path(), "annotations": {ENVIRONMENT_ANNOTATION: environment},
        });
        let script = format!(
            "printf '%s' '{state}' | \"$0\" hook --stage {stage} --runtime-dir \"$1\" \
             --environment {environment} --fail open"
        );
        run_command(
            Command::new("setpriv")
                .args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={uid}"),
                    "--clear-groups",
                ])
                .args(["sh", "-c", &script])
                .arg(hook_bin())
                .arg(sup.runtime_dir())
                .env_clear()
                .env("PATH", "/usr/bin:/bin"),
            Duration::from_secs(30),
        )
    };
    let out = hook("create-runtime", "staging");
    assert!(!out.success(), "{out}");
    for needle in [
        "sniffguard-hook: container refused",
        &format!("runs as uid {uid}"),
        "rootless-staging",
    ] {
        assert!(out.stderr_mentions(needle), "no {needle:?}: {out}");
    }
    let out = hook("create-runtime", "ci");
    assert!(out.success(), "{out}");
    assert!(out.stderr_mentions("is NOT watched for sniffing"), "{out}");
    assert!(out.stderr_mentions("could not be recorded"), "{out}");
    let out = hook("poststop", "ci");
    assert!(out.success() && out.stderr.trim().is_empty(), "{out}");
}

/// `config/podman/seccomp-profile.sh` on small base profiles: what it changes, what it
/// keeps, and what it refuses. No root needed; jq must be installed.
#[test]
fn seccomp_profile_script_merges_and_refuses() {
    assert!(
        find_in_path("jq").is_some(),
        "jq not in PATH (apt-get install jq)"
    );
    let dir = temp_dir("sniffguard-profile-");
    let script = repo_root().join("config/podman/seccomp-profile.sh");
    let generate = |base: &Value, args: &[&str]| {
        let path = dir.path().join("base.json");
        fs::write(&path, base.to_string()).unwrap();
        run_command(
            Command::new("sh").arg(&script).args(args).arg(&path),
            Duration::from_secs(30),
        )
    };

    // A Docker-style profile: execve and socket in one big allow rule, socket also gated
    // by a capability.
    let base = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [
            {"names": ["read", "execve", "socket", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_NET_ADMIN"]}},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    let out = generate(&base, &["-e", "production", "-d", "/run/sg"]);
    assert!(out.success(), "{out}");
    let profile: Value = serde_json::from_str(&out.stdout).expect("the script prints JSON");
    assert_eq!(profile["listenerPath"], "/run/sg/seccomp.sock");
    let metadata = profile["listenerMetadata"].as_str().unwrap();
    assert!(metadata.starts_with("production;socket="), "{metadata}");
    assert_eq!(profile["defaultErrnoRet"], 1, "the base's fields are kept");
    let rules = profile["syscalls"].as_array().unwrap();
    let names = |rule: &Value| -> Vec<String> {
        rule["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    };
    let allow_all: Vec<&Value> = rules
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("includes").is_none())
        .collect();
    assert_eq!(names(allow_all[0]), ["read", "write"], "{profile:#}");
    let notify_unconditional: Vec<Vec<String>> = rules
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_NOTIFY" && r.get("args").is_none())
        .map(names)
        .collect();
    assert_eq!(
        notify_unconditional,
        [vec!["execve".to_owned()], vec!["socket".to_owned()]],
        "{profile:#}"
    );
    // Every base rule for socket (the gated allow and the conditional refusal
    // too) left the kernel filter for the supervisor: no rule but the notify
    // names socket, and the metadata gives the base's answers.
    assert_eq!(
        rules
            .iter()
            .filter(|r| names(r).contains(&"socket".to_owned()))
            .count(),
        1,
        "{profile:#}"
    );
    let carried = sniffguard_common::listener::ListenerMetadata::parse(metadata)
        .socket_rules
        .expect("the socket rules travel in the metadata");
    use sniffguard_common::listener::BaseAction;
    assert_eq!(carried.rules.len(), 3, "{metadata}");
    assert_eq!(carried.verdict(&[40, 1, 0, 0, 0, 0]), BaseAction::Errno(1));
    assert_eq!(carried.verdict(&[2, 1, 0, 0, 0, 0]), BaseAction::Allow);
    // kexec_load untouched; execveat not mentioned under a refusing default: not added.
    assert!(rules.iter().any(|r| names(r) == ["kexec_load"]));
    assert!(!rules
        .iter()
        .any(|r| names(r).contains(&"execveat".to_owned())));

    // A permissive default: execve/execveat are added as notify.
    let out = generate(&json!({"defaultAction": "SCMP_ACT_ALLOW"}), &[]);
    assert!(out.success(), "{out}");
    let profile: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(profile["listenerPath"], "/run/sniffguard/seccomp.sock");
    assert_eq!(profile["listenerMetadata"], "staging");
    assert!(profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "SCMP_ACT_NOTIFY" && names(r) == ["execve", "execveat"]));
    // No base rule for socket: the conditional capture rules are all there is.
    let capture: Vec<&Value> = profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_NOTIFY" && names(r) == ["socket"])
        .collect();
    // The script writes the rows of the one capture table, no more, no fewer.
    let table = &sniffguard_common::capture::CAPTURE_SOCKETS;
    assert_eq!(capture.len(), table.len(), "{profile:#}");
    for row in table {
        let mut args = vec![
            json!({"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": 4294967295_u64, "valueTwo": row.family}),
        ];
        if let Some(socket_type) = row.socket_type {
            args.push(json!({"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 15, "valueTwo": socket_type}));
        }
        if let Some(protocol) = row.protocol {
            args.push(json!({"index": 2, "op": "SCMP_CMP_MASKED_EQ", "value": 4294967295_u64, "valueTwo": protocol}));
        }
        assert!(
            capture.iter().any(|r| r["args"] == json!(args)),
            "no rule for {row:?} in {profile:#}"
        );
    }
    // TRACE is no refusal: a TRACE default gets the same rules.
    let out = generate(&json!({"defaultAction": "SCMP_ACT_TRACE"}), &[]);
    assert!(out.success(), "{out}");
    let traced: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(traced["syscalls"], profile["syscalls"], "{traced:#}");
    // io_uring opens sockets without socket(2): refused, as the shim does.
    assert!(profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "SCMP_ACT_ERRNO"
            && r["errnoRet"] == 1
            && names(r)
                == [
                    "io_uring_setup",
                    "io_uring_enter",
                    "io_uring_register",
                    "pidfd_getfd"
                ]));

    // Refusals.
    for (base, why) in [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/other/agent.sock"}),
            "already has listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["open"], "action": "SCMP_ACT_NOTIFY"}]}),
            "already has SCMP_ACT_NOTIFY",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_NE"}]}]}),
            "argument conditions on execve",
        ),
    ] {
        let out = generate(&base, &[]);
        assert!(!out.success(), "accepted a base that {why}: {out}");
        assert!(out.stderr_mentions(why), "{out}");
        assert!(
            out.stdout.trim().is_empty(),
            "printed a profile anyway: {out}"
        );
    }
}

/// The Debian package (and version) whose default profile
/// `config/podman/seccomp-staging.json` was generated from.
const PROFILE_BASE_PACKAGE: (&str, &str) = ("golang-github-containers-common", "0.50.1+ds1-4");

/// The shipped profile is what the script makes of the default profile it was generated
/// from, when that exact base is installed.
#[test]
fn shipped_seccomp_profile_matches_the_script() {
    let base = Path::new("/usr/share/containers/seccomp.json");
    let (package, version) = PROFILE_BASE_PACKAGE;
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if installed != version || !base.exists() {
        eprintln!(
            "\n**** SKIPPED: the profile's base is {package} {version}, installed: {installed:?} ****\n"
        );
        return;
    }
    let out = run_command(
        Command::new("sh")
            .arg(repo_root().join("config/podman/seccomp-profile.sh"))
            .arg(base),
        Duration::from_secs(30),
    );
    assert!(out.success(), "{out}");
    let generated: Value = serde_json::from_str(&out.stdout).unwrap();
    let shipped_profile: Value =
        serde_json::from_str(&shipped("config/podman/seccomp-staging.json")).unwrap();
    assert_eq!(
        generated, shipped_profile,
        "config/podman/seccomp-staging.json is stale: regenerate it with \
         `config/podman/seccomp-profile.sh > config/podman/seccomp-staging.json`"
    );
}
