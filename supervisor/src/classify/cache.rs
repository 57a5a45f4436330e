//! What a file is, and the cache that remembers it.
//!
//! What a file *is* (ELF and its libraries, script and its interpreter, digest)
//! depends only on its content, so it is cached by device, inode, size and
//! modification and change times: a container's second `ls` costs no parsing.
//! This room reads a file's head, hands it to the parser for its format
//! ([`super::script`], [`super::elf`], [`super::markers`]) and keeps the
//! answer; judging the facts against a policy is the classifier's.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use sniffguard_common::policy::Policy;

use super::digest::{sha256_hex, MAX_DECISION_HASH_BYTES};
use super::elf::{elf_dynamic, Dynamic};
use super::markers::{scan, Found};
use super::script::{is_loader_name, parse_shebang, Shebang};
use crate::resolve::Resolved;

/// Bytes read to recognise a file's format and its `#!` line.
const HEADER_BYTES: usize = 256;

/// Cache entries kept before the cache is emptied and refilled.
const CACHE_CAPACITY: usize = 4096;

/// What a file is, independent of where it was found.
#[derive(Debug, Clone)]
pub(super) enum Format {
    /// An ELF object.
    Elf {
        /// The libraries it links and the name it gives itself.
        dynamic: Dynamic,
        /// Whether it is a dynamic loader (by its `DT_SONAME`, so a renamed
        /// copy is still one).
        loader: bool,
        /// libpcap's strings and capture function names found in it.
        markers: Found,
    },
    /// A `#!` script.
    Script(Shebang),
    /// Anything else (the kernel will refuse or hand it to binfmt_misc).
    Other,
}

/// The cached facts of one file.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    /// Its format, and what the format says.
    pub(super) format: Format,
    /// Its SHA-256, when a policy lists digests and the file was small enough
    /// to hash while a caller waits.
    pub(super) sha256: Option<String>,
}

/// A file's identity as far as its content goes: a rewrite changes the size
/// or the times, a replacement the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl FileKey {
    fn of(resolved: &Resolved) -> FileKey {
        let stat = &resolved.stat;
        FileKey {
            dev: stat.st_dev,
            ino: stat.st_ino,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime: stat.st_mtime,
            mtime_nsec: stat.st_mtime_nsec,
            ctime: stat.st_ctime,
            ctime_nsec: stat.st_ctime_nsec,
        }
    }
}

/// Facts of files, by identity, bounded to [`CACHE_CAPACITY`] entries.
#[derive(Default)]
pub(super) struct FileCache {
    entries: Mutex<HashMap<FileKey, Arc<Facts>>>,
}

impl FileCache {
    /// The cached facts of a resolved file, computed on a miss. The key comes
    /// from the status taken when the file was located; the file is opened for
    /// reading only on a miss, after `on_miss` has run.
    pub(super) fn facts(
        &self,
        policy: &Policy,
        resolved: &Resolved,
        on_miss: &dyn Fn(),
    ) -> Option<Arc<Facts>> {
        let stat = &resolved.stat;
        if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        let key = FileKey::of(resolved);
        let want_digest = !policy.catalogue.sha256.is_empty();
        if let Ok(cache) = self.entries.lock() {
            if let Some(facts) = cache.get(&key) {
                if facts.sha256.is_some() || !want_digest {
                    return Some(Arc::clone(facts));
                }
            }
        }
        on_miss();
        let file = resolved.open().ok()?;
        let file = &file;
        let facts = Arc::new(Facts {
            format: read_format(file),
            // Hashing is the one unbounded step a decision could take: only
            // files up to MAX_DECISION_HASH_BYTES are hashed while the caller
            // waits (larger catalogued binaries are matched by the exec probe,
            // which hashes off the decision path).
            sha256: (want_digest && size <= MAX_DECISION_HASH_BYTES)
                .then(|| sha256_hex(file))
                .flatten(),
        });
        // A file changed within the last moments may change again within the
        // timestamp granularity of older kernels: do not trust a cache entry
        // keyed on its times yet.
        let settled = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|now| now.as_secs() as i64 - stat.st_ctime >= 2)
            .unwrap_or(false);
        if !settled {
            return Some(facts);
        }
        if let Ok(mut cache) = self.entries.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&facts));
        }
        Some(facts)
    }

    /// Whether the facts of `resolved` are held, as complete as `policy`
    /// wants them: its content was read and judged, and is remembered.
    pub(super) fn holds(&self, policy: &Policy, resolved: &Resolved) -> bool {
        let want_digest = !policy.catalogue.sha256.is_empty();
        self.entries.lock().is_ok_and(|cache| {
            cache
                .get(&FileKey::of(resolved))
                .is_some_and(|facts| facts.sha256.is_some() || !want_digest)
        })
    }

    /// Entries held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .map(|entries| entries.len())
            .unwrap_or(0)
    }
}

