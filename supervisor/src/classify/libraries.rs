//! Whether an ELF file links a capture library.
//!
//! First by the names it asks for (`DT_NEEDED`, matched by their last path
//! component against the policy's library prefixes). A name that does not say
//! (a copy of libpcap renamed `libnotpcap.so.1`, or named by a path) is then
//! looked up the way the loader would find it, inside the container's root:
//! the library file counts as a capture library when its own `DT_SONAME` is
//! one, or when it carries libpcap's strings (a copy given a new soname too).
//! What that file is comes from the same cache as any executable, so each
//! library is read once per identity; finding it is done for every exec, since
//! the container can swap the file between two of them.

use std::os::fd::OwnedFd;

use sniffguard_common::policy::Policy;

use super::cache::{FileCache, Format};
use crate::resolve::{self, Base};

/// Directories searched for a library named without a `/`: glibc's trusted
/// system directories (multiarch first, as Debian and Ubuntu build it), the
/// 64-bit ones other distributions use, and `/usr/local/lib`, which their
/// `ld.so.conf` lists. `DT_RUNPATH`, `LD_LIBRARY_PATH` and other `ld.so.conf`
/// entries are not followed.
const SEARCH_DIRS: [&str; 7] = [
    MULTIARCH[0],
    MULTIARCH[1],
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// The multiarch directories of the architecture the supervisor runs on
/// (containers run the node's architecture).
#[cfg(target_arch = "aarch64")]
const MULTIARCH: [&str; 2] = ["/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];
#[cfg(not(target_arch = "aarch64"))]
const MULTIARCH: [&str; 2] = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"];

/// A capture library an ELF file links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Linked {
    /// The `DT_NEEDED` entry.
    pub(super) library: String,
    /// How the library file showed itself to be one, when its name did not.
    pub(super) found_as: Option<String>,
}

/// Where further files of the exec are looked up: the container's root (if it
/// can be had) and the thread whose cwd relative names start from.
pub(super) struct LookupRoot<'a> {
    /// The root, opened on first use.
    pub(super) root: &'a dyn Fn() -> Option<&'a OwnedFd>,
    /// The calling thread.
    pub(super) tid: u32,
}

/// Does `name`'s last path component start with one of the policy's capture
/// library prefixes?
fn named_capture_library(policy: &Policy, name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    policy
        .catalogue
        .libraries
        .iter()
        .any(|prefix| base.starts_with(prefix.as_str()))
}

/// The first of `needed` that is a capture library: by name, else, for a
/// program that names libpcap's capture functions (`calls`), by the library
/// file found inside the container's root. Any other program links no
/// libpcap it could capture with, and costs no lookup.
pub(super) fn capture_library(
    cache: &FileCache,
    policy: &Policy,
    needed: &[String],
    calls: bool,
    at: &LookupRoot<'_>,
) -> Option<Linked> {
    if let Some(library) = needed
        .iter()
        .find(|name| named_capture_library(policy, name))
    {
        return Some(Linked {
            library: library.clone(),
            found_as: None,
        });
    }
    if needed.is_empty() || !calls {
        return None;
    }
    let root = (at.root)()?;
    needed.iter().find_map(|library| {
        let found_as = library_file_shows(cache, policy, root, at.tid, library)?;
        Some(Linked {
            library: library.clone(),
            found_as: Some(found_as),
        })
    })
}

/// Where the loader would find `library` and, when that file is a capture
/// library, how it shows it.
fn library_file_shows(
    cache: &FileCache,
    policy: &Policy,
    root: &OwnedFd,
    tid: u32,
    library: &str,
) -> Option<String> {
    let (path, resolved) = if library.contains('/') {
        // ld.so opens a name with a slash as it is: absolute, or from the cwd.
        let resolved = resolve::resolve(root, tid, Base::Cwd, library.as_bytes()).ok()?;
        (library.to_owned(), resolved)
    } else {
        // The first directory holding the name is where the loader stops.
        SEARCH_DIRS.iter().find_map(|dir| {
            let path = format!("{dir}/{library}");
            let resolved = resolve::resolve(root, tid, Base::Cwd, path.as_bytes()).ok()?;
            Some((path, resolved))
        })?
    };
    let facts = cache.facts(policy, &resolved, &|| {})?;
    let Format::Elf {
        dynamic, markers, ..
    } = &facts.format
    else {
        return None;
    };
    if let Some(soname) = dynamic
        .soname
        .as_deref()
        .filter(|soname| named_capture_library(policy, soname))
    {
        return Some(format!("{path}: DT_SONAME {soname}"));
    }
    markers
        .libpcap
        .map(|marker| format!("{path}: contains \"{marker}\""))
}

#[cfg(test)]
mod tests {
    //! Libraries found by name, by path and by what the library file says of
    //! itself, with this test process's root standing for the container's.

