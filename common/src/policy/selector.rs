//! Which containers a rule picks: conditions on the container's annotations,
//! matched with `*` globs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A shell-style pattern where `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Pattern(pub String);

impl Pattern {
    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        glob_match(&self.0, text)
    }
}

/// `*`-only glob matching in linear time (policy patterns are operator input,
/// names are container input; both may be long). The text between stars is
/// found left to right, each piece at its earliest place after the one
/// before, the first piece anchored at the start and the last at the end.
/// The earliest place is always the right one: a later place only leaves less
/// text for the pieces after it. Each search is `str::find` (two-way, linear),
/// and every byte of the text is passed over once.
fn glob_match(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let (middle, last) = rest.rsplit_once('*').unwrap_or(("", rest));
    // The suffix is taken from what the prefix leaves, so the two never overlap.
    let Some(mut text) = text
        .strip_prefix(first)
        .and_then(|text| text.strip_suffix(last))
    else {
        return false;
    };
    for piece in middle.split('*').filter(|piece| !piece.is_empty()) {
        match text.find(piece) {
            Some(at) => text = &text[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Conditions on a container, all of which must hold (absent ones always do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Kubernetes namespace (`io.kubernetes.pod.namespace`).
    #[serde(default)]
    pub namespace: Option<Pattern>,
    /// Kubernetes pod name (`io.kubernetes.pod.name`).
    #[serde(default)]
    pub pod: Option<Pattern>,
    /// Container name (`io.kubernetes.container.name`, or Podman's name).
    #[serde(default)]
    pub container: Option<Pattern>,
    /// Other annotations, by key.
    #[serde(default)]
    pub annotations: BTreeMap<String, Pattern>,
}

/// Annotation keys the selector reads.
pub mod keys {
    /// Kubernetes namespace.
    pub const NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// Kubernetes pod name.
    pub const POD: &str = "io.kubernetes.pod.name";
    /// Kubernetes container name.
    pub const CONTAINER: &str = "io.kubernetes.container.name";
    /// Podman's container name.
    pub const PODMAN_NAME: &str = "io.podman.annotations.name";
    /// containerd CRI's pod namespace.
    pub const CRI_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    /// containerd CRI's pod name.
    pub const CRI_POD: &str = "io.kubernetes.cri.sandbox-name";
    /// containerd CRI's container name.
    pub const CRI_CONTAINER: &str = "io.kubernetes.cri.container-name";

    /// Where each runtime stack puts the namespace (CRI-O, containerd).
    pub const NAMESPACE_KEYS: [&str; 2] = [NAMESPACE, CRI_NAMESPACE];
    /// Where each runtime stack puts the pod name.
    pub const POD_KEYS: [&str; 2] = [POD, CRI_POD];
    /// Where each runtime stack puts the container name.
    pub const CONTAINER_KEYS: [&str; 3] = [CONTAINER, CRI_CONTAINER, PODMAN_NAME];
}

impl Selector {
    /// Who can satisfy this selector besides the orchestrator, in words, or
    /// `None` when it reads no annotation at all.
    ///
    /// The namespace, pod and container keys are written by containerd's CRI
    /// plugin and by CRI-O from the pod's metadata; under Podman, Docker 24+ and
    /// plain runc/crun the container's author writes every annotation
    /// (`--annotation`). Any other annotation key is the workload's on every
    /// stack unless the node's runtime configuration filters it.
    pub fn workload_exposure(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if !self.annotations.is_empty() {
            let keys: Vec<&str> = self.annotations.keys().map(String::as_str).collect();
            reasons.push(format!(
                "matches annotation(s) {} that a pod or container spec can set itself on every stack",
                keys.join(", ")
            ));
        }
        let orchestrator: Vec<&str> = [
            ("namespace", self.namespace.is_some()),
            ("pod", self.pod.is_some()),
            ("container", self.container.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if !orchestrator.is_empty() {
            reasons.push(format!(
                "matches {} — set by containerd's CRI plugin and CRI-O, but written by the container's author under Podman, Docker 24+ and plain runc/crun (--annotation)",
                orchestrator.join(", ")
            ));
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.namespace.is_none()
            && self.pod.is_none()
            && self.container.is_none()
            && self.annotations.is_empty()
    }

    /// Whether a container with `annotations` is selected.
    pub fn matches(&self, annotations: &BTreeMap<String, String>) -> bool {
        let field = |pattern: &Option<Pattern>, keys: &[&str]| match pattern {
            None => true,
            Some(pattern) => keys
                .iter()
                .find_map(|k| annotations.get(*k))
                .is_some_and(|v| pattern.matches(v)),
        };
        field(&self.namespace, &keys::NAMESPACE_KEYS)
            && field(&self.pod, &keys::POD_KEYS)
            && field(&self.container, &keys::CONTAINER_KEYS)
            && self
                .annotations
                .iter()
                .all(|(k, p)| annotations.get(k).is_some_and(|v| p.matches(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `*`-only glob matching by dynamic programming (fuzz/src/lib.rs has the same).
    fn glob_reference(pattern: &[u8], text: &[u8]) -> bool {
        // row[j]: the pattern so far matches text[..j].
        let mut row = vec![false; text.len() + 1];
        row[0] = true;
        for &p in pattern {
            let mut next = vec![false; text.len() + 1];
            let mut any = false;
            for j in 0..=text.len() {
                next[j] = if p == b'*' {
                    any |= row[j];
                    any
                } else {
                    j > 0 && row[j - 1] && text[j - 1] == p
                };
            }
            row = next;
        }
        row[text.len()]
    }

    /// Every string of up to `max` characters from `alphabet`.
    fn strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn globs_agree_with_the_reference_on_every_small_case() {
        let texts = strings(&['a', 'b'], 6);
        for pattern in strings(&['a', 'b', '*'], 5) {
            for text in &texts {
                assert_eq!(
                    Pattern(pattern.clone()).matches(text),
                    glob_reference(pattern.as_bytes(), text.as_bytes()),
                    "{pattern:?} against {text:?}"
                );
            }
        }
        // Multi-byte characters are matched whole.
        assert!(Pattern("é*ü".into()).matches("éxyzü"));
        assert!(Pattern("*ß*".into()).matches("straße"));
        assert!(!Pattern("é*é".into()).matches("é"));
    }

    #[test]
    fn huge_globs_match_in_linear_time() {
        // The bound is the algorithm's (each byte of the text passed over once),
        // not a timer's. 64 KiB of `*a` against 100,000 bytes:
        let pattern = "*a".repeat(32 * 1024);
        let subject = "a".repeat(100_000);
        assert!(Pattern(pattern.clone()).matches(&subject));
        assert!(!Pattern(format!("{pattern}*b")).matches(&subject));
        assert!(!Pattern(pattern.clone()).matches(&subject[..32 * 1024 - 1]));
        assert!(Pattern(pattern).matches(&subject[..32 * 1024]));
        let pieces = "*ab".repeat(20_000) + "*";
        assert!(!Pattern(pieces.clone()).matches(&"a".repeat(100_000)));
        assert!(Pattern(pieces).matches(&"xab".repeat(20_000)));
        // A long piece that almost matches everywhere: the one-backtrack-point
        // matcher this replaced compared up to 4,000 bytes at each of the
        // 200,000 starts (fuzz/corpus/glob/quadratic-backtracking is its kind).
        let almost = format!("*{}b*", "a".repeat(4000));
        assert!(!Pattern(almost.clone()).matches(&"a".repeat(200_000)));
        assert!(Pattern(almost).matches(&format!("{}b", "a".repeat(200_000))));
    }

    #[test]
    fn globs_match_without_blowing_up() {
        assert!(Pattern("prod-*".into()).matches("prod-eu"));
        assert!(Pattern("*".into()).matches(""));
        assert!(Pattern("a*b*c".into()).matches("axxbyyc"));
        assert!(!Pattern("a*b*c".into()).matches("axxbyy"));
        let long = "a".repeat(10_000);
        assert!(!Pattern("*a*a*a*a*a*b".into()).matches(&long));
    }
}
