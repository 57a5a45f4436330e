//! containers-common's seccomp profile (what Podman and CRI-O run containers
//! under) resolved for one container, as an OCI `linux.seccomp`.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

/// Where Debian's golang-github-containers-common installs the profile.
pub const CONTAINERS_COMMON_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// The Go architecture name containers-common's `includes.arches` uses for this machine.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// containers-common's profile as an OCI `linux.seccomp` for a container with `caps`,
/// resolved the way Podman does it: a rule is kept when its `includes` (capabilities,
/// architectures) hold and its `excludes` do not; `architectures` is this machine's entry
/// of `archMap` with its sub-architectures; the engine-only fields go.
pub fn containers_common_profile(caps: &[&str]) -> Value {
    let path = Path::new(CONTAINERS_COMMON_PROFILE);
    let text = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "read {} ({e}): install golang-github-containers-common (podman depends on it)",
            path.display()
        )
    });
    let base: Value = serde_json::from_str(&text).expect("containers-common's profile is JSON");
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let arch = go_arch();
    let applies = |rule: &Value| {
        let inc_caps = list(&rule["includes"]["caps"]);
        let exc_caps = list(&rule["excludes"]["caps"]);
        let inc_arches = list(&rule["includes"]["arches"]);
        let exc_arches = list(&rule["excludes"]["arches"]);
        inc_caps.iter().all(|c| caps.contains(&c.as_str()))
            && !exc_caps.iter().any(|c| caps.contains(&c.as_str()))
            && (inc_arches.is_empty() || inc_arches.iter().any(|a| a == arch))
            && !exc_arches.iter().any(|a| a == arch)
    };
    let syscalls: Vec<Value> = base["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|r| applies(r))
        .map(|r| {
            let mut rule = json!({"names": r["names"], "action": r["action"]});
            if r["args"].as_array().is_some_and(|a| !a.is_empty()) {
                rule["args"] = r["args"].clone();
            }
            if let Some(errno) = r.get("errnoRet").filter(|e| e.is_u64()) {
                rule["errnoRet"] = errno.clone();
            }
            rule
        })
        .collect();
    let native = match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        other => panic!("no seccomp architecture known for {other}"),
    };
    let entry = base["archMap"]
        .as_array()
        .and_then(|m| m.iter().find(|e| e["architecture"] == native))
        .expect("archMap has this machine");
    let mut architectures = vec![json!(native)];
    architectures.extend(
        entry["subArchitectures"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    let mut profile = json!({
        "defaultAction": base["defaultAction"],
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(errno) = base.get("defaultErrnoRet").filter(|e| e.is_u64()) {
        profile["defaultErrnoRet"] = errno.clone();
    }
    profile
}
