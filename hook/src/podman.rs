//! The name Podman gave a container.
//!
//! Podman 4.3 writes no name into `config.json`: no annotation, the hostname
//! is the short id, and the runtime is called with the id alone (only conmon
//! gets the name, as `-n`). The one record the runtime can reach is
//! containers/storage's: Podman keeps each container's bundle at
//! `GRAPHROOT/DRIVER-containers/ID/userdata` (`overlay-containers`,
//! `vfs-containers`, …), and the store's `containers.json` beside those
//! directories lists every container's id with its `names` (the `--name`, or
//! the name Podman made up), written atomically (a new file renamed over the
//! old) when the container is created. The shim and the hook read the name
//! from there and give it to the policy and the alerts as the annotation
//! `io.podman.annotations.name`, replacing whatever the caller wrote under
//! that key, so the name an alert shows is the one `podman ps` shows.
//!
//! The name is chosen by whoever runs `podman run`, like every annotation
//! under Podman: a rule may sort containers by it, and `check-config` warns
//! about rules that loosen enforcement on it. Nothing inside the container
//! can change it: the store is on the host, outside the container's root.

use std::io::Read;
use std::path::Path;

/// The annotation the name is given under.
pub const NAME_ANNOTATION: &str = sniffguard_common::policy::keys::PODMAN_NAME;

/// Most bytes read from a store's container list. An entry is about 400 bytes,
/// so this is tens of thousands of containers.
pub const MAX_STORE_BYTES: u64 = 32 * 1024 * 1024;

/// Longest name taken (Podman itself puts no limit; a hostname has 253).
const MAX_NAME_LEN: usize = 253;

/// The store's lists of containers: the persistent one, and the one for
/// volatile containers that newer containers/storage versions keep apart.
const STORE_FILES: [&str; 2] = ["containers.json", "volatile-containers.json"];

/// Errors finding the name of a container whose bundle is laid out as
/// Podman lays it out.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// A store file could not be read.
    #[error("cannot read Podman's container list {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A store file is larger than [`MAX_STORE_BYTES`].
    #[error("Podman's container list {0} is larger than {MAX_STORE_BYTES} bytes")]
    TooLarge(String),
    /// A store file is not the JSON list containers/storage writes.
    #[error("Podman's container list {path} is not a JSON list of containers: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The container's entry names it with something that is not a Podman name.
    #[error("Podman's container list {path} names container {id} {name:?}, which is not a valid container name")]
    BadName {
        /// The file.
        path: String,
        /// The container.
        id: String,
        /// The name found (cut to a bounded length).
        name: String,
    },
}

/// The container id of a bundle laid out as Podman lays it out
/// (`…/DRIVER-containers/ID/userdata`), or `None` for any other bundle.
pub fn podman_bundle_id(bundle: &Path) -> Option<&str> {
    if bundle.file_name()? != "userdata" {
        return None;
    }
    let container_dir = bundle.parent()?;
    let id = container_dir.file_name()?.to_str()?;
    let store = container_dir.parent()?.file_name()?.to_str()?;
    let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (is_id && store.ends_with("-containers") && store.len() > "-containers".len()).then_some(id)
}

/// The name containers/storage records for the container whose bundle is
/// `bundle`. `Ok(None)` when the bundle is not laid out as Podman's, when the
/// store has no list, or when the container is not in it (no name, as
/// before); `expected_id`, when given, must be the bundle's id.
pub fn name_from_storage(
    bundle: &Path,
    expected_id: Option<&str>,
) -> Result<Option<String>, NameError> {
    let Some(id) = podman_bundle_id(bundle) else {
        return Ok(None);
    };
    if expected_id.is_some_and(|expected| expected != id) {
        return Ok(None);
    }
    let Some(store) = bundle.parent().and_then(Path::parent) else {
        return Ok(None);
    };
    for file in STORE_FILES {
        let path = store.join(file);
        let Some(text) = read_bounded(&path)? else {
            continue;
        };
        if let Some(name) = find_name(&text, id, &path.display().to_string())? {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, NameError> {
    let shown = || path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NameError::Read {
                path: shown(),
                source,
            })
        }
    };
    let mut text = Vec::new();
    file.take(MAX_STORE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|source| NameError::Read {
            path: shown(),
            source,
        })?;
    if text.len() as u64 > MAX_STORE_BYTES {
        return Err(NameError::TooLarge(shown()));
    }
    Ok(Some(text))
}