    use std::path::Path;

    use crate::classify::testutil::*;
    use crate::classify::{Classifier, Evidence};

    /// The evidence for an ELF image that needs `needed`, written to `scratch`.
    fn classify_needing(scratch: &Scratch, needed: &[&str]) -> Vec<Evidence> {
        let path = scratch.write("program", &elf_with(needed, None, b"pcap_create\0").0);
        classify(&path)
    }

    fn found_as(evidence: &[Evidence]) -> String {
        match evidence {
            [Evidence::LinksLibpcap {
                found_as: Some(found_as),
                ..
            }] => found_as.clone(),
            other => panic!("expected LinksLibpcap with found_as, got {other:?}"),
        }
    }

    #[test]
    fn a_library_named_by_a_path_is_matched_by_its_last_component() {
        let scratch = Scratch::new();
        let evidence = classify_needing(&scratch, &["/opt/capture/libpcap.so.1"]);
        assert_eq!(
            evidence,
            [Evidence::LinksLibpcap {
                library: "/opt/capture/libpcap.so.1".into(),
                found_as: None,
            }]
        );
    }

    #[test]
    fn a_renamed_library_is_matched_by_its_own_soname() {
        let scratch = Scratch::new();
        let lib = scratch.write(
            "libnotpcap.so.1",
            &elf_with(&["libc.so.6"], Some("libpcap.so.1"), b"").0,
        );
        let lib = lib.to_str().unwrap();
        let found = found_as(&classify_needing(&scratch, &["libc.so.6", lib]));
        assert_eq!(found, format!("{lib}: DT_SONAME libpcap.so.1"));
    }

    #[test]
    fn a_library_renamed_soname_and_all_is_matched_by_libpcap_s_strings() {
        let scratch = Scratch::new();
        let lib = scratch.write(
            "libnot.so.1",
            &elf_with(&[], Some("libnot.so.1"), b"libpcap version 1.10.3\0").0,
        );
        let lib = lib.to_str().unwrap();
        let found = found_as(&classify_needing(&scratch, &[lib]));
        assert_eq!(found, format!("{lib}: contains \"libpcap version \""));

        // Debian's own libpcap, copied under another name.
        let real = Path::new("/usr/lib/x86_64-linux-gnu/libpcap.so.0.8");
        if !real.is_file() {
            eprintln!("SKIPPED: {} missing", real.display());
            return;
        }
        let copy = scratch.copy(real, "libquiet.so.3");
        let copy = copy.to_str().unwrap();
        let found = found_as(&classify_needing(&scratch, &[copy]));
        assert_eq!(found, format!("{copy}: DT_SONAME libpcap.so.0.8"));
    }

    #[test]
    fn benign_libraries_and_missing_ones_give_nothing() {
        let scratch = Scratch::new();
        let lib = scratch.write("libfoo.so.1", &elf_with(&[], Some("libfoo.so.1"), b"").0);
        let lib = lib.to_str().unwrap();
        let missing = scratch.path("libgone.so.1");
        let missing = missing.to_str().unwrap();
        // Plain names are looked up in the system directories of the root.
        let evidence = classify_needing(&scratch, &[lib, missing, "libc.so.6", "libnowhere.so.9"]);
        assert_eq!(evidence, []);
    }

    #[test]
    fn a_program_that_names_no_capture_function_costs_no_lookup() {
        // The renamed libpcap of the test above, needed by a program that
        // does not call libpcap's capture functions: it cannot capture through
        // the library, so the library is not looked up.
        let scratch = Scratch::new();
        let lib = scratch.write(
            "libnotpcap.so.1",
            &elf_with(&[], Some("libpcap.so.1"), b"").0,
        );
        let program = scratch.write("program", &elf_with(&[lib.to_str().unwrap()], None, b"").0);
        assert_eq!(classify(&program), []);
    }

    #[test]
    fn a_static_copy_of_libpcap_is_found_by_its_strings() {
        let scratch = Scratch::new();
        let program = scratch.write(
            "static",
            &elf_with(&[], None, b"\0libpcap version 1.10.3 (with TPACKET_V3)\0").0,
        );
        assert_eq!(
            classify(&program),
            [Evidence::StaticLibpcap {
                marker: "libpcap version ".into()
            }]
        );
        // The policy's switch covers it too.
        let off = policy_with_catalogue("names = [\"tcpdump\"]\nlibpcap = false");
        let evidence = classify_with(&Classifier::new(), &off, bytes(&program), &[b"x"]);
        assert_eq!(evidence, []);
        // A program that merely names a capture function is not one.
        let benign = scratch.write("benign", &elf_with(&[], None, b"\0pcap_open_live\0").0);
        assert_eq!(classify(&benign), []);
    }
}
