//! Temporary directories (under `/tmp`, for short socket paths), directories removed
//! when the test process exits, and the static C helpers compiled into them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;

use crate::command::run_command;
use crate::COMMAND_TIMEOUT;

/// A fresh directory `/tmp/<prefix>XXXXXX`, mode 0700, removed when the guard drops.
///
/// Under `/tmp` rather than `$TMPDIR` on purpose: the supervisor's sockets live in such a
/// directory and a Unix socket path must stay under 108 bytes.
pub fn temp_dir(prefix: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create a temporary directory under /tmp");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .expect("chmod 0700 the temporary directory");
    dir
}

/// Directories to remove when the test process exits (statics are never dropped).
static REMOVE_AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_dirs_at_exit() {
    // No panics here: unwinding out of an `extern "C"` function aborts the process.
    let dirs = match REMOVE_AT_EXIT.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    for dir in dirs.iter() {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Removes `dir` when the process exits normally (libtest returns from `main` or calls
/// `std::process::exit`; both run `atexit` handlers).
pub fn remove_at_exit(dir: PathBuf) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: `remove_dirs_at_exit` is a plain `extern "C" fn()` that captures nothing and
        // never unwinds; atexit only stores the pointer, and it is registered exactly once.
        let rc = unsafe { libc::atexit(remove_dirs_at_exit) };
        assert_eq!(rc, 0, "atexit failed");
    });
    let mut dirs = match REMOVE_AT_EXIT.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    dirs.push(dir);
}

/// Compiles a C program statically with `gcc -static -O2` into `dir/name` and
/// returns its path.
///
/// # Panics
/// When gcc fails (its output is shown).
pub fn compile_static(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    fs::write(&src, source).expect("write C source");
    let out_path = dir.join(name);
    let out = run_command(
        Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&out_path)
            .arg(&src),
        COMMAND_TIMEOUT,
    );
    assert!(out.success(), "gcc failed: {out}");
    out_path
}

/// A directory, removed when the test process exits, holding the C `helpers`
/// (name, source) compiled with [`compile_static`]: containers bind-mount it
/// read-only at `/helpers`, so it is made traversable like the rootfs.
///
/// # Panics
/// When gcc fails.
pub fn helpers_dir(prefix: &str, helpers: &[(&str, &str)]) -> PathBuf {
    let dir = temp_dir(prefix).keep();
    remove_at_exit(dir.clone());
    for (name, source) in helpers {
        compile_static(&dir, name, source);
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod the helpers");
    dir
}