/// The first name of container `id` in a store list `text` (read from `path`).
pub fn find_name(text: &[u8], id: &str, path: &str) -> Result<Option<String>, NameError> {
    let format = |reason: &str| NameError::Format {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let list: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format(&e.to_string()))?;
    let entries = list.as_array().ok_or_else(|| format("not a list"))?;
    for entry in entries {
        if entry.get("id").and_then(serde_json::Value::as_str) != Some(id) {
            continue;
        }
        let Some(names) = entry.get("names") else {
            return Ok(None);
        };
        let names = names
            .as_array()
            .ok_or_else(|| format("\"names\" is not a list"))?;
        let Some(first) = names.first() else {
            return Ok(None);
        };
        let name = first
            .as_str()
            .ok_or_else(|| format("a name is not a string"))?;
        if !valid_name(name) {
            return Err(NameError::BadName {
                path: path.to_string(),
                id: id.to_string(),
                name: name.chars().take(80).collect(),
            });
        }
        return Ok(Some(name.to_string()));
    }
    Ok(None)
}

/// Podman's rule for container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), bounded.
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_NAME_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Gives the container in `config` (a parsed `config.json`) its Podman name:
/// the annotation [`NAME_ANNOTATION`] is set to `name`, replacing what the
/// caller may have written under that key.
pub fn set_name(config: &mut serde_json::Map<String, serde_json::Value>, name: &str) {
    let annotations = config
        .entry("annotations")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !annotations.is_object() {
        // The OCI schema, checked before this, allows only an object here.
        *annotations = serde_json::Value::Object(serde_json::Map::new());
    }
    if let Some(map) = annotations.as_object_mut() {
        map.insert(NAME_ANNOTATION.to_string(), name.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "2ea7230835b6d635149e90b994ca4c24540729ac564bc843fdfa704feafb0491";

    /// A store laid out as Podman 4.3 leaves it, with `list` as containers.json.
    fn store(list: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let store = root.path().join("overlay-containers");
        let bundle = store.join(ID).join("userdata");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(store.join("containers.json"), list).unwrap();
        (root, bundle)
    }

    #[test]
    fn finds_the_name_podman_recorded() {
        let list = format!(
            r#"[{{"id":"{}","names":["other"]}},{{"id":"{ID}","names":["web-1"],"image":"","metadata":"{{\"name\":\"web-1\"}}"}}]"#,
            "a".repeat(64)
        );
        let (_root, bundle) = store(&list);
        assert_eq!(
            name_from_storage(&bundle, Some(ID)).unwrap().as_deref(),
            Some("web-1")
        );
        assert_eq!(
            name_from_storage(&bundle, None).unwrap().as_deref(),
            Some("web-1")
        );
        // The state names another container: not this bundle's name.
        assert_eq!(name_from_storage(&bundle, Some("c1")).unwrap(), None);
    }

    #[test]
    fn the_name_replaces_the_callers_annotation() {
        let mut config = serde_json::json!({"ociVersion": "1.0.2"});
        let map = config.as_object_mut().unwrap();
        set_name(map, "web-1");
        assert_eq!(map["annotations"][NAME_ANNOTATION], "web-1");
        map.get_mut("annotations").unwrap()[NAME_ANNOTATION] = "prod-db".into();
        map.get_mut("annotations").unwrap()["k"] = "v".into();
        set_name(map, "web-1");
        assert_eq!(map["annotations"][NAME_ANNOTATION], "web-1");
        assert_eq!(map["annotations"]["k"], "v");
    }

    #[test]
    fn other_layouts_have_no_name() {
        for bundle in [
            "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc",
            "/tmp/bundle",
            "/var/lib/x/overlay-containers/short/userdata",
            "/var/lib/x/containers/0000000000000000000000000000000000000000000000000000000000000000/userdata",
        ] {
            assert_eq!(podman_bundle_id(Path::new(bundle)), None, "{bundle}");
            assert_eq!(name_from_storage(Path::new(bundle), None).unwrap(), None);
        }
        // Laid out as Podman's, but no list (a transient store keeps it elsewhere).
        let root = tempfile::tempdir().unwrap();
        let bundle = root.path().join("vfs-containers").join(ID).join("userdata");
        std::fs::create_dir_all(&bundle).unwrap();
        assert_eq!(name_from_storage(&bundle, None).unwrap(), None);
    }

    #[test]
    fn hostile_lists_are_clear_errors() {
        for (list, needle) in [
            ("not json", "not a JSON list"),
            ("{}", "not a list"),
            (
                &*format!(r#"[{{"id":"{ID}","names":"web"}}]"#),
                "\"names\" is not a list",
            ),
            (
                &*format!(r#"[{{"id":"{ID}","names":[7]}}]"#),
                "not a string",
            ),
            (
                &*format!(r#"[{{"id":"{ID}","names":["-rf /"]}}]"#),
                "not a valid container name",
            ),
            (
                &*format!(r#"[{{"id":"{ID}","names":["{}"]}}]"#, "a".repeat(300)),
                "not a valid container name",
            ),
        ] {
            let (_root, bundle) = store(list);
            let err = name_from_storage(&bundle, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{list}: {err}");
            assert!(err.contains("containers.json"), "{err}");
        }
        // No names at all: no name, no error.
        let (_root, bundle) = store(&format!(r#"[{{"id":"{ID}","names":[]}}]"#));
        assert_eq!(name_from_storage(&bundle, None).unwrap(), None);
    }
}
