//! The fuzz harnesses: one function per target, each handing arbitrary bytes to
//! one of the parsers sniffguard reads untrusted input with, then checking what
//! must hold of whatever it accepted.
//!
//! The libFuzzer targets in `fuzz/fuzz_targets/` call these functions; the
//! stable test `tests/tests/fuzz_corpus.rs` includes this file and replays every
//! input of `fuzz/corpus/TARGET/` through the same function. A harness returns
//! quietly for input the parser refuses; a panic (the parser's, or a broken
//! invariant below) is a finding.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};
use sniffguard::classify::{Classifier, ExecSite};
use sniffguard::resolve::{self, Base};
use sniffguard_common::abi::{self, Event};
use sniffguard_common::policy::{FailPolicy, Pattern, Policy};
use sniffguard_common::wire::{self, Request, Response};
use sniffguard_hook::inject::{self, Attachment};

/// A harness: one input, no result; a panic is a finding.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("config_json", config_json),
    ("hook_state", hook_state),
    ("seccomp_payload", seccomp_payload),
    ("wire_request", wire_request),
    ("policy", policy),
    ("classify_exec", classify_exec),
    ("resolve_path", resolve_path),
    ("event_decode", event_decode),
    ("glob", glob),
];

fn builtin() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| match Policy::builtin() {
        Ok(policy) => policy,
        Err(err) => panic!("built-in policy: {err}"),
    })
}

/// Annotations a policy's rules are tried against.
fn sample_annotations() -> [BTreeMap<String, String>; 3] {
    let pairs = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    [
        BTreeMap::new(),
        pairs(&[
            ("io.kubernetes.pod.namespace", "kube-system"),
            ("io.kubernetes.pod.name", "web-7f9c-debug"),
            ("io.kubernetes.container.name", "tcpdump"),
        ]),
        pairs(&[
            ("io.podman.annotations.name", "ci-runner-1"),
            ("team", "payments"),
            (sniffguard_common::ENVIRONMENT_ANNOTATION, "production"),
        ]),
    ]
}

// ---------------------------------------------------------------------------
// config.json rewrite (the shim, `sniffguard-hook inject`)

fn attachment(seccomp_listener: bool) -> Attachment {
    Attachment {
        hook_path: PathBuf::from("/usr/local/bin/sniffguard-hook"),
        runtime_dir: PathBuf::from("/run/sniffguard"),
        environment: if seccomp_listener { "staging" } else { "ci" }.to_string(),
        fail: FailPolicy::Closed,
        runtime_name: Some("runc".into()),
        environment_chosen_by: None,
        seccomp_listener,
        drop_capabilities: if seccomp_listener {
            vec!["CAP_NET_RAW".to_string()]
        } else {
            Vec::new()
        },
        refuse_capability_requests: false,
    }
}

fn rewrite(config: &Map<String, Value>, attachment: &Attachment) -> Option<Map<String, Value>> {
    let mut config = config.clone();
    inject::attach(&mut config, attachment).ok()?;
    Some(config)
}

/// `parse_config` then `attach` (audit and enforce). What `attach` accepts must
/// come out a valid `config.json` that a second injection leaves unchanged, and
/// in enforce every `execve`/`execveat` must reach the supervisor or be refused.
pub fn config_json(data: &[u8]) {
    let Ok(config) = inject::parse_config(data) else {
        return;
    };
    let annotations = inject::annotations(&config);
    let _ = builtin().resolve_environment(&annotations);
    for listener in [false, true] {
        let attachment = attachment(listener);
        let Some(once) = rewrite(&config, &attachment) else {
            continue;
        };
        let bytes = match serde_json::to_vec_pretty(&once) {
            Ok(bytes) => bytes,
            Err(err) => panic!("rewritten config.json does not serialise: {err}"),
        };
        let reparsed = match inject::parse_config(&bytes) {
            Ok(config) => config,
            Err(err) => panic!("rewritten config.json is refused when read back: {err}"),
        };
        let Some(twice) = rewrite(&reparsed, &attachment) else {
            panic!("a second injection refuses the document the first one wrote");
        };
        if once != twice {
            let seccomp = |config: &Map<String, Value>| {
                let seccomp = config.get("linux").and_then(|l| l.get("seccomp"));
                serde_json::to_string(&seccomp).unwrap_or_default()
            };
            panic!(
                "a second injection changed the document; linux.seccomp once: {}, twice: {}",
                seccomp(&once),
                seccomp(&twice)
            );
        }
        if listener {
            check_enforced(&once);
        }
    }
}

