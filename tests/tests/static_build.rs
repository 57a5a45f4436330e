//! The static builds of the two binaries that run on the nodes, the runtime shim and
//! the OCI hook (`scripts/build-static.sh`: x86_64-unknown-linux-musl). They are what the
//! agent image copies onto Kubernetes nodes of any distribution, so they must need no
//! dynamic loader and no shared library, and must do their job: a real runc container
//! started through the static shim, whose injected hook is the static hook, is alerted
//! in `ci` and has tcpdump refused in `staging`.
//!
//! The ELF checks need no root; the container test needs root, runc, busybox-static and
//! tcpdump, and the workspace built (`cargo build --workspace`: the supervisor is the
//! ordinary build).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::Value;
use sniffguard_tests::{
    find_in_path, repo_root, require_root, rootfs, run_command, str_at, Bundle, CmdOutput,
    Container, Runtime, ShimTarget, Supervisor, COMMAND_TIMEOUT,
};

/// Where `scripts/build-static.sh` puts the binaries, relative to the repository.
const STATIC_DIR: &str = "target/x86_64-unknown-linux-musl/release";

/// Environment variable naming another directory to take them from (a debug build:
/// `target/x86_64-unknown-linux-musl/debug`), relative to the repository.
const STATIC_DIR_ENV: &str = "SNIFFGUARD_STATIC_DIR";

/// ELF program header type of the dynamic loader's path (`elf.h`).
const PT_INTERP: u32 = 3;
/// ELF program header type of the dynamic section.
const PT_DYNAMIC: u32 = 2;
/// Dynamic section tag naming a shared library the program needs.
const DT_NEEDED: u64 = 1;

/// The static build of `name`, checked to be newer than every source it is built from:
/// a stale binary would test old code.
fn static_binary(name: &str) -> PathBuf {
    let dir = std::env::var(STATIC_DIR_ENV).unwrap_or_else(|_| STATIC_DIR.to_owned());
    let path = repo_root().join(dir).join(name);
    let built = fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run scripts/build-static.sh (scripts/setup.sh does)",
                path.display()
            )
        });
    let mut newest = (SystemTime::UNIX_EPOCH, PathBuf::new());
    // What cargo rebuilds the binaries from (a test file elsewhere would not).
    for source in [
        "hook/src",
        "hook/Cargo.toml",
        "common/src",
        "common/Cargo.toml",
    ] {
        newest_file(&repo_root().join(source), &mut newest);
    }
    assert!(
        newest.0 <= built,
        "{} is older than {}: run scripts/build-static.sh",
        path.display(),
        newest.1.display()
    );
    path
}

