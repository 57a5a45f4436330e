//! Deciding whether an executable, or a socket, is a sniffer.
//!
//! Evidence, strongest first (DESIGN.md): behaviour (capture sockets), the file
//! that runs (catalogued name after symlinks, an ELF linking a capture library, a
//! listed SHA-256, a script whose interpreter is a sniffer, the dynamic loader
//! running a sniffer), then the name it was given. One classifier serves every
//! mechanism, so the seccomp path and the alerts agree.
//!
//! What a file *is* (ELF and its libraries, script and its interpreter, digest)
//! depends only on its content, so it is cached by device, inode, size and
//! modification time: a container's second `ls` costs no parsing.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Mutex;

use object::read::elf::{Dyn, FileHeader};
use object::{elf, Endianness, FileKind, ReadCache};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sniffguard_common::policy::Policy;

use crate::resolve::{self, Base, Resolved};

/// How deep interpreter and loader indirections are followed (the kernel itself
/// allows 4 levels of interpreters).
const MAX_DEPTH: usize = 4;

/// Bytes read to recognise a file's format and its `#!` line.
const HEADER_BYTES: usize = 256;

/// Largest file hashed for the policy's SHA-256 list.
pub const MAX_HASHED_BYTES: u64 = 128 * 1024 * 1024;

/// Cache entries kept before the cache is emptied and refilled.
const CACHE_CAPACITY: usize = 4096;

/// Why something was judged a sniffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// The file's name, after symlinks, is in the catalogue.
    CatalogueName {
        /// The name.
        name: String,
    },
    /// The ELF file links a capture library.
    LinksLibpcap {
        /// The `DT_NEEDED` entry.
        library: String,
    },
    /// The file's SHA-256 is on the policy's list.
    Sha256 {
        /// The digest.
        digest: String,
    },
    /// A script whose interpreter is a sniffer.
    Interpreter {
        /// The interpreter line's program.
        interpreter: String,
        /// Why the interpreter is a sniffer.
        because: Box<Evidence>,
    },
    /// The dynamic loader asked to run a sniffer.
    Loader {
        /// The program the loader was given.
        program: String,
        /// Why that program is a sniffer.
        because: Box<Evidence>,
    },
    /// The path or `argv[0]` as given names a catalogued tool.
    NameGiven {
        /// The name.
        name: String,
    },
    /// A packet socket (`AF_PACKET`, or the obsolete `AF_INET`/`SOCK_PACKET`).
    PacketSocket {
        /// The address family.
        family: String,
        /// The socket type.
        socket_type: u32,
    },
    /// A raw IP socket.
    RawSocket {
        /// The address family.
        family: String,
        /// The socket type.
        socket_type: u32,
    },
}

/// What a file is, independent of where it was found.
#[derive(Debug, Clone)]
enum Format {
    /// An ELF object; the capture library it links, if any.
    Elf { capture_library: Option<String> },
    /// A `#!` script.
    Script {
        interpreter: Vec<u8>,
        argument: Option<Vec<u8>>,
    },
    /// Anything else (the kernel will refuse or hand it to binfmt_misc).
    Other,
}

#[derive(Debug, Clone)]
struct Facts {
    format: Format,
    sha256: Option<String>,
}

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

/// Where an exec happens: what is needed to resolve further files (interpreters,
/// loader arguments) the way the process would.
pub struct ExecSite<'a> {
    /// The process's root.
    pub root: &'a OwnedFd,
    /// The calling thread.
    pub tid: u32,
    /// The full argument list, read lazily (only the loader needs it).
    pub argv: &'a dyn Fn() -> Vec<Vec<u8>>,
}

/// The classifier, with its file cache.
#[derive(Default)]
pub struct Classifier {
    cache: Mutex<HashMap<FileKey, Facts>>,
}

