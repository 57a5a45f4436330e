//! Where things are: the repository, its scripts, the workspace's built binaries and
//! tools on `PATH`, and the small text and test-generation helpers every test file uses.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The repository (workspace) root: the parent of this package's manifest directory.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// A script in the repository's `scripts/` directory.
pub fn script(name: &str) -> PathBuf {
    repo_root().join("scripts").join(name)
}

/// Environment variable naming the one directory to take the workspace's binaries from
/// (e.g. `target/release`, to drive an optimised build from a debug test, or a debug build
/// from a bench). Relative paths are taken from the repository root. When it is set, no
/// other directory is searched: a benchmark must not silently measure another build.
pub const BIN_DIR_ENV: &str = "SNIFFGUARD_BIN_DIR";

/// Directories where the workspace's binaries may be, most likely first: only
/// `$SNIFFGUARD_BIN_DIR` when it is set ([`BIN_DIR_ENV`]); otherwise the profile directory
/// holding this test executable's `deps/` (`target/debug` for tests, `target/release` for
/// benches), `$CARGO_TARGET_DIR/debug`, and `<repo>/target/debug`.
fn binary_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return vec![if dir.is_absolute() {
            dir
        } else {
            repo_root().join(dir)
        }];
    }
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/deps/<test>-<hash>: binaries live in target/debug.
        if let Some(deps) = exe.parent() {
            if deps.file_name().is_some_and(|n| n == "deps") {
                if let Some(profile) = deps.parent() {
                    dirs.push(profile.to_path_buf());
                }
            } else {
                dirs.push(deps.to_path_buf());
            }
        }
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        let target = PathBuf::from(target);
        let target = if target.is_absolute() {
            target
        } else {
            repo_root().join(target)
        };
        dirs.push(target.join("debug"));
    }
    dirs.push(repo_root().join("target").join("debug"));
    dirs.dedup();
    dirs
}

/// `text` without ANSI escape sequences (`ESC [ … letter`): logs written by a
/// supervisor of before colours were kept to terminals, or a terminal copy.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `per_runtime!(scenario, …)` makes one `#[test]` per runtime for each
/// scenario function taking a [`Runtime`](crate::Runtime): `scenario::runc` and
/// `scenario::crun`.
#[macro_export]
macro_rules! per_runtime {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn runc() {
                super::$name($crate::Runtime::Runc);
            }

            #[test]
            fn crun() {
                super::$name($crate::Runtime::Crun);
            }
        }
    )*};
}

/// Path of a workspace binary (`sniffguard`, `sniffguard-runtime`, `sniffguard-hook`).
///
/// # Panics
/// When it is not built, with a hint to run `cargo build --workspace`.
pub fn binary(name: &str) -> PathBuf {
    let dirs = binary_dirs();
    for dir in &dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "binary `{name}` not found in any of {dirs:?}: run `cargo build --workspace` first \
         (the integration tests drive the built binaries), or point {BIN_DIR_ENV} at a \
         directory that has it"
    );
}

/// The supervisor binary, `sniffguard`.
pub fn sniffguard_bin() -> PathBuf {
    binary("sniffguard")
}

/// The OCI runtime shim, `sniffguard-runtime`.
pub fn runtime_shim_bin() -> PathBuf {
    binary("sniffguard-runtime")
}

/// The OCI hook, `sniffguard-hook`.
pub fn hook_bin() -> PathBuf {
    binary("sniffguard-hook")
}

/// Finds an executable by name in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