/// Raises `newest` to the newest modification time of a file under `path`.
fn newest_file(path: &Path, newest: &mut (SystemTime, PathBuf)) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if meta.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            newest_file(&entry.unwrap().path(), newest);
        }
    } else if let Ok(modified) = meta.modified() {
        if modified > newest.0 {
            *newest = (modified, path.to_path_buf());
        }
    }
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Why the ELF file at `path` would need something from the node beyond the kernel: a
/// program interpreter (`PT_INTERP`, the dynamic loader) or a shared library
/// (`DT_NEEDED`). Empty for a static executable. Reads the 64-bit little-endian layout
/// (x86_64) and panics on anything else: this is our own build output, not input.
fn dynamic_needs(path: &Path) -> Vec<String> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > 64 && bytes[..4] == *b"\x7fELF" && bytes[4] == 2 && bytes[5] == 1,
        "{}: not a 64-bit little-endian ELF file",
        path.display()
    );
    let phoff = usize::try_from(u64_at(&bytes, 0x20)).unwrap();
    let (phentsize, phnum) = (u16_at(&bytes, 0x36), u16_at(&bytes, 0x38));
    let mut needs = Vec::new();
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        let kind = u32_at(&bytes, header);
        let offset = usize::try_from(u64_at(&bytes, header + 8)).unwrap();
        let size = usize::try_from(u64_at(&bytes, header + 32)).unwrap();
        match kind {
            PT_INTERP => needs.push(format!(
                "PT_INTERP {}",
                String::from_utf8_lossy(&bytes[offset..offset + size]).trim_end_matches('\0')
            )),
            PT_DYNAMIC => {
                // A static-pie executable has a dynamic section (for its own
                // relocations) but no DT_NEEDED entry in it.
                for entry in bytes[offset..offset + size].chunks_exact(16) {
                    if u64_at(entry, 0) == DT_NEEDED {
                        needs.push("DT_NEEDED (a shared library)".to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    needs
}

/// Both binaries run without a dynamic loader or shared library, so on any x86_64
/// Linux node (glibc 2.34 and later are not required: Ubuntu 20.04, Debian 11, RHEL 8
/// and Amazon Linux 2 have older ones).
#[test]
fn static_shim_and_hook_need_no_loader_and_no_library() {
    for name in ["sniffguard-runtime", "sniffguard-hook"] {
        let path = static_binary(name);
        let needs = dynamic_needs(&path);
        assert!(needs.is_empty(), "{}: {needs:?}", path.display());
        if find_in_path("file").is_some() {
            let out = run_command(Command::new("file").arg("-b").arg(&path), COMMAND_TIMEOUT);
            assert!(
                out.success() && out.stdout.contains("static"),
                "file(1) on {}: {out}",
                path.display()
            );
        }
    }
    // The check can fail: the ordinary build links glibc dynamically.
    let dynamic = sniffguard_tests::runtime_shim_bin();
    let needs = dynamic_needs(&dynamic);
    assert!(
        needs.iter().any(|n| n.starts_with("PT_INTERP /")),
        "{}: {needs:?}",
        dynamic.display()
    );
}

/// `SHIM --root R` with the environment the harness gives its own shim
/// (`Container::shim_command`), for `container` under `sup`.
fn static_shim_command(shim: &Path, sup: &Supervisor, container: &Container) -> Command {
    let mut cmd = Command::new(shim);
    cmd.env("SNIFFGUARD_REAL_RUNTIME", container.runtime().path())
        .env("SNIFFGUARD_RUNTIME_DIR", sup.runtime_dir())
        .env_remove("SNIFFGUARD_HOOK")
        .env_remove("SNIFFGUARD_CONFIG")
        .arg("--root")
        .arg(container.state_dir());
    cmd
}

/// `run --bundle B ID` in the foreground through the static shim.
fn run_via_static_shim(
    shim: &Path,
    sup: &Supervisor,
    container: &Container,
    bundle: &Bundle,
) -> CmdOutput {
    let mut cmd = static_shim_command(shim, sup, container);
    cmd.args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(container.id());
    run_command(&mut cmd, COMMAND_TIMEOUT)
}

/// The paths of the hooks the shim injected into the bundle's `config.json`.
fn injected_hooks(bundle: &Bundle) -> Vec<String> {
    let config: Value =
        serde_json::from_str(&fs::read_to_string(bundle.config_path()).unwrap()).unwrap();
    config["hooks"]
        .as_object()
        .into_iter()
        .flat_map(|stages| stages.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|hook| hook["path"].as_str().map(str::to_owned))
        .collect()
}

/// One runc container per environment through the static shim: `ci` alerts tcpdump and
/// lets it run, `staging` refuses it before it runs; the hook the shim injects (found
/// beside the shim) is the static one. Then an exec into a staging container through it.
#[test]
fn static_shim_runs_runc_containers_in_ci_and_staging() {
    if !require_root() {
        return;
    }
    let shim = static_binary("sniffguard-runtime");
    let hook = static_binary("sniffguard-hook").display().to_string();
    let sup = Supervisor::start(None);
    let script = "tcpdump -D >/dev/null 2>&1; echo tcpdump_rc=$?; busybox true; echo true_rc=$?";
    for (environment, action, tcpdump_rc) in [
        ("ci", "allowed", "tcpdump_rc=0"),
        ("staging", "denied", "tcpdump_rc=126"),
    ] {
        let bundle = Bundle::new(rootfs(), &["sh", "-c", script], Some(environment));
        let container = Container::new(Runtime::Runc);
        let out = run_via_static_shim(&shim, &sup, &container, &bundle);
        assert!(out.success(), "{environment}: {out}\n{}", sup.report());
        for needle in [tcpdump_rc, "true_rc=0"] {
            assert!(
                out.stdout.contains(needle),
                "{environment}: no {needle:?}: {out}\n{}",
                sup.report()
            );
        }
        let hooks = injected_hooks(&bundle);
        assert!(
            !hooks.is_empty() && hooks.iter().all(|h| *h == hook),
            "{environment}: injected hooks {hooks:?}, expected only {hook}"
        );
        let alert = sup.wait_alert_for_exe(container.id(), "/usr/bin/tcpdump", environment);
        assert_eq!(str_at(&alert, "/environment"), Some(environment), "{alert}");
        assert_eq!(str_at(&alert, "/action"), Some(action), "{alert}");
    }

    // `kubectl exec`'s path: an exec into a running staging container through the
    // static shim, asking for CAP_NET_RAW, which the shim keeps out (its exec rewrite
    // runs confined, like create's); tcpdump is refused there too.
    let bundle = Bundle::new(rootfs(), &["sleep", "3600"], Some("staging"));
    let container = Container::new(Runtime::Runc);
    let out = container.create_detached_via_shim(&sup, &bundle);
    assert!(out.success(), "{out}\n{}", sup.report());
    let mut exec = static_shim_command(&shim, &sup, &container);
    exec.args(["exec", "--cap", "CAP_NET_RAW", container.id()])
        .args(["sh", "-c", "tcpdump -D; echo tcpdump_rc=$?"]);
    let out = run_command(&mut exec, COMMAND_TIMEOUT);
    assert!(
        out.success() && out.stdout.contains("tcpdump_rc=126"),
        "exec: {out}\n{}",
        sup.report()
    );
    assert!(
        out.stderr_mentions("CAP_NET_RAW kept out of the process"),
        "exec: {out}"
    );
}