/// Is `name` one of the dynamic loader's file names?
fn is_loader_name(name: &[u8]) -> bool {
    name.starts_with(b"ld-linux")
        || name.starts_with(b"ld.so")
        || name.starts_with(b"ld64.so")
        || name.starts_with(b"ld-musl-")
        || (name.starts_with(b"ld-") && name.windows(3).any(|w| w == b".so"))
}

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Classifier {
    /// A classifier with an empty cache.
    pub fn new() -> Classifier {
        Classifier::default()
    }

    /// Evidence that an exec of `given` (argv\[0\] `argv0`), which resolved to
    /// `resolved`, runs a sniffer. Empty means benign.
    pub fn classify_exec(
        &self,
        policy: &Policy,
        site: &ExecSite<'_>,
        given: &[u8],
        argv0: Option<&[u8]>,
        resolved: Option<&Resolved>,
    ) -> Vec<Evidence> {
        let mut evidence = match resolved {
            Some(resolved) => self.classify_file(policy, site, resolved, 0),
            None => Vec::new(),
        };
        for name in [Some(basename(given)), argv0.map(basename)]
            .into_iter()
            .flatten()
        {
            if policy.is_catalogued(name) {
                let found = Evidence::NameGiven { name: text(name) };
                if !evidence.contains(&found) {
                    evidence.push(found);
                }
            }
        }
        evidence
    }

    fn classify_file(
        &self,
        policy: &Policy,
        site: &ExecSite<'_>,
        resolved: &Resolved,
        depth: usize,
    ) -> Vec<Evidence> {
        let mut evidence = Vec::new();
        let name = resolved.basename();
        if policy.is_catalogued(name) {
            evidence.push(Evidence::CatalogueName { name: text(name) });
        }
        let Some(facts) = self.facts(policy, &resolved.file) else {
            return evidence;
        };
        if let Some(digest) = &facts.sha256 {
            if policy.catalogue.sha256.iter().any(|d| d == digest) {
                evidence.push(Evidence::Sha256 {
                    digest: digest.clone(),
                });
            }
        }
        match &facts.format {
            Format::Elf {
                capture_library: Some(library),
            } if policy.catalogue.libpcap => evidence.push(Evidence::LinksLibpcap {
                library: library.clone(),
            }),
            Format::Script {
                interpreter,
                argument,
            } if depth < MAX_DEPTH => {
                if let Some(because) =
                    self.classify_interpreter(policy, site, interpreter, argument.as_deref(), depth)
                {
                    evidence.push(Evidence::Interpreter {
                        interpreter: text(interpreter),
                        because: Box::new(because),
                    });
                }
            }
            _ => {}
        }
        if depth < MAX_DEPTH && is_loader_name(name) {
            if let Some((program, because)) = self.classify_loader_target(policy, site, depth) {
                evidence.push(Evidence::Loader {
                    program: text(&program),
                    because: Box::new(because),
                });
            }
        }
        evidence
    }

    /// A script's interpreter: resolved and classified like the script itself;
    /// for `#!/usr/bin/env NAME`, NAME is judged by its name.
    fn classify_interpreter(
        &self,
        policy: &Policy,
        site: &ExecSite<'_>,
        interpreter: &[u8],
        argument: Option<&[u8]>,
        depth: usize,
    ) -> Option<Evidence> {
        if basename(interpreter) == b"env" {
            let program = argument?.split(|b| b.is_ascii_whitespace()).find(|word| {
                !word.is_empty() && !word.starts_with(b"-") && !word.contains(&b'=')
            })?;
            if policy.is_catalogued(basename(program)) {
                return Some(Evidence::NameGiven {
                    name: text(basename(program)),
                });
            }
        }
        let resolved = resolve::resolve(site.root, site.tid, Base::Cwd, interpreter).ok()?;
        self.classify_file(policy, site, &resolved, depth + 1)
            .into_iter()
            .next()
    }

    /// `ld.so [OPTIONS] PROGRAM [ARGS]`: the program the loader will map.
    fn classify_loader_target(
        &self,
        policy: &Policy,
        site: &ExecSite<'_>,
        depth: usize,
    ) -> Option<(Vec<u8>, Evidence)> {
        let argv = (site.argv)();
        let program = loader_program(&argv)?;
        if let Ok(resolved) = resolve::resolve(site.root, site.tid, Base::Cwd, program) {
            if let Some(found) = self
                .classify_file(policy, site, &resolved, depth + 1)
                .into_iter()
                .next()
            {
                return Some((program.to_vec(), found));
            }
        }
        policy.is_catalogued(basename(program)).then(|| {
            (
                program.to_vec(),
                Evidence::NameGiven {
                    name: text(basename(program)),
                },
            )
        })
    }

    /// The cached facts of `file`, computed on a miss.
    fn facts(&self, policy: &Policy, file: &File) -> Option<Facts> {
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let key = FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        };
        let want_digest = !policy.catalogue.sha256.is_empty();
        if let Ok(cache) = self.cache.lock() {
            if let Some(facts) = cache.get(&key) {
                if facts.sha256.is_some() || !want_digest {
                    return Some(facts.clone());
                }
            }
        }
        let facts = Facts {
            format: read_format(file),
            sha256: want_digest.then(|| sha256_hex(file)).flatten(),
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, facts.clone());
        }
        Some(facts)
    }
}