fn is_permissive(action: &Value) -> bool {
    matches!(action.as_str(), Some("SCMP_ACT_ALLOW" | "SCMP_ACT_LOG"))
}

fn is_unconditional(rule: &Value) -> bool {
    rule.get("args")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

/// In an enforced profile each exec syscall is refused outright, or notified
/// by an unconditional rule that no unconditional permissive rule contradicts,
/// or named by no rule under a refusing default action. (Two unconditional
/// rules with different actions for one syscall make libseccomp refuse the
/// whole filter, so a refusal next to an allow is not a way through; an
/// unconditional rule wins over conditional ones.)
fn check_enforced(config: &Map<String, Value>) {
    let Some(seccomp) = config.get("linux").and_then(|l| l.get("seccomp")) else {
        panic!("enforced config.json has no linux.seccomp");
    };
    assert_eq!(
        seccomp.get("listenerPath").and_then(Value::as_str),
        Some("/run/sniffguard/seccomp.sock"),
        "enforced profile does not point at the supervisor"
    );
    let rules: &[Value] = seccomp
        .get("syscalls")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let default_permissive = is_permissive(seccomp.get("defaultAction").unwrap_or(&Value::Null));
    for name in ["execve", "execveat"] {
        let naming: Vec<&Value> = rules
            .iter()
            .filter(|rule| {
                rule.get("names")
                    .and_then(Value::as_array)
                    .is_some_and(|names| names.iter().any(|n| n == name))
            })
            .collect();
        let unconditional: Vec<&Value> = naming
            .iter()
            .filter(|rule| is_unconditional(rule))
            .map(|rule| rule.get("action").unwrap_or(&Value::Null))
            .collect();
        let refused = unconditional
            .iter()
            .any(|a| !is_permissive(a) && a.as_str() != Some("SCMP_ACT_NOTIFY"));
        let notified = unconditional
            .iter()
            .any(|a| a.as_str() == Some("SCMP_ACT_NOTIFY"));
        let allowed = unconditional.iter().any(|a| is_permissive(a));
        let unmentioned = naming.is_empty() && !default_permissive;
        let ok = refused || (notified && !allowed) || unmentioned;
        assert!(
            ok,
            "enforced profile lets {name} run unseen: {}",
            serde_json::to_string(seccomp).unwrap_or_default()
        );
    }
}

// ---------------------------------------------------------------------------
// The hook's stdin

/// `parse_state` and `read_state` on the same bytes: they must agree.
pub fn hook_state(data: &[u8]) {
    use sniffguard_hook::state::{parse_state, read_state};
    let parsed = parse_state(data);
    let read = read_state(data);
    assert_eq!(
        parsed.is_ok(),
        read.is_ok(),
        "read_state and parse_state disagree"
    );
    if let Ok(state) = parsed {
        assert!(wire::validate_container_id(state.id()).is_ok());
        assert!(state.bundle().is_absolute());
    }
}

// ---------------------------------------------------------------------------
// The runtime's seccomp payload

/// The first byte says how many fds arrived with the payload (0-3, `/dev/null`
/// each); the rest is the JSON. An accepted payload took exactly one fd.
pub fn seccomp_payload(data: &[u8]) {
    let Some((&first, json)) = data.split_first() else {
        return;
    };
    let received = usize::from(first % 4);
    let mut fds: Vec<OwnedFd> = (0..received)
        .filter_map(|_| fs::File::open("/dev/null").ok().map(OwnedFd::from))
        .collect();
    let Ok(payload) = sniffguard::listener::parse_payload(json, &mut fds) else {
        return;
    };
    assert_eq!(fds.len() + 1, received, "payload took other than one fd");
    assert!(payload.notify_fd.as_raw_fd() >= 0);
    assert!(wire::validate_container_id(payload.state.state().id()).is_ok());
    let policy = builtin();
    if let Some(metadata) = payload.state.metadata().as_deref() {
        let _ = policy.environment(metadata);
    }
    let annotations: BTreeMap<String, String> = payload
        .state
        .state()
        .annotations()
        .clone()
        .map(|a| a.into_iter().collect())
        .unwrap_or_default();
    let _ = policy.resolve_environment(&annotations);
}

// ---------------------------------------------------------------------------
// The API protocol

/// `decode::<Request>` (what the supervisor reads) and `decode::<Response>`
/// (what the hook reads); an accepted message survives `encode` then `decode`.
pub fn wire_request(data: &[u8]) {
    if let Ok(request) = wire::decode::<Request>(data) {
        if let Ok(line) = wire::encode(&request) {
            match wire::decode::<Request>(&line) {
                Ok(again) => assert_eq!(again, request, "request changed on a round trip"),
                Err(err) => panic!("an encoded request does not decode: {err}"),
            }
        }
        if let Request::Register(registration) = &request {
            let _ = wire::validate_container_id(&registration.id);
            let _ = builtin().resolve_environment(&registration.annotations);
        }
    }
    if let Ok(response) = wire::decode::<Response>(data) {
        if let Ok(line) = wire::encode(&response) {
            match wire::decode::<Response>(&line) {
                Ok(again) => assert_eq!(again, response, "response changed on a round trip"),
                Err(err) => panic!("an encoded response does not decode: {err}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The policy parser

/// `Policy::parse`, then the questions the shim and the supervisor ask of it.
pub fn policy(data: &[u8]) {
    if data.len() as u64 > sniffguard_common::policy::MAX_POLICY_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse(text, "fuzz") else {
        return;
    };
    assert!(policy.environment(&policy.default_environment).is_ok());
    for annotations in sample_annotations() {
        if let Ok(resolved) = policy.resolve_environment(&annotations) {
            let _ = resolved.environment.responses();
            let _ = resolved.describe();
            let _ = policy.allowed_by(resolved.name, &annotations, "tcpdump");
        }
    }
    let _ = policy.is_catalogued(b"tcpdump");
    let _ = policy.workload_settable_warnings();
}

// ---------------------------------------------------------------------------
// Classification and path resolution

/// A directory standing in for a container's root, with a few files the
/// inputs can name. Interpreters and loader arguments resolve inside it, never
/// on the host: a fuzzed `#!/dev/...` line must not open the host's devices.
struct Sandbox {
    dir: tempfile::TempDir,
    root: OwnedFd,
    /// An fd of a directory inside the root, for `execveat(fd, ...)`.
    subdir: OwnedFd,
    /// The file the input is written to, as the container sees it.
    input: &'static [u8],
    /// The same file on the host.
    input_host: PathBuf,
}

/// A minimal ELF64 that links `libpcap.so.0.8` (the seed corpus has more).
const TINY_PCAP_ELF: &[u8] = include_bytes!("../corpus/classify_exec/elf64-needs-libpcap");

fn build_sandbox() -> std::io::Result<Sandbox> {
    let dir = tempfile::Builder::new()
        .prefix("sniffguard-fuzz")
        .tempdir()?;
    let root = dir.path().join("root");
    for sub in ["usr/bin", "bin", "lib64", "dir", "tmp"] {
        fs::create_dir_all(root.join(sub))?;
    }
    fs::write(root.join("usr/bin/env"), b"#!/bin/sh\n")?;
    fs::write(root.join("bin/sh"), b"\x7fELF")?;
    fs::write(root.join("usr/bin/tcpdump"), TINY_PCAP_ELF)?;
    fs::write(root.join("usr/bin/renamed"), TINY_PCAP_ELF)?;
    fs::write(root.join("lib64/ld-linux-x86-64.so.2"), b"\x7fELF")?;
    fs::write(root.join("dir/script"), b"#!/usr/bin/tcpdump -i any\n")?;
    fs::write(root.join("input"), b"")?;
    std::os::unix::fs::symlink("/usr/bin/tcpdump", root.join("usr/bin/innocent"))?;
    std::os::unix::fs::symlink("../usr/bin/renamed", root.join("dir/rel"))?;
    std::os::unix::fs::symlink("loop2", root.join("dir/loop1"))?;
    std::os::unix::fs::symlink("loop1", root.join("dir/loop2"))?;
    std::os::unix::fs::symlink("/../../../../etc/passwd", root.join("dir/escape"))?;
    // A device node, as a container with CAP_MKNOD can make one (the device
    // cgroup lets runc and Docker containers mknod any device, only not open
    // it). This one is /dev/null's, harmless; only root can make it.
    let null = std::ffi::CString::new(root.join("dir/null").as_os_str().as_bytes())
        .map_err(std::io::Error::other)?;
    // SAFETY: `null` is a NUL-terminated path that outlives the call; mknod
    // only reads it.
    let _ = unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    // A relative path is resolved from the thread's working directory (or a
    // directory fd) as its path inside the root. This process's root is the
    // host's `/`, so those are host paths: mirror them inside the sandbox as
    // links to its `/`, so that relative paths land among the files above.
    for (host, inside) in [(std::env::current_dir()?, "/"), (root.join("dir"), "/dir")] {
        let mirror = root.join(host.strip_prefix("/").unwrap_or(&host));
        if let Some(parent) = mirror.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::symlink_metadata(&mirror).is_err() {
            std::os::unix::fs::symlink(inside, &mirror)?;
        }
    }
    let root_fd = resolve::open_dir(&root).map_err(std::io::Error::from)?;
    let subdir = resolve::open_dir(&root.join("dir")).map_err(std::io::Error::from)?;
    Ok(Sandbox {
        input_host: root.join("input"),
        dir,
        root: root_fd,
        subdir,
        input: b"/input",
    })
}

/// The sandbox, locked: one input file shared by every call.
fn sandbox() -> std::sync::MutexGuard<'static, Sandbox> {
    static SANDBOX: OnceLock<Mutex<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| match build_sandbox() {
            Ok(sandbox) => Mutex::new(sandbox),
            Err(err) => panic!("cannot build the fuzz sandbox: {err}"),
        })
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn classify_in(sandbox: &Sandbox, given: &[u8], base: Base, argv: &[Vec<u8>]) {
    let tid = std::process::id();
    let read_argv = || argv.to_vec();
    let site = ExecSite {
        root: (&sandbox.root).into(),
        tid,
        argv: &read_argv,
    };
    let resolved = resolve::resolve(&sandbox.root, tid, base, given).ok();
    if let Some(resolved) = &resolved {
        let _ = resolved.basename();
    }
    let _ = Classifier::new().classify_exec(
        builtin(),
        &site,
        given,
        argv.first().map(Vec::as_slice),
        resolved.as_ref(),
    );
}

/// The input is the content of the file an exec names (a `#!` script, an ELF
/// file, anything): written to `/input` in the sandbox and classified, as
/// `execve("/input", ["/input", "--", "/usr/bin/tcpdump"])` and then as the
/// dynamic loader's `ld.so --library-path /lib64 /usr/bin/renamed`.
pub fn classify_exec(data: &[u8]) {
    let sandbox = sandbox();
    if fs::write(&sandbox.input_host, data).is_err() {
        return;
    }
    let input = sandbox.input.to_vec();
    classify_in(
        &sandbox,
        &input,
        Base::Cwd,
        &[input.clone(), b"--".to_vec(), b"/usr/bin/tcpdump".to_vec()],
    );
    classify_in(
        &sandbox,
        &input,
        Base::Cwd,
        &[
            b"ld.so".to_vec(),
            b"--library-path".to_vec(),
            b"/lib64".to_vec(),
            b"/usr/bin/renamed".to_vec(),
        ],
    );
}

/// The first byte chooses how the exec names its file (`execve`, `execveat`
/// with `AT_FDCWD`, a directory fd or `AT_EMPTY_PATH`); the rest is the path,
/// resolved in the sandbox's root and classified.
pub fn resolve_path(data: &[u8]) {
    let Some((&how, path)) = data.split_first() else {
        return;
    };
    let sandbox = sandbox();
    let dirfd = sandbox.subdir.as_raw_fd();
    let base = match how % 5 {
        0 => Base::Cwd,
        1 => Base::DirFd(resolve::AT_FDCWD),
        2 => Base::DirFd(dirfd),
        3 => Base::EmptyPath(dirfd),
        _ => Base::EmptyPath(resolve::AT_FDCWD),
    };
    if let Ok(resolved) = resolve::resolve(&sandbox.root, std::process::id(), base, path) {
        // Whatever resolved is inside the sandbox (or one of this process's
        // own fds, for /proc/self/fd/N, /dev/fd/N and AT_EMPTY_PATH).
        let host_path = resolved.host_path();
        let host = host_path.as_os_str().as_bytes();
        let own_fd = matches!(base, Base::EmptyPath(_)) && path.is_empty()
            || [
                &b"/proc/self/fd/"[..],
                b"/proc/thread-self/fd/",
                b"/dev/fd/",
            ]
            .iter()
            .any(|p| path.starts_with(p));
        let sandboxed = host.starts_with(sandbox.dir.path().as_os_str().as_bytes());
        assert!(
            own_fd || sandboxed,
            "{:?} resolved outside the root, to {:?}",
            String::from_utf8_lossy(path),
            host_path
        );
        // The kernel execs regular files only. Opening anything else on the
        // host's side of the device cgroup, as root, is what a container
        // cannot do itself (a watchdog, a tape that rewinds, ...).
        if let Some(meta) = resolved.open().ok().and_then(|f| f.metadata().ok()) {
            use std::os::unix::fs::FileTypeExt;
            let kind = meta.file_type();
            assert!(
                own_fd || !(kind.is_char_device() || kind.is_block_device()),
                "{:?} opened a device node ({:?}) as the supervisor",
                String::from_utf8_lossy(path),
                host_path
            );
        }
    }
    let argv = [path.to_vec()];
    classify_in(&sandbox, path, base, &argv);
}

// ---------------------------------------------------------------------------
// Ring-buffer records

/// `Event::decode`, then everything the supervisor reads of an event.
pub fn event_decode(data: &[u8]) {
    let Ok(event) = Event::decode(data) else {
        return;
    };
    let _ = event.header().cgroup_id;
    match &event {
        Event::Exec(exec) => {
            let _ = abi::c_str(&exec.comm);
            let _ = abi::c_str(&exec.filename);
            let args: Vec<&[u8]> = abi::argv_slots(&exec.argv, exec.argc).collect();
            assert!(args.len() <= abi::ARGV_SLOTS);
        }
        Event::Net(net) => {
            let _ = abi::c_str(&net.comm);
        }
    }
}

// ---------------------------------------------------------------------------
// Selector globs

/// The reference: `*`-only glob matching by dynamic programming.
fn glob_reference(pattern: &[u8], text: &[u8]) -> bool {
    // row[j]: pattern[..i] matches text[..j].
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == b'*' {
            let mut any = false;
            for j in 0..=text.len() {
                any |= row[j];
                next[j] = any;
            }
        } else {
            for j in 1..=text.len() {
                next[j] = row[j - 1] && text[j - 1] == p;
            }
        }
        row = next;
    }
    row[text.len()]
}

/// Pattern and text split at the first NUL byte; `Pattern::matches` must agree
/// with [`glob_reference`] (on inputs small enough for it).
pub fn glob(data: &[u8]) {
    let (pattern, text) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let pattern = String::from_utf8_lossy(pattern).into_owned();
    let text = String::from_utf8_lossy(text).into_owned();
    let matched = Pattern(pattern.clone()).matches(&text);
    if pattern.len() * text.len() <= 1 << 16 {
        assert_eq!(
            matched,
            glob_reference(pattern.as_bytes(), text.as_bytes()),
            "glob {pattern:?} against {text:?}"
        );
    }
}

/// What replaying a corpus found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Inputs run, per target.
    pub counts: Vec<(&'static str, usize)>,
    /// The inputs whose harness panicked, with the panic's message.
    pub failures: Vec<(PathBuf, String)>,
}

/// Replays every file of `corpus/TARGET/` under `fuzz_dir` through its
/// harness, catching each panic so that one report names every failing input.
pub fn replay_corpus(fuzz_dir: &Path) -> Replay {
    let mut replay = Replay::default();
    for &(name, harness) in TARGETS {
        let dir = fuzz_dir.join("corpus").join(name);
        let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(err) => panic!("{}: {err}", dir.display()),
        };
        files.sort();
        for file in &files {
            let data = match fs::read(file) {
                Ok(data) => data,
                Err(err) => panic!("{}: {err}", file.display()),
            };
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| harness(&data)));
            if let Err(panic) = run {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                replay.failures.push((file.clone(), message));
            }
        }
        replay.counts.push((name, files.len()));
    }
    replay
}
