//! What a copy of libpcap linked into a file leaves behind.
//!
//! A program built with `libpcap.a` names no capture library: its dynamic
//! section, if it has one, lists libc at most. What it cannot shed without
//! rebuilding libpcap are libpcap's own strings, kept in the read-only data
//! whether or not the file is stripped. This room looks for them, once per
//! file identity (the cache keeps the answer), in a bounded prefix of the
//! file. A libpcap rebuilt with those strings changed gets past this; what it
//! does on the wire (a packet socket) does not.
//!
//! The same pass notes whether the file names libpcap's capture functions
//! (in its dynamic string table, for a program that imports them): only such
//! a program is worth looking up its libraries in the container for, which
//! keeps that lookup off every other exec.

use std::fs::File;
use std::os::unix::fs::FileExt;

use memchr::memmem::Finder;

/// Strings of libpcap 1.x found in every program that links it statically,
/// stripped or not: the banner `pcap_lib_version()` formats (pcap.c) and an
/// error text of the same file. Each is long and specific enough that no
/// other program carries it by chance.
const MARKERS: [&str; 2] = ["libpcap version ", "The pcap_t has not been activated"];

/// The functions a program calls to open a live capture through libpcap:
/// a program linking a renamed libpcap still imports them by these names.
const CALLS: [&str; 2] = ["pcap_open_live", "pcap_create"];

/// What the search found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Found {
    /// The first of libpcap's own strings found.
    pub(super) libpcap: Option<&'static str>,
    /// Whether one of libpcap's capture functions is named.
    pub(super) calls: bool,
}

/// Bytes of a file searched: the read-only data of a static program follows
/// its code, ~1 MiB into a small one (a C program opening one capture: 0.95
/// MiB of 1.2 MiB). A file is searched once per identity, at a few GB/s.
pub(super) const MAX_SCANNED_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes read at a time.
const CHUNK: usize = 64 * 1024;

/// What every string looked for has in common: one pass finds its
/// occurrences (none, in nearly every file) and only those are looked at.
const COMMON: &[u8] = b"pcap";

/// libpcap's strings and capture function names in the first
/// [`MAX_SCANNED_BYTES`] of `file`.
pub(super) fn scan(file: &File) -> Found {
    let needles: Vec<(&'static str, usize)> = MARKERS
        .iter()
        .chain(CALLS.iter())
        .filter_map(|needle| {
            let at = Finder::new(COMMON).find(needle.as_bytes())?;
            Some((*needle, at))
        })
        .collect();
    let finder = Finder::new(COMMON);
    let longest = needles.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    // Each window keeps the last `2 * longest` bytes of the one before, so a
    // string split by a chunk boundary is still seen whole, from before its
    // common part to after it.
    let keep = 2 * longest;
    let mut window = vec![0u8; keep + CHUNK];
    let mut held = 0;
    let mut offset = 0u64;
    let mut found = Found::default();
    while offset < MAX_SCANNED_BYTES {
        let want = usize::try_from(MAX_SCANNED_BYTES - offset)
            .unwrap_or(CHUNK)
            .min(CHUNK);
        let got = match file.read_at(&mut window[held..held + want], offset) {
            Ok(0) => break,
            Ok(got) => got,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let filled = held + got;
        let text = &window[..filled];
        for hit in finder.find_iter(text) {
            for (needle, at) in &needles {
                let matches = hit
                    .checked_sub(*at)
                    .and_then(|start| text.get(start..start + needle.len()))
                    .is_some_and(|candidate| candidate == needle.as_bytes());
                if !matches {
                    continue;
                }
                if MARKERS.contains(needle) {
                    found.libpcap = found.libpcap.or(Some(*needle));
                } else {
                    found.calls = true;
                }
            }
        }
        if found.libpcap.is_some() {
            // The strongest answer: nothing further changes what is done.
            break;
        }
        let tail = filled.min(keep);
        window.copy_within(filled - tail..filled, 0);
        held = tail;
        offset += got as u64;
    }
    found
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(content: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content).unwrap();
        file
    }

    fn libpcap_marker(file: &File) -> Option<&'static str> {
        scan(file).libpcap
    }

    #[test]
    fn capture_function_names_are_noted() {
        assert!(!scan(&file_with(b"\0pcap_open\0pcap_loop\0")).calls);
        assert!(scan(&file_with(b"\0pcap_open_live\0")).calls);
        assert!(scan(&file_with(b"\0pcap_create\0pcap_activate\0")).calls);
        assert!(scan(&file_with(b"\0pcap_create\0")).libpcap.is_none());
    }

    #[test]
    fn markers_are_found_anywhere_in_the_scanned_prefix() {
        assert_eq!(libpcap_marker(&file_with(b"")), None);
        assert_eq!(libpcap_marker(&file_with(b"libpcap versio")), None);
        assert_eq!(
            libpcap_marker(&file_with(b"\0libpcap version 1.10.3\0")),
            Some("libpcap version ")
        );
        // Across every chunk boundary position.
        for split in 1..MARKERS[1].len() {
            let mut content = vec![b'x'; CHUNK - split];
            content.extend_from_slice(MARKERS[1].as_bytes());
            content.extend_from_slice(&[b'y'; 100]);
            assert_eq!(
                libpcap_marker(&file_with(&content)),
                Some(MARKERS[1]),
                "{split}"
            );
        }
    }

    #[test]
    fn the_scan_stops_at_its_bound() {
        let limit = usize::try_from(MAX_SCANNED_BYTES).unwrap();
        let mut content = vec![0u8; limit - MARKERS[0].len()];
        content.extend_from_slice(MARKERS[0].as_bytes());
        assert_eq!(libpcap_marker(&file_with(&content)), Some(MARKERS[0]));
        content.insert(0, 0);
        assert_eq!(libpcap_marker(&file_with(&content)), None);
    }

    #[test]
    fn debian_libpcap_and_a_benign_program() {
        let libpcap = std::path::Path::new("/usr/lib/x86_64-linux-gnu/libpcap.so.0.8");
        if libpcap.is_file() {
            assert!(libpcap_marker(&File::open(libpcap).unwrap()).is_some());
        } else {
            eprintln!("SKIPPED: {} missing", libpcap.display());
        }
        assert_eq!(libpcap_marker(&File::open("/bin/ls").unwrap()), None);
    }
}