/// The format of `file`, from its first bytes.
fn read_format(file: &File) -> Format {
    let mut head = [0u8; HEADER_BYTES];
    let n = read_head(file, &mut head);
    let head = &head[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        return parse_shebang(line).map_or(Format::Other, Format::Script);
    }
    if head.starts_with(b"\x7fELF") {
        // No dynamic section (a static program) or none the loader could
        // use: it links nothing, and that is all there is to know.
        let dynamic = elf_dynamic(file).unwrap_or(Dynamic {
            needed: Vec::new(),
            soname: None,
            complete: true,
        });
        let loader = dynamic
            .soname
            .as_deref()
            .is_some_and(|s| is_loader_name(s.as_bytes()));
        return Format::Elf {
            dynamic,
            loader,
            markers: scan(file),
        };
    }
    Format::Other
}

/// Up to `buf.len()` bytes from the start of `file`; the count read.
fn read_head(file: &File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    //! The cache through the classifier: answers must follow every change of
    //! a file's content, and the cache must stay bounded.

    use std::fs;
    use std::path::Path;

    use sniffguard_common::policy::Policy;

    use super::*;
    use crate::classify::testutil::*;
    use crate::classify::{Classifier, Evidence};

    #[test]
    fn cache_returns_the_same_answer_and_follows_rewrites() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let path = scratch.copy(Path::new("/bin/ls"), "tool");
        let classifier = Classifier::new();
        let policy = Policy::builtin().unwrap();
        let run =
            |classifier: &Classifier| classify_with(classifier, &policy, bytes(&path), &[b"x"]);

        assert_eq!(run(&classifier), []);
        assert_eq!(run(&classifier), []);
        // Rewritten in place (same inode, new size and times).
        fs::write(&path, fs::read(tcpdump).unwrap()).unwrap();
        assert_links_libpcap(&run(&classifier));
        assert_links_libpcap(&run(&classifier));
        fs::write(&path, fs::read("/bin/ls").unwrap()).unwrap();
        assert_eq!(run(&classifier), []);
        // Replaced by a rename (new inode).
        let staged = scratch.copy(tcpdump, "staged");
        fs::rename(&staged, &path).unwrap();
        assert_links_libpcap(&run(&classifier));
    }

    #[test]
    fn cache_follows_a_same_size_rewrite() {
        // Two scripts of the same length: only the times tell them apart.
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let benign = scratch.copy(Path::new("/bin/ls"), "lsdump0");
        let sniffer_text = format!("#!{}\n", named.display());
        let benign_text = format!("#!{}\n", benign.display());
        assert_eq!(sniffer_text.len(), benign_text.len());
        let script = scratch.write("run.sh", benign_text.as_bytes());
        let classifier = Classifier::new();
        let policy = Policy::builtin().unwrap();
        let run = || classify_with(&classifier, &policy, bytes(&script), &[b"x"]);
        assert_eq!(run(), []);
        fs::write(&script, sniffer_text.as_bytes()).unwrap();
        assert!(
            matches!(run().as_slice(), [Evidence::Interpreter { .. }]),
            "{:?}",
            run()
        );
        fs::write(&script, benign_text.as_bytes()).unwrap();
        assert_eq!(run(), []);
    }

    #[test]
    fn cache_is_bounded() {
        // More distinct files than the cache holds: it is emptied and refilled, and
        // answers stay right across the reset.
        let scratch = Scratch::new();
        let classifier = Classifier::new();
        let policy = Policy::builtin().unwrap();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let sniffer_script = scratch.write("s", format!("#!{}\n", named.display()).as_bytes());
        for i in 0..CACHE_CAPACITY + 10 {
            let path = scratch.write(&format!("f{i}"), b"#!/bin/sh\n");
            assert_eq!(
                classify_with(&classifier, &policy, bytes(&path), &[b"x"]),
                []
            );
            if i % 1000 == 0 {
                let evidence = classify_with(&classifier, &policy, bytes(&sniffer_script), &[b"x"]);
                assert!(matches!(
                    evidence.as_slice(),
                    [Evidence::Interpreter { .. }]
                ));
            }
            let len = classifier.cache.len();
            assert!(len <= CACHE_CAPACITY, "{len}");
        }
    }
}
