//! Registrations saved under the runtime directory, so that a restarted
//! supervisor knows the containers attached before it (their hooks ran once).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sniffguard_common::wire::{validate_container_id, Registration};

/// Largest saved registration read back.
const MAX_RECORD_BYTES: u64 = 256 * 1024;

fn dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("containers")
}

/// Writes `value` as JSON to `dir/name` atomically (a temporary file renamed
/// over), creating `dir` (`0700`) if needed; the file is `0600`.
fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let json = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&json)?;
    fs::rename(&tmp, dir.join(name))
}

/// Saves `registration` (atomically: a temporary file renamed over).
pub fn save_registration(runtime_dir: &Path, registration: &Registration) {
    let name = format!("{}.json", registration.id);
    if let Err(err) = write_json(&dir(runtime_dir), &name, registration) {
        tracing::warn!(container = registration.id, %err, "cannot save the registration; a restart would forget it");
    }
}

/// Removes a saved registration.
pub fn forget_registration(runtime_dir: &Path, id: &str) {
    if validate_container_id(id).is_ok() {
        let _ = fs::remove_file(dir(runtime_dir).join(format!("{id}.json")));
    }
}

/// Every saved registration that parses.
pub fn load_registrations(runtime_dir: &Path) -> Vec<Registration> {
    read_registrations(&dir(runtime_dir))
}

/// Every registration file in `dir` that parses and names a valid id.
fn read_registrations(dir: &Path) -> Vec<Registration> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            if meta.len() > MAX_RECORD_BYTES {
                return None;
            }
            let bytes = fs::read(e.path()).ok()?;
            let registration: Registration = serde_json::from_slice(&bytes).ok()?;
            validate_container_id(&registration.id).ok()?;
            Some(registration)
        })
        .collect()
}

/// The file, in the runtime directory, where the grants in force are saved.
const GRANTS_FILE: &str = "grants.json";

fn grants_file(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(GRANTS_FILE)
}

/// Largest saved grants file read back (a grant is a few hundred bytes).
const MAX_GRANTS_BYTES: u64 = 4 * 1024 * 1024;

/// Saves the grants in force (atomically), so that a restarted supervisor
/// keeps honouring them.
pub fn save_grants(runtime_dir: &Path, grants: &[crate::grants::Grant]) {
    if let Err(err) = write_json(runtime_dir, GRANTS_FILE, &grants) {
        tracing::warn!(%err, "cannot save the grants; a restart would end them");
    }
}

/// The grants saved by [`save_grants`] (none when there is no file or it does
/// not parse: a grant is an exception, and none is the safe default).
pub fn load_grants(runtime_dir: &Path) -> Vec<crate::grants::Grant> {
    let path = grants_file(runtime_dir);
    match fs::metadata(&path) {
        Ok(meta) if meta.len() <= MAX_GRANTS_BYTES => {}
        _ => return Vec::new(),
    }
    let grants: Vec<crate::grants::Grant> = match fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    {
        Some(grants) => grants,
        None => {
            tracing::warn!(path = %path.display(), "saved grants unreadable; none restored");
            return Vec::new();
        }
    };
    grants
        .into_iter()
        .filter(|g| validate_container_id(&g.container).is_ok())
        .collect()
}

/// Removes the registration the hook left pending for container `id`.
pub fn forget_pending(runtime_dir: &Path, id: &str) {
    if validate_container_id(id).is_ok() {
        let _ = fs::remove_file(
            sniffguard_common::paths::pending_dir(runtime_dir).join(format!("{id}.json")),
        );
    }
}

/// Every registration the hook left pending and no supervisor took: containers
/// that started while the supervisor was unreachable.
pub fn load_pending(runtime_dir: &Path) -> Vec<Registration> {
    read_registrations(&sniffguard_common::paths::pending_dir(runtime_dir))
}