/// The program argument of a dynamic loader command line.
fn loader_program(argv: &[Vec<u8>]) -> Option<&[u8]> {
    const WITH_VALUE: [&[u8]; 7] = [
        b"--library-path",
        b"--inhibit-rpath",
        b"--audit",
        b"--preload",
        b"--argv0",
        b"--glibc-hwcaps-prepend",
        b"--glibc-hwcaps-mask",
    ];
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg.as_slice() == b"--" {
            return args.next().map(Vec::as_slice);
        }
        if arg.starts_with(b"--") {
            if WITH_VALUE.contains(&arg.as_slice()) {
                args.next();
            }
            continue;
        }
        return Some(arg);
    }
    None
}

fn read_format(file: &File) -> Format {
    let mut head = [0u8; HEADER_BYTES];
    let n = read_head(file, &mut head);
    let head = &head[..n];
    if let Some(line) = head.strip_prefix(b"#!") {
        return parse_shebang(line);
    }
    if head.starts_with(&elf::ELFMAG) {
        return Format::Elf {
            capture_library: elf_capture_library(file),
        };
    }
    Format::Other
}

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

/// `#!interpreter [argument]`, as the kernel splits it (one optional argument,
/// the rest of the line).
fn parse_shebang(line: &[u8]) -> Format {
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.trim_ascii();
    let (interpreter, rest) = match line.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(at) => (&line[..at], Some(line[at..].trim_ascii())),
        None => (line, None),
    };
    if interpreter.is_empty() {
        return Format::Other;
    }
    Format::Script {
        interpreter: interpreter.to_vec(),
        argument: rest.filter(|r| !r.is_empty()).map(<[u8]>::to_vec),
    }
}

/// The first `DT_NEEDED` entry that names a capture library. Only the section
/// table, the dynamic section and its string table are read, through a cache
/// of the file's pages.
fn elf_capture_library(file: &File) -> Option<String> {
    let data = ReadCache::new(file);
    let needed = match FileKind::parse(&data).ok()? {
        FileKind::Elf64 => elf_needed::<elf::FileHeader64<Endianness>>(&data),
        FileKind::Elf32 => elf_needed::<elf::FileHeader32<Endianness>>(&data),
        _ => None,
    }?;
    needed
        .into_iter()
        .find(|lib| lib.starts_with("libpcap.so") || lib.starts_with("libpcap"))
}

fn elf_needed<H: FileHeader<Endian = Endianness>>(data: &ReadCache<&File>) -> Option<Vec<String>> {
    let header = H::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, data).ok()?;
    let (dynamic, link) = sections.dynamic(endian, data).ok()??;
    let strings = sections.strings(endian, data, link).ok()?;
    Some(
        dynamic
            .iter()
            .filter(|d| d.tag32(endian) == Some(elf::DT_NEEDED))
            .filter_map(|d| d.val32(endian).and_then(|at| strings.get(at).ok()))
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect(),
    )
}

/// SHA-256 of a file, or `None` past [`MAX_HASHED_BYTES`] or on a read error.
pub fn sha256_hex(file: &File) -> Option<String> {
    if file.metadata().ok()?.len() > MAX_HASHED_BYTES {
        return None;
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
        if offset > MAX_HASHED_BYTES {
            return None;
        }
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
