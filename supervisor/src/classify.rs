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
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sniffguard_common::policy::Policy;

use crate::resolve::{self, Base, Resolved};

/// How deep interpreter and loader indirections are followed (the kernel itself
/// allows 4 levels of interpreters).
const MAX_DEPTH: usize = 4;

/// Bytes read to recognise a file's format and its `#!` line.
const HEADER_BYTES: usize = 256;

/// Largest file hashed for alerts and forensic records.
pub const MAX_HASHED_BYTES: u64 = 128 * 1024 * 1024;

/// Largest file hashed while a seccomp caller waits for its answer (about
/// 10 ms here): runc retries an entrypoint exec answered later than that.
pub const MAX_DECISION_HASH_BYTES: u64 = 8 * 1024 * 1024;

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
    /// An interface put into promiscuous mode.
    Promiscuous {
        /// How: `PACKET_ADD_MEMBERSHIP` or `SIOCSIFFLAGS`.
        method: String,
    },
    /// A packet filter attached to a packet socket.
    SocketFilter {
        /// `SO_ATTACH_FILTER` or `SO_ATTACH_BPF`.
        option: String,
    },
    /// The file an exec names could not be resolved or read, for a reason
    /// other than its absence: an enforce environment refuses what it cannot
    /// judge.
    Unresolved {
        /// Why.
        reason: String,
    },
    /// A container that started while no supervisor answered (not a sniffer:
    /// a gap in supervision the operator must know of).
    StartedUnsupervised {
        /// What happened and what to do.
        reason: String,
    },
    /// A request to the supervisor's own sockets from where none may come
    /// (inside a watched container, another namespace): an attempt to change
    /// what the supervisor enforces.
    SupervisorRequest {
        /// What was asked (`grant`, `register`, …).
        request: String,
        /// Why it was refused.
        refused_because: String,
    },
}

/// What a file is, independent of where it was found.
#[derive(Debug, Clone)]
enum Format {
    /// An ELF object: the libraries it links, and whether it is a dynamic
    /// loader (by its `DT_SONAME`, so a renamed copy is still one).
    Elf { needed: Vec<String>, loader: bool },
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

/// The root further files of an exec are resolved in: given, or opened from
/// `/proc/TID/root` the first time one is needed. Most execs need none (only
/// scripts and the dynamic loader name another file), and opening a fresh
/// process's `/proc` entry is one of the dearer steps of classifying an event.
pub enum SiteRoot<'a> {
    /// Already open.
    Given(&'a OwnedFd),
    /// Opened from this thread's `/proc/TID/root` on first use.
    Lazy(u32, std::cell::OnceCell<Option<OwnedFd>>),
}

impl SiteRoot<'_> {
    /// A root opened from `/proc/TID/root` when first needed.
    pub fn lazy(tid: u32) -> SiteRoot<'static> {
        SiteRoot::Lazy(tid, std::cell::OnceCell::new())
    }

    /// The root, if it can be had.
    pub fn get(&self) -> Option<&OwnedFd> {
        match self {
            SiteRoot::Given(root) => Some(root),
            SiteRoot::Lazy(tid, cell) => {
                cell.get_or_init(|| resolve::open_root(*tid).ok()).as_ref()
            }
        }
    }
}

impl<'a> From<&'a OwnedFd> for SiteRoot<'a> {
    fn from(root: &'a OwnedFd) -> SiteRoot<'a> {
        SiteRoot::Given(root)
    }
}

/// Where an exec happens: what is needed to resolve further files (interpreters,
/// loader arguments) the way the process would.
pub struct ExecSite<'a> {
    /// The process's root.
    pub root: SiteRoot<'a>,
    /// The calling thread.
    pub tid: u32,
    /// The full argument list, read lazily (only the loader needs it).
    pub argv: &'a dyn Fn() -> Vec<Vec<u8>>,
}

/// The classifier, with its file cache.
#[derive(Default)]
pub struct Classifier {
    cache: Mutex<HashMap<FileKey, Arc<Facts>>>,
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
        let Some(facts) = self.facts(policy, resolved) else {
            return evidence;
        };
        if let Some(digest) = &facts.sha256 {
            if policy.catalogue.sha256.iter().any(|d| d == digest) {
                evidence.push(Evidence::Sha256 {
                    digest: digest.clone(),
                });
            }
        }
        let mut loader = is_loader_name(name);
        match &facts.format {
            Format::Elf {
                needed,
                loader: by_soname,
            } => {
                loader |= *by_soname;
                if policy.catalogue.libpcap {
                    if let Some(library) = needed.iter().find(|lib| {
                        policy
                            .catalogue
                            .libraries
                            .iter()
                            .any(|prefix| lib.starts_with(prefix.as_str()))
                    }) {
                        evidence.push(Evidence::LinksLibpcap {
                            library: library.clone(),
                        });
                    }
                }
            }
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
        if depth < MAX_DEPTH && loader {
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
        let root = site.root.get()?;
        let resolved = resolve::resolve(root, site.tid, Base::Cwd, interpreter).ok()?;
        // The kernel runs the interpreter as [interpreter, argument?, script,
        // args...]: that is the command line the interpreter (a loader, say)
        // acts on, not the script's own.
        let mut interpreter_argv = vec![interpreter.to_vec()];
        interpreter_argv.extend(argument.map(<[u8]>::to_vec));
        let read_args = move || interpreter_argv.clone();
        let interpreter_site = ExecSite {
            root: SiteRoot::Given(root),
            tid: site.tid,
            argv: &read_args,
        };
        self.classify_file(policy, &interpreter_site, &resolved, depth + 1)
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
        let root = site.root.get()?;
        if let Ok(resolved) = resolve::resolve(root, site.tid, Base::Cwd, program) {
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

    /// The cached facts of a resolved file, computed on a miss. The key comes
    /// from the status taken when the file was located; the file is opened for
    /// reading only on a miss.
    fn facts(&self, policy: &Policy, resolved: &Resolved) -> Option<Arc<Facts>> {
        let stat = &resolved.stat;
        if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        let key = FileKey {
            dev: stat.st_dev,
            ino: stat.st_ino,
            size,
            mtime: stat.st_mtime,
            mtime_nsec: stat.st_mtime_nsec,
            ctime: stat.st_ctime,
            ctime_nsec: stat.st_ctime_nsec,
        };
        let want_digest = !policy.catalogue.sha256.is_empty();
        if let Ok(cache) = self.cache.lock() {
            if let Some(facts) = cache.get(&key) {
                if facts.sha256.is_some() || !want_digest {
                    return Some(Arc::clone(facts));
                }
            }
        }
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
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&facts));
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
    if head.starts_with(b"\x7fELF") {
        let (needed, soname) = elf_dynamic(file).unwrap_or_default();
        return Format::Elf {
            needed,
            loader: soname
                .as_deref()
                .is_some_and(|s| is_loader_name(s.as_bytes())),
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

fn spacetab(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `#!interpreter [argument]`, split exactly as fs/binfmt_script.c does: the
/// line ends at a newline (or the end of the 256-byte header); trailing and
/// leading spaces and tabs are skipped, and only those; the interpreter ends at
/// a space, a tab or a NUL; the argument is the rest of the line as a C string.
/// Anything else (a '\r', say) is part of the name, as it is for the kernel.
fn parse_shebang(line: &[u8]) -> Format {
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let mut line = &line[..end];
    while let [rest @ .., last] = line {
        if !spacetab(*last) {
            break;
        }
        line = rest;
    }
    let start = line
        .iter()
        .position(|&b| !spacetab(b))
        .unwrap_or(line.len());
    let line = &line[start..];
    let name_end = line
        .iter()
        .position(|&b| spacetab(b) || b == 0)
        .unwrap_or(line.len());
    let interpreter = &line[..name_end];
    if interpreter.is_empty() {
        return Format::Other;
    }
    let argument = match line.get(name_end) {
        Some(&sep) if sep != 0 => {
            let rest = &line[name_end..];
            let from = rest
                .iter()
                .position(|&b| !spacetab(b))
                .unwrap_or(rest.len());
            let rest = &rest[from..];
            let to = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            Some(rest[..to].to_vec()).filter(|a| !a.is_empty())
        }
        _ => None,
    };
    Format::Script {
        interpreter: interpreter.to_vec(),
        argument,
    }
}

// -----------------------------------------------------------------------------
// ELF: the libraries a file links, read the way the dynamic loader finds them.
//
// Only the program headers matter: the kernel maps the PT_LOAD segments and
// ld.so reads its dynamic table and strings *from memory*, at addresses, so
// the section table, p_offset of PT_DYNAMIC and DT_STRSZ are all ignorable by
// a file that wants to look innocent. Each quantity below is what glibc does
// (elf/rtld.c rtld_setup_main_map, elf/dl-load.c _dl_map_object_from_fd,
// elf/get-dynamic-info.h, elf/dl-deps.c), and each read is bounded: the file is
// hostile input read while a seccomp caller waits.
// -----------------------------------------------------------------------------

/// Largest program header table: the kernel execs no file with a larger one
/// (fs/binfmt_elf.c load_elf_phdrs: `size > 65536`). That is up to 1170 ELF64
/// headers; a lower count would be a way past the classifier on kernels with
/// 64 KiB pages, which accept that many. (ld.so run as `ld.so PROGRAM` maps
/// a PROGRAM with any number, up to 65535: such a file is not read here, like
/// anything past the other caps below.)
const MAX_PHDR_TABLE_BYTES: usize = 64 * 1024;

/// Dynamic entries read looking for `DT_NULL` (64 KiB of ELF64 entries; real
/// binaries have well under a hundred: Debian's tcpdump, 29).
const MAX_DYNAMIC_ENTRIES: usize = 4096;

/// Distinct `DT_NEEDED` names read (Debian's tcpdump has 3; a binary with more than this
/// must also ship as many distinct libraries for the loader to run it).
const MAX_NEEDED: usize = 256;

/// Longest library name read: `PATH_MAX`. The loader cannot open a longer one,
/// and a capture library's prefix is in the first bytes anyway.
const MAX_NAME_BYTES: usize = 4096;

/// Most bytes [`elf_dynamic`] reads of any file: the header, the program
/// header table, the dynamic table, and the `DT_NEEDED` and `DT_SONAME` names.
const MAX_ELF_READ_BYTES: u64 =
    (64 + MAX_PHDR_TABLE_BYTES + MAX_DYNAMIC_ENTRIES * 16 + (MAX_NEEDED + 1) * MAX_NAME_BYTES)
        as u64;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_SONAME: u64 = 14;

/// Positioned reads of one file, counted, and refused past
/// [`MAX_ELF_READ_BYTES`] (which the caps above already keep to: this is the
/// backstop, and what a test checks). Nothing read is kept beyond the
/// caller's own small buffers.
struct Reader<'a> {
    file: &'a File,
    /// Bytes read so far.
    read: u64,
}

impl<'a> Reader<'a> {
    fn new(file: &'a File) -> Reader<'a> {
        Reader { file, read: 0 }
    }

    /// Bytes left to read.
    fn budget(&self) -> usize {
        usize::try_from(MAX_ELF_READ_BYTES.saturating_sub(self.read)).unwrap_or(usize::MAX)
    }

    /// Exactly `buf.len()` bytes at `offset`, or `None`.
    fn exact(&mut self, offset: u64, buf: &mut [u8]) -> Option<()> {
        if buf.len() > self.budget() {
            return None;
        }
        self.file.read_exact_at(buf, offset).ok()?;
        self.read = self.read.saturating_add(buf.len() as u64);
        Some(())
    }

    /// As much of `buf` as the file holds at `offset`: the count read (short at
    /// the end of the file, on an error, or at the end of the budget).
    fn some(&mut self, offset: u64, buf: &mut [u8]) -> usize {
        let budget = self.budget();
        let buf = match buf.get_mut(..budget) {
            Some(within) => within,
            None => buf,
        };
        let mut filled = 0;
        while filled < buf.len() {
            let Some(at) = offset.checked_add(filled as u64) else {
                break;
            };
            match self.file.read_at(&mut buf[filled..], at) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.read = self.read.saturating_add(filled as u64);
        filled
    }
}

/// ELF32 or ELF64, little- or big-endian: where the fields are and how they read.
#[derive(Clone, Copy)]
struct Layout {
    wide: bool,
    big_endian: bool,
}

impl Layout {
    /// From `e_ident`: `EI_CLASS` and `EI_DATA`.
    fn of(ident: &[u8]) -> Option<Layout> {
        let wide = match ident.get(4)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        let big_endian = match ident.get(5)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        Some(Layout { wide, big_endian })
    }

    fn header_size(self) -> usize {
        if self.wide {
            64
        } else {
            52
        }
    }

    fn phdr_size(self) -> usize {
        if self.wide {
            56
        } else {
            32
        }
    }

    fn dyn_size(self) -> usize {
        if self.wide {
            16
        } else {
            8
        }
    }

    fn bytes<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
        bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(self, bytes: &[u8], at: usize) -> Option<u16> {
        let b = Self::bytes(bytes, at)?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let b = Self::bytes(bytes, at)?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// An address, offset, size or dynamic tag/value: 4 bytes in ELF32 (a
    /// 32-bit tag is zero-extended, which changes no tag compared here), 8 in
    /// ELF64.
    fn word(self, bytes: &[u8], at: usize) -> Option<u64> {
        if !self.wide {
            return self.u32(bytes, at).map(u64::from);
        }
        let b = Self::bytes(bytes, at)?;
        Some(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
}

/// A `PT_LOAD` segment as mapped.
#[derive(Clone, Copy)]
struct Load {
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

/// The file offset holding virtual address `addr` once the `PT_LOAD` segments
/// are mapped, and how many bytes of file content follow it there; `None` for
/// an address that is unmapped or reads as zeros.
///
/// As the kernel (fs/binfmt_elf.c elf_map, elf_load) and ld.so
/// (elf/dl-map-segments.h) map them: whole pages, from the page holding
/// `p_vaddr` (file offset `p_offset` less the same in-page offset) to the end
/// of the page holding the file image's end; each segment mapped over the
/// ones before it, so the last segment covering an address wins. When
/// `p_memsz > p_filesz` the rest of that last page is zeroed (the bss).
fn file_range(loads: &[Load], page: u64, addr: u64) -> Option<(u64, u64)> {
    let page_down = |a: u64| a - a % page;
    let page_up = |a: u64| a.checked_add(page - 1).map(page_down);
    let covering = loads.iter().rev().find(|load| {
        let Some(end) = load.vaddr.checked_add(load.filesz.max(load.memsz)) else {
            return false;
        };
        addr >= page_down(load.vaddr) && page_up(end).is_some_and(|end| addr < end)
    })?;
    let image_end = covering.vaddr.checked_add(covering.filesz)?;
    let file_end = if covering.memsz > covering.filesz {
        image_end
    } else {
        page_up(image_end)?
    };
    let offset = if addr >= covering.vaddr {
        covering.offset.checked_add(addr - covering.vaddr)?
    } else {
        covering.offset.checked_sub(covering.vaddr - addr)?
    };
    Some((offset, file_end.checked_sub(addr).filter(|&n| n > 0)?))
}

/// `DT_NEEDED` entries and `DT_SONAME` of an ELF file, read the way the
/// dynamic loader finds them (see above), reading at most
/// [`MAX_ELF_READ_BYTES`].
fn elf_dynamic(file: &File) -> Option<(Vec<String>, Option<String>)> {
    elf_dynamic_from(&mut Reader::new(file))
}

fn elf_dynamic_from(reader: &mut Reader<'_>) -> Option<(Vec<String>, Option<String>)> {
    let mut header = [0u8; 64];
    let got = reader.some(0, &mut header);
    let layout = Layout::of(&header)?;
    let header = header.get(..layout.header_size())?;
    if got < header.len() {
        return None;
    }
    let (phoff, phentsize, phnum) = if layout.wide {
        (
            layout.word(header, 32)?,
            layout.u16(header, 54)?,
            layout.u16(header, 56)?,
        )
    } else {
        (
            layout.word(header, 28)?,
            layout.u16(header, 42)?,
            layout.u16(header, 44)?,
        )
    };
    // The kernel and ld.so both insist on the exact entry size.
    let phentsize = usize::from(phentsize);
    if phentsize != layout.phdr_size() {
        return None;
    }
    let table = usize::from(phnum).checked_mul(phentsize)?;
    if table == 0 || table > MAX_PHDR_TABLE_BYTES {
        return None;
    }
    let mut phdrs = vec![0u8; table];
    reader.exact(phoff, &mut phdrs)?;
    let mut loads = Vec::new();
    let mut dynamic = None;
    for ph in phdrs.chunks_exact(phentsize) {
        let (offset, vaddr, filesz, memsz) = if layout.wide {
            (
                layout.word(ph, 8)?,
                layout.word(ph, 16)?,
                layout.word(ph, 32)?,
                layout.word(ph, 40)?,
            )
        } else {
            (
                layout.word(ph, 4)?,
                layout.word(ph, 8)?,
                layout.word(ph, 16)?,
                layout.word(ph, 20)?,
            )
        };
        match layout.u32(ph, 0)? {
            PT_LOAD => loads.push(Load {
                offset,
                vaddr,
                filesz,
                memsz,
            }),
            // The loop in ld.so overwrites: the last PT_DYNAMIC is the one used.
            PT_DYNAMIC => dynamic = Some(vaddr),
            _ => {}
        }
    }
    drop(phdrs);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .filter(|&size| size > 0)
        .unwrap_or(4096);

    // The dynamic table runs to DT_NULL (p_filesz and p_memsz play no part).
    let (mut at, available) = file_range(&loads, page, dynamic?)?;
    let entry = layout.dyn_size();
    let limit = usize::try_from(available)
        .unwrap_or(usize::MAX)
        .min(MAX_DYNAMIC_ENTRIES * entry);
    let mut left = limit - limit % entry;
    let mut chunk = [0u8; 4096];
    let mut needed: Vec<u64> = Vec::new();
    let (mut strtab, mut soname) = (None, None);
    'table: while left > 0 {
        let want = left.min(chunk.len());
        let got = reader.some(at, &mut chunk[..want]);
        for dyn_entry in chunk[..got].chunks_exact(entry) {
            let tag = layout.word(dyn_entry, 0)?;
            let value = layout.word(dyn_entry, entry / 2)?;
            match tag {
                DT_NULL => break 'table,
                // elf/dl-deps.c walks every DT_NEEDED, in order; one name
                // named twice is one library.
                DT_NEEDED if needed.len() < MAX_NEEDED && !needed.contains(&value) => {
                    needed.push(value);
                }
                // elf/get-dynamic-info.h: `info[tag] = dyn`, the last one wins.
                DT_STRTAB => strtab = Some(value),
                DT_SONAME => soname = Some(value),
                _ => {}
            }
        }
        if got < want {
            break;
        }
        left -= got;
        at = at.checked_add(got as u64)?;
    }
    // Without DT_STRTAB the loader has no names to load either.
    let strtab = strtab?;
    let mut name = |offset: u64| {
        let (at, available) = file_range(&loads, page, strtab.checked_add(offset)?)?;
        read_name(reader, at, available)
    };
    let needed = needed.into_iter().filter_map(&mut name).collect();
    let soname = soname.and_then(name);
    Some((needed, soname))
}

/// The NUL-terminated string at `offset`, of at most `available` bytes (the
/// mapped file content there) and [`MAX_NAME_BYTES`], read in small pieces;
/// `None` when empty.
fn read_name(reader: &mut Reader<'_>, offset: u64, available: u64) -> Option<String> {
    let limit = usize::try_from(available)
        .unwrap_or(usize::MAX)
        .min(MAX_NAME_BYTES);
    let mut name = Vec::new();
    let mut piece = [0u8; 256];
    while name.len() < limit {
        let want = (limit - name.len()).min(piece.len());
        let got = reader.some(offset.checked_add(name.len() as u64)?, &mut piece[..want]);
        let piece = &piece[..got];
        if let Some(end) = piece.iter().position(|&b| b == 0) {
            name.extend_from_slice(&piece[..end]);
            break;
        }
        name.extend_from_slice(piece);
        if got < want {
            break;
        }
    }
    // Unterminated within the mapped content or the cap: what the loader
    // would read first, still enough to match a library prefix.
    (!name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned())
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

#[cfg(test)]
mod tests {
    //! The classifier against real files, with this test process as the "target":
    //! its root is `/`, so paths resolve on the host exactly as an exec from this
    //! process would. Files are made in temporary directories; the real
    //! `/usr/bin/tcpdump` (Debian's, linking `libpcap.so.0.8`) is copied where a
    //! genuine capture binary is needed, and those checks are skipped loudly when it
    //! is not installed.
    //!
    //! decision path) lets through today; each says what the kernel does and what the
    //! classifier answers. Run them with `cargo test -p sniffguard -- --ignored`.

    use std::fs;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use sha2::{Digest, Sha256};
    use sniffguard_common::policy::Policy;
    use tempfile::TempDir;

    use super::*;
    use crate::resolve::{open_root, resolve, Base};

    const TCPDUMP: &str = "/usr/bin/tcpdump";
    /// The x86-64 glibc loader as binaries name it in `PT_INTERP`.
    const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
    const LOADER_NAME: &str = "ld-linux-x86-64.so.2";

    /// The real tcpdump, or `None` after a loud skip line naming the test.
    fn tcpdump() -> Option<&'static Path> {
        let path = Path::new(TCPDUMP);
        if path.is_file() {
            return Some(path);
        }
        let current = std::thread::current();
        let test = current.name().unwrap_or("<unnamed test>");
        eprintln!(
            "\n**************** SKIPPED ({TCPDUMP} missing; apt-get install tcpdump): \
             {test} ****************\n"
        );
        None
    }

    fn bytes(path: &Path) -> &[u8] {
        path.as_os_str().as_bytes()
    }

    /// A temporary directory to build executables in.
    struct Scratch {
        dir: TempDir,
    }

    impl Scratch {
        fn new() -> Scratch {
            Scratch {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// Writes `content` to `name`, mode 0755.
        fn write(&self, name: &str, content: &[u8]) -> PathBuf {
            let path = self.path(name);
            fs::write(&path, content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            path
        }

        /// Copies `from` (following symlinks) to `name`.
        fn copy(&self, from: &Path, name: &str) -> PathBuf {
            let path = self.path(name);
            fs::copy(from, &path).unwrap();
            path
        }

        fn symlink(&self, target: &Path, name: &str) -> PathBuf {
            let path = self.path(name);
            symlink(target, &path).unwrap();
            path
        }
    }

    /// Classifies an exec of `path` (as given) with `argv`, from this process,
    /// resolving it the way the notify path does.
    fn classify_with(
        classifier: &Classifier,
        policy: &Policy,
        path: &[u8],
        argv: &[&[u8]],
    ) -> Vec<Evidence> {
        let tid = std::process::id();
        let root = open_root(tid).unwrap();
        let owned: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
        let read_argv = || owned.clone();
        let site = ExecSite {
            root: (&root).into(),
            tid,
            argv: &read_argv,
        };
        let resolved = resolve(&root, tid, Base::Cwd, path).ok();
        classifier.classify_exec(
            policy,
            &site,
            path,
            argv.first().copied(),
            resolved.as_ref(),
        )
    }

    /// `execve(path, [path])` with the built-in policy and a fresh cache.
    fn classify(path: &Path) -> Vec<Evidence> {
        classify_with(
            &Classifier::new(),
            &Policy::builtin().unwrap(),
            bytes(path),
            &[bytes(path)],
        )
    }

    fn catalogue_name(name: &str) -> Evidence {
        Evidence::CatalogueName { name: name.into() }
    }

    fn name_given(name: &str) -> Evidence {
        Evidence::NameGiven { name: name.into() }
    }

    /// `[LinksLibpcap { library: "libpcap.so…" }]`, with a useful message otherwise.
    fn assert_links_libpcap(evidence: &[Evidence]) {
        match evidence {
            [Evidence::LinksLibpcap { library }] => {
                assert!(library.starts_with("libpcap.so"), "{library}");
            }
            other => panic!("expected exactly LinksLibpcap, got {other:?}"),
        }
    }

    /// The built-in policy with its `[catalogue]` table replaced.
    fn policy_with_catalogue(catalogue: &str) -> Policy {
        let text = format!(
            "default_environment = \"ci\"\n[environments.ci]\nmode = \"audit\"\n\
             [catalogue]\n{catalogue}\n"
        );
        Policy::parse(&text, "test").unwrap()
    }

    fn sha256_of(path: &Path) -> String {
        Sha256::digest(fs::read(path).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    // -----------------------------------------------------------------------------
    // The file that runs
    // -----------------------------------------------------------------------------

    #[test]
    fn catalogued_name_after_a_symlink() {
        let scratch = Scratch::new();
        // Benign content: only the name can make it a sniffer.
        let real = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let link = scratch.symlink(&real, "innocent");
        assert_eq!(classify(&link), [catalogue_name("tcpdump")]);
        // A relative symlink chain ends at the same name.
        let hop = scratch.symlink(Path::new("innocent"), "hop");
        assert_eq!(classify(&hop), [catalogue_name("tcpdump")]);
    }

    #[test]
    fn renamed_copy_of_tcpdump_links_libpcap() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "innocent");
        assert_links_libpcap(&classify(&copy));
        // The real one under its own name has both.
        let real = classify(tcpdump);
        assert!(real.contains(&catalogue_name("tcpdump")), "{real:?}");
        assert!(real.contains(&name_given("tcpdump")), "{real:?}");
        assert!(
            real.iter()
                .any(|e| matches!(e, Evidence::LinksLibpcap { .. })),
            "{real:?}"
        );
    }

    #[test]
    fn benign_elf_gives_nothing() {
        let scratch = Scratch::new();
        let copy = scratch.copy(Path::new("/bin/ls"), "ls");
        assert_eq!(classify(&copy), []);
        assert_eq!(classify(Path::new("/bin/ls")), []);
    }

    #[test]
    fn memfd_with_tcpdump_content_links_libpcap() {
        // execveat(memfd, "", AT_EMPTY_PATH) / fexecve: no name to go by, but the
        // content is still read through the fd.
        let Some(tcpdump) = tcpdump() else { return };
        let memfd =
            nix::sys::memfd::memfd_create(c"tcpdump", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .unwrap();
        let mut file = File::from(memfd);
        std::io::copy(&mut File::open(tcpdump).unwrap(), &mut file).unwrap();
        let tid = std::process::id();
        let root = open_root(tid).unwrap();
        let resolved = resolve(&root, tid, Base::EmptyPath(file.as_raw_fd()), b"").unwrap();
        let no_argv = Vec::new;
        let site = ExecSite {
            root: (&root).into(),
            tid,
            argv: &no_argv,
        };
        let policy = Policy::builtin().unwrap();
        let evidence = Classifier::new().classify_exec(&policy, &site, b"", None, Some(&resolved));
        // The link reads "/memfd:tcpdump (deleted)": not a catalogued name.
        assert_links_libpcap(&evidence);
    }

    // -----------------------------------------------------------------------------
    // Scripts
    // -----------------------------------------------------------------------------

    #[test]
    fn script_whose_interpreter_is_a_tcpdump_copy() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "innocent");
        let script = scratch.write(
            "run.sh",
            format!("#!{} -i any\necho hi\n", copy.display()).as_bytes(),
        );
        match classify(&script).as_slice() {
            [Evidence::Interpreter {
                interpreter,
                because,
            }] => {
                assert_eq!(interpreter.as_bytes(), bytes(&copy));
                assert_links_libpcap(std::slice::from_ref(because));
            }
            other => panic!("expected Interpreter, got {other:?}"),
        }
    }

    #[test]
    fn script_whose_interpreter_has_a_catalogued_name() {
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let script = scratch.write("run.sh", format!("#!{}\n", named.display()).as_bytes());
        assert_eq!(
            classify(&script),
            [Evidence::Interpreter {
                interpreter: named.display().to_string(),
                because: Box::new(catalogue_name("tcpdump")),
            }]
        );
    }

    #[test]
    fn env_shebang_names_the_tool() {
        let scratch = Scratch::new();
        let expected = [Evidence::Interpreter {
            interpreter: "/usr/bin/env".into(),
            because: Box::new(name_given("tcpdump")),
        }];
        for line in [
            "#!/usr/bin/env tcpdump\n",
            "#!/usr/bin/env -S tcpdump -i any\n",
            "#!/usr/bin/env\ttcpdump\n",
            "#!  /usr/bin/env   tcpdump  \n",
        ] {
            let script = scratch.write("run.sh", line.as_bytes());
            assert_eq!(classify(&script), expected, "{line:?}");
        }
        for line in [
            "#!/usr/bin/env sh\n",
            "#!/usr/bin/env\n",
            "#!/usr/bin/env -i\n",
        ] {
            let script = scratch.write("run.sh", line.as_bytes());
            assert_eq!(classify(&script), [], "{line:?}");
        }
    }

    #[test]
    fn script_chains_and_loops_are_bounded() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "innocent");
        let inner = scratch.write("inner", format!("#!{}\n", copy.display()).as_bytes());
        let outer = scratch.write("outer", format!("#!{}\n", inner.display()).as_bytes());
        match classify(&outer).as_slice() {
            [Evidence::Interpreter { because, .. }] => match because.as_ref() {
                Evidence::Interpreter { because, .. } => {
                    assert_links_libpcap(std::slice::from_ref(because));
                }
                other => panic!("expected a nested Interpreter, got {other:?}"),
            },
            other => panic!("expected Interpreter, got {other:?}"),
        }
        // A script that names itself, and two that name each other: the kernel stops
        // with ELOOP; the classifier must stop too.
        let own = scratch.path("own");
        scratch.write("own", format!("#!{}\n", own.display()).as_bytes());
        assert_eq!(classify(&own), []);
        let a = scratch.path("a");
        let b = scratch.path("b");
        scratch.write("a", format!("#!{}\n", b.display()).as_bytes());
        scratch.write("b", format!("#!{}\n", a.display()).as_bytes());
        assert_eq!(classify(&a), []);
    }

    #[test]
    fn shebang_without_interpreter_gives_nothing() {
        let scratch = Scratch::new();
        for content in [
            &b"#!"[..],
            b"#!\n",
            b"#!   \t \n/usr/bin/tcpdump\n",
            b"#! \r\n",
        ] {
            let script = scratch.write("run.sh", content);
            assert_eq!(classify(&script), [], "{content:?}");
        }
    }

    #[test]
    fn shebang_with_tabs_and_no_final_newline() {
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let expected = [Evidence::Interpreter {
            interpreter: named.display().to_string(),
            because: Box::new(catalogue_name("tcpdump")),
        }];
        for content in [
            format!("#!\t{}\t-n\n", named.display()),
            format!("#!{}\t \t-i\tany\n", named.display()),
            format!("#!{}", named.display()),
            format!("#! {} ", named.display()),
        ] {
            let script = scratch.write("run.sh", content.as_bytes());
            assert_eq!(classify(&script), expected, "{content:?}");
        }
    }

    #[test]
    fn very_long_shebang_lines() {
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        // A long argument is truncated by the kernel (BINPRM_BUF_SIZE, 256 bytes) and
        // the interpreter still runs: it must still be judged.
        let long_argument = format!("#!{} {}\n", named.display(), "a".repeat(1000));
        let script = scratch.write("run.sh", long_argument.as_bytes());
        assert_eq!(
            classify(&script),
            [Evidence::Interpreter {
                interpreter: named.display().to_string(),
                because: Box::new(catalogue_name("tcpdump")),
            }]
        );
        // An interpreter path longer than the buffer: the kernel refuses (ENOEXEC);
        // the classifier sees a truncated path that resolves to nothing.
        let long_path = format!("#!/{}/tcpdump\n", "d".repeat(1000));
        let script = scratch.write("run.sh", long_path.as_bytes());
        assert_eq!(classify(&script), []);
        // No newline at all within a large file.
        let script = scratch.write("run.sh", &[b"#!/".as_slice(), &[b'x'; 100_000]].concat());
        assert_eq!(classify(&script), []);
    }

    #[test]
    fn crlf_shebang_names_a_file_ending_in_cr() {
        // The kernel keeps the '\r' ("bad interpreter: /bin/sh^M"): the script runs
        // a file called "tcpdump\r", which does not exist here, so nothing runs and
        // nothing is reported (see `interpreter_name_ending_in_cr_is_judged` for a
        // file that does carry the '\r').
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let script = scratch.write("run.sh", format!("#!{}\r\n", named.display()).as_bytes());
        assert_eq!(classify(&script), []);
    }

    // -----------------------------------------------------------------------------
    // The dynamic loader
    // -----------------------------------------------------------------------------

    /// A file called `ld-linux-x86-64.so.2` in `scratch`: a copy of the real loader
    /// when there is one (the classifier goes by the name either way).
    fn loader_copy(scratch: &Scratch) -> PathBuf {
        if Path::new(LOADER).is_file() {
            scratch.copy(Path::new(LOADER), LOADER_NAME)
        } else {
            scratch.write(LOADER_NAME, b"\x7fELF not really a loader")
        }
    }

    #[test]
    fn loader_running_a_tcpdump_copy() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let ld = loader_copy(&scratch);
        let copy = scratch.copy(tcpdump, "innocent");
        let classifier = Classifier::new();
        let policy = Policy::builtin().unwrap();
        for argv in [
            vec![bytes(&ld), b"--library-path", b"/x", bytes(&copy), b"-D"],
            vec![bytes(&ld), bytes(&copy)],
            vec![bytes(&ld), b"--list", b"--preload", b"/y.so", bytes(&copy)],
            vec![bytes(&ld), b"--argv0", b"bash", b"--", bytes(&copy), b"-D"],
        ] {
            let evidence = classify_with(&classifier, &policy, bytes(&ld), &argv);
            match evidence.as_slice() {
                [Evidence::Loader { program, because }] => {
                    assert_eq!(program.as_bytes(), bytes(&copy));
                    assert_links_libpcap(std::slice::from_ref(because));
                }
                other => panic!("{argv:?}: expected Loader, got {other:?}"),
            }
        }
    }

    #[test]
    fn loader_running_something_benign_or_nothing() {
        let scratch = Scratch::new();
        let ld = loader_copy(&scratch);
        let classifier = Classifier::new();
        let policy = Policy::builtin().unwrap();
        for argv in [
            vec![bytes(&ld), &b"/bin/ls"[..]],
            vec![bytes(&ld), b"--library-path", b"/x", b"/bin/ls", b"tcpdump"],
            vec![bytes(&ld)],
            vec![bytes(&ld), b"--library-path"],
            vec![bytes(&ld), b"--help"],
            vec![],
        ] {
            let evidence = classify_with(&classifier, &policy, bytes(&ld), &argv);
            assert_eq!(evidence, [], "{argv:?}");
        }
    }

    #[test]
    fn loader_given_a_catalogued_name_that_does_not_resolve() {
        let scratch = Scratch::new();
        let ld = loader_copy(&scratch);
        let missing = scratch.path("tcpdump");
        let argv = [bytes(&ld), bytes(&missing)];
        let evidence = classify_with(
            &Classifier::new(),
            &Policy::builtin().unwrap(),
            bytes(&ld),
            &argv,
        );
        assert_eq!(
            evidence,
            [Evidence::Loader {
                program: missing.display().to_string(),
                because: Box::new(name_given("tcpdump")),
            }]
        );
    }

    // -----------------------------------------------------------------------------
    // The name given
    // -----------------------------------------------------------------------------

    #[test]
    fn argv0_names_a_tool_while_the_file_is_benign() {
        let scratch = Scratch::new();
        let ls = scratch.copy(Path::new("/bin/ls"), "ls");
        let classifier = Classifier::new();
        let policy = Policy::builtin().unwrap();
        for argv0 in [&b"tcpdump"[..], b"/usr/sbin/tcpdump", b"./tcpdump"] {
            let evidence = classify_with(&classifier, &policy, bytes(&ls), &[argv0]);
            assert_eq!(evidence, [name_given("tcpdump")], "{argv0:?}");
        }
        // The path as given and argv[0] agreeing give one piece of evidence, not two.
        let link = scratch.symlink(&ls, "tcpdump");
        let evidence = classify_with(&classifier, &policy, bytes(&link), &[b"tcpdump"]);
        assert_eq!(evidence, [name_given("tcpdump")]);
        // A name that only contains a catalogued one is not it.
        for argv0 in [&b"tcpdump2"[..], b"my-tcpdump", b"TCPDUMP", b"tcpdump/"] {
            let evidence = classify_with(&classifier, &policy, bytes(&ls), &[argv0]);
            assert_eq!(evidence, [], "{argv0:?}");
        }
    }

    #[test]
    fn unresolved_path_is_judged_by_name_only() {
        let policy = Policy::builtin().unwrap();
        let root = open_root(std::process::id()).unwrap();
        let no_argv = Vec::new;
        let site = ExecSite {
            root: (&root).into(),
            tid: std::process::id(),
            argv: &no_argv,
        };
        let classifier = Classifier::new();
        assert_eq!(
            classifier.classify_exec(&policy, &site, b"/nowhere/tcpdump", None, None),
            [name_given("tcpdump")]
        );
        assert_eq!(
            classifier.classify_exec(&policy, &site, b"/nowhere/ls", Some(b"ls"), None),
            []
        );
    }

    // -----------------------------------------------------------------------------
    // The policy
    // -----------------------------------------------------------------------------

    #[test]
    fn libpcap_check_can_be_turned_off() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "innocent");
        let off = policy_with_catalogue("names = [\"tcpdump\"]\nlibpcap = false");
        // One classifier for both policies: the cached facts must not carry one
        // policy's verdict into the other.
        let classifier = Classifier::new();
        let builtin = Policy::builtin().unwrap();
        assert_links_libpcap(&classify_with(&classifier, &builtin, bytes(&copy), &[b"x"]));
        assert_eq!(classify_with(&classifier, &off, bytes(&copy), &[b"x"]), []);
        // The name still counts.
        let named = scratch.copy(&copy, "tcpdump");
        assert_eq!(
            classify_with(&classifier, &off, bytes(&named), &[b"x"]),
            [catalogue_name("tcpdump"), name_given("tcpdump")]
        );
    }

    #[test]
    fn listed_sha256_marks_a_benign_file() {
        let scratch = Scratch::new();
        let listed = scratch.copy(Path::new("/bin/ls"), "listed");
        let other = scratch.write("other", b"#!/bin/sh\necho not listed\n");
        let digest = sha256_of(&listed);
        let policy = policy_with_catalogue(&format!("sha256 = [\"{digest}\"]"));
        let classifier = Classifier::new();
        // First with a policy that lists no digest (the facts are cached without one),
        // then with the list: the digest must be computed then.
        let builtin = Policy::builtin().unwrap();
        assert_eq!(
            classify_with(&classifier, &builtin, bytes(&listed), &[b"x"]),
            []
        );
        let evidence = classify_with(&classifier, &policy, bytes(&listed), &[b"x"]);
        assert_eq!(evidence, [Evidence::Sha256 { digest }]);
        assert_eq!(
            classify_with(&classifier, &policy, bytes(&other), &[b"x"]),
            []
        );
        // The digest is of the content: a symlink to it, or a copy, matches too.
        let link = scratch.symlink(&listed, "link");
        let copy = scratch.copy(&listed, "copy");
        for path in [link, copy] {
            let evidence = classify_with(&classifier, &policy, bytes(&path), &[b"x"]);
            assert!(
                matches!(evidence.as_slice(), [Evidence::Sha256 { .. }]),
                "{path:?}: {evidence:?}"
            );
        }
    }

    // -----------------------------------------------------------------------------
    // Inputs that are not executables
    // -----------------------------------------------------------------------------

    /// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[3]
            })
            .collect()
    }

    #[test]
    fn non_regular_empty_and_garbage_files_give_nothing() {
        let scratch = Scratch::new();
        let fifo = scratch.path("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let dir = scratch.path("dir");
        fs::create_dir(&dir).unwrap();
        let mut paths = vec![
            fifo,
            dir,
            PathBuf::from("/dev/null"),
            PathBuf::from("/dev/zero"),
            PathBuf::from("/"),
            scratch.write("empty", b""),
            scratch.write("one", b"\x7f"),
            scratch.write("magic", b"\x7fELF"),
            scratch.write(
                "header",
                &[b"\x7fELF\x02\x01\x01".as_slice(), &[0; 57]].concat(),
            ),
            scratch.write("nul", &[0; 4096]),
        ];
        for (seed, len) in [(1u64, 10usize), (2, 255), (3, 256), (4, 257), (5, 70_000)] {
            paths.push(scratch.write(&format!("noise{seed}"), &noise(seed, len)));
            let mut elf = noise(seed + 100, len.max(64));
            elf[..4].copy_from_slice(b"\x7fELF");
            elf[4] = 2; // ELFCLASS64
            elf[5] = 1; // little-endian
            paths.push(scratch.write(&format!("elfnoise{seed}"), &elf));
        }
        for path in &paths {
            assert_eq!(classify(path), [], "{path:?}");
        }
    }

    #[test]
    fn truncated_and_corrupted_elf_gives_nothing() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let original = fs::read(tcpdump).unwrap();
        for len in [64, 4096, original.len() / 2, original.len() - 1] {
            let path = scratch.write(&format!("head{len}"), &original[..len]);
            // A prefix may still hold the dynamic section; what matters is no panic
            // and nothing but LinksLibpcap.
            let evidence = classify(&path);
            assert!(
                evidence
                    .iter()
                    .all(|e| matches!(e, Evidence::LinksLibpcap { .. })),
                "{len}: {evidence:?}"
            );
        }
        // Section header table pointing past the end of the file, and an absurd count.
        let mut broken = original.clone();
        broken[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        broken[0x3c..0x3e].copy_from_slice(&u16::MAX.to_le_bytes());
        let path = scratch.write("broken", &broken);
        // The loader never reads the section table: the copy still runs, and the
        // program headers still say it links libpcap.
        assert_links_libpcap(&classify(&path));
        // Every byte of the section headers overwritten: whatever it means, no panic.
        let shoff =
            usize::try_from(u64::from_le_bytes(original[0x28..0x30].try_into().unwrap())).unwrap();
        let mut scrambled = original;
        let garbage = noise(7, scrambled.len() - shoff);
        scrambled[shoff..].copy_from_slice(&garbage);
        let path = scratch.write("scrambled", &scrambled);
        let _ = classify(&path);
    }

    // -----------------------------------------------------------------------------
    // ELF files built byte by byte: what the dynamic loader reads, and no more
    // -----------------------------------------------------------------------------

    const DT_STRSZ: u64 = 10;

    /// A little-endian ELF64 image being assembled: fields are written at
    /// absolute file offsets, the image growing as needed.
    struct Image(Vec<u8>);

    impl Image {
        /// An ELF64 `ET_DYN` x86-64 header with `phnum` program headers at 64.
        fn new(phnum: u16) -> Image {
            let mut image = Image(Vec::new());
            image.put(0, b"\x7fELF\x02\x01\x01");
            image.put(16, &3u16.to_le_bytes()); // e_type = ET_DYN
            image.put(18, &62u16.to_le_bytes()); // e_machine = EM_X86_64
            image.put(20, &1u32.to_le_bytes()); // e_version
            image.put(32, &64u64.to_le_bytes()); // e_phoff
            image.put(52, &64u16.to_le_bytes()); // e_ehsize
            image.put(54, &56u16.to_le_bytes()); // e_phentsize
            image.put(56, &phnum.to_le_bytes()); // e_phnum
            image
        }

        fn put(&mut self, at: usize, bytes: &[u8]) {
            let end = at + bytes.len();
            if self.0.len() < end {
                self.0.resize(end, 0);
            }
            self.0[at..end].copy_from_slice(bytes);
        }

        /// Program header `index`, with `p_memsz == p_filesz`.
        fn phdr(&mut self, index: usize, p_type: u32, offset: u64, vaddr: u64, filesz: u64) {
            self.phdr_bss(index, p_type, offset, vaddr, filesz, filesz);
        }

        /// Program header `index`.
        fn phdr_bss(
            &mut self,
            index: usize,
            p_type: u32,
            offset: u64,
            vaddr: u64,
            filesz: u64,
            memsz: u64,
        ) {
            let at = 64 + 56 * index;
            self.put(at, &p_type.to_le_bytes());
            self.put(at + 4, &6u32.to_le_bytes()); // PF_R | PF_W
            self.put(at + 8, &offset.to_le_bytes());
            self.put(at + 16, &vaddr.to_le_bytes());
            self.put(at + 24, &vaddr.to_le_bytes());
            self.put(at + 32, &filesz.to_le_bytes());
            self.put(at + 40, &memsz.to_le_bytes());
            self.put(at + 48, &8u64.to_le_bytes());
        }

        /// A dynamic table of `(tag, value)` entries at file offset `at`.
        fn dynamic(&mut self, at: usize, entries: &[(u64, u64)]) {
            for (i, (tag, value)) in entries.iter().enumerate() {
                self.put(at + 16 * i, &tag.to_le_bytes());
                self.put(at + 16 * i + 8, &value.to_le_bytes());
            }
        }
    }

    /// `elf_dynamic` of `image`, written to a file in `scratch`.
    fn dynamic_of(scratch: &Scratch, image: &Image) -> Option<(Vec<String>, Option<String>)> {
        let path = scratch.write("image", &image.0);
        elf_dynamic(&File::open(path).unwrap())
    }

    #[test]
    fn the_loader_s_dynamic_segment_is_the_last_one_found_by_its_address() {
        // ld.so takes the *last* PT_DYNAMIC and reads it where its p_vaddr is mapped
        // (glibc elf/rtld.c rtld_setup_main_map, elf/dl-load.c
        // _dl_map_object_from_fd: `l_ld = ph->p_vaddr` in a loop over the
        // headers); DT_STRTAB is an address too. A patched tcpdump can put a
        // decoy table first, at the offset every PT_DYNAMIC names, and its real
        // one where only the addresses lead.
        const BASE: u64 = 0x60_0000;
        let mut image = Image::new(4);
        // Two PT_LOADs with different offset-to-address deltas.
        image.phdr(0, PT_LOAD, 0, 0x40_0000, 256);
        image.phdr(1, PT_LOAD, 256, BASE, 256);
        // The decoy: first, and where every p_offset points.
        image.phdr(2, PT_DYNAMIC, 256, BASE, 64);
        // The loader's: last, at BASE + 64 (file offset 320), its p_offset lying.
        image.phdr(3, PT_DYNAMIC, 256, BASE + 64, 64);
        let strtab = BASE + 144; // file offset 400
        for (at, name) in [(256, 1), (320, 11)] {
            image.dynamic(
                at,
                &[
                    (DT_NEEDED, name),
                    (DT_STRTAB, strtab),
                    (DT_STRSZ, 24),
                    (DT_NULL, 0),
                ],
            );
        }
        image.put(400, b"\0libc.so.6\0libpcap.so.1\0");
        image.put(511, b"\0");

        let scratch = Scratch::new();
        let (needed, soname) = dynamic_of(&scratch, &image).unwrap();
        assert_eq!(needed, ["libpcap.so.1"]);
        assert_eq!(soname, None);
        let path = scratch.write("innocent", &image.0);
        assert_links_libpcap(&classify(&path));
    }

    #[test]
    fn dynamic_table_and_names_are_read_where_the_loader_reads_them() {
        const BASE: u64 = 0x40_0000;
        let scratch = Scratch::new();
        let names = b"\0libc.so.6\0libpcap.so.1\0";
        let (libc, libpcap) = (1, 11);

        // No DT_STRSZ, and a PT_DYNAMIC whose p_filesz covers only its first
        // entry: ld.so reads the table to DT_NULL and names to their NUL.
        let mut image = Image::new(2);
        image.phdr(0, PT_LOAD, 0, BASE, 512);
        image.phdr(1, PT_DYNAMIC, 256, BASE + 256, 16);
        image.dynamic(
            256,
            &[(DT_STRTAB, BASE + 384), (DT_NEEDED, libpcap), (DT_NULL, 0)],
        );
        image.put(384, names);
        image.put(511, b"\0");
        let (needed, _) = dynamic_of(&scratch, &image).unwrap();
        assert_eq!(needed, ["libpcap.so.1"]);

        // The last DT_STRTAB and DT_SONAME count; a name listed twice is one.
        let mut image = Image::new(2);
        image.phdr(0, PT_LOAD, 0, BASE, 512);
        image.phdr(1, PT_DYNAMIC, 256, BASE + 256, 96);
        image.dynamic(
            256,
            &[
                (DT_STRTAB, BASE + 448),
                (DT_SONAME, libc),
                (DT_NEEDED, libpcap),
                (DT_NEEDED, libpcap),
                (DT_STRTAB, BASE + 384),
                (DT_SONAME, libpcap),
                (DT_NULL, 0),
            ],
        );
        image.put(384, names);
        image.put(448, b"\0junk\0junk.so.1\0\0\0\0\0\0\0\0\0");
        image.put(511, b"\0");
        let (needed, soname) = dynamic_of(&scratch, &image).unwrap();
        assert_eq!(needed, ["libpcap.so.1"]);
        assert_eq!(soname.as_deref(), Some("libpcap.so.1"));

        // A PT_DYNAMIC below its PT_LOAD's p_vaddr, in the same page: the page
        // is mapped from the file all the same.
        let mut image = Image::new(2);
        image.phdr(0, PT_LOAD, 0x180, BASE + 0x180, 0x80);
        image.phdr(1, PT_DYNAMIC, 0, BASE + 0x100, 48);
        image.dynamic(
            0x100,
            &[
                (DT_NEEDED, libpcap),
                (DT_STRTAB, BASE + 0x180),
                (DT_NULL, 0),
            ],
        );
        image.put(0x180, names);
        image.put(0x1ff, b"\0");
        let (needed, _) = dynamic_of(&scratch, &image).unwrap();
        assert_eq!(needed, ["libpcap.so.1"]);

        // A table running to the end of a segment's file image, with a bss after
        // it: the loader reads zeros there (DT_NULL), not the file's next bytes.
        let mut image = Image::new(2);
        image.phdr_bss(0, PT_LOAD, 0, BASE, 288, 4096);
        image.phdr(1, PT_DYNAMIC, 256, BASE + 256, 32);
        image.dynamic(
            256,
            &[
                (DT_NEEDED, libpcap),
                (DT_STRTAB, BASE + 192),
                // Past p_filesz: zeros in memory.
                (DT_STRTAB, BASE + 384),
                (DT_NULL, 0),
            ],
        );
        image.put(192, names);
        image.put(384, b"\0libc.so.6\0libc.so.6\0");
        image.put(511, b"\0");
        let (needed, _) = dynamic_of(&scratch, &image).unwrap();
        assert_eq!(needed, ["libpcap.so.1"]);

        // An address no PT_LOAD maps: nothing.
        let mut image = Image::new(2);
        image.phdr(0, PT_LOAD, 0, BASE, 512);
        image.phdr(1, PT_DYNAMIC, 256, 0x7000_0000, 48);
        image.dynamic(256, &[(DT_NEEDED, libpcap), (DT_STRTAB, BASE + 384)]);
        image.put(384, names);
        image.put(511, b"\0");
        assert_eq!(dynamic_of(&scratch, &image), None);
    }

    #[test]
    fn seed_elf_files_of_each_class_and_byte_order() {
        let scratch = Scratch::new();
        let seed = |name: &str| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/corpus/classify_exec")
                .join(name);
            let copy = scratch.copy(&path, name);
            elf_dynamic(&File::open(copy).unwrap()).unwrap()
        };
        assert_eq!(
            seed("elf64-needs-libpcap").0,
            ["libpcap.so.0.8", "libc.so.6"]
        );
        assert_eq!(seed("elf32-needs-libpcap").0, ["libpcap.so.1"]);
        assert_eq!(seed("elf64be-needs-libpcap").0, ["libpcap.so.0.8"]);
        assert_eq!(seed("elf64-benign").0, ["libc.so.6"]);
        assert_eq!(
            seed("elf32-loader-soname").1.as_deref(),
            Some("ld-linux.so.2")
        );
        assert_eq!(
            seed("elf64-loader-soname").1.as_deref(),
            Some("ld-linux-x86-64.so.2")
        );
    }

    /// `elf_dynamic` of `image`, and the bytes it read.
    fn dynamic_counted(scratch: &Scratch, image: &Image) -> (Option<Vec<String>>, u64) {
        let path = scratch.write("image", &image.0);
        let file = File::open(path).unwrap();
        let mut reader = Reader::new(&file);
        let found = elf_dynamic_from(&mut reader).map(|(needed, _)| needed);
        (found, reader.read)
    }

    #[test]
    fn hostile_elf_files_are_read_within_bounds() {
        // Each of these once cost seconds to minutes and gigabytes (fuzz/corpus/
        // classify_exec/elf-many-dynamic-segments, elf-needed-times-strtab, at
        // 1 MiB). The bound is on the bytes read, not on time.
        const SIZE: usize = 1024 * 1024;
        const BASE: u64 = 0x40_0000;
        let scratch = Scratch::new();
        let classify_image = |image: &Image| {
            let path = scratch.write("hostile", &image.0);
            classify(&path)
        };

        // As many PT_DYNAMIC as the kernel allows, each spanning the file, none
        // of them mapped.
        let phnum = MAX_PHDR_TABLE_BYTES / 56;
        let mut image = Image::new(u16::try_from(phnum).unwrap());
        for i in 0..phnum {
            image.phdr(i, PT_DYNAMIC, 0, 0, (SIZE - 1 - i) as u64);
        }
        image.put(SIZE - 1, b"\0");
        let (found, read) = dynamic_counted(&scratch, &image);
        assert_eq!(found, None);
        assert!(read <= 64 + MAX_PHDR_TABLE_BYTES as u64, "{read}");
        assert_eq!(classify_image(&image), []);

        // One header too many for the kernel: refused before the table is read.
        let mut image = Image::new(u16::try_from(phnum + 1).unwrap());
        image.put(SIZE - 1, b"\0");
        let (found, read) = dynamic_counted(&scratch, &image);
        assert_eq!(found, None);
        assert!(read <= 64, "{read}");

        // A dynamic table filling the file with DT_NEEDED entries, no DT_NULL,
        // each naming a different suffix of one long unterminated string.
        let mut image = Image::new(2);
        image.phdr(0, PT_LOAD, 0, BASE, SIZE as u64);
        image.phdr(1, PT_DYNAMIC, 4096, BASE + 4096, (SIZE / 2) as u64);
        let strtab = SIZE / 2 + 4096;
        let mut entries = vec![(DT_STRTAB, BASE + strtab as u64)];
        entries.extend((0..(SIZE / 2 - 4096) / 16 - 1).map(|i| (DT_NEEDED, i as u64)));
        image.dynamic(4096, &entries);
        image.put(strtab, b"libpcap.so.");
        image.put(strtab + 11, &vec![b'A'; SIZE - strtab - 11]);
        let (found, read) = dynamic_counted(&scratch, &image);
        let found = found.unwrap();
        assert_eq!(found.len(), MAX_NEEDED);
        assert!(found.iter().all(|name| name.len() == MAX_NAME_BYTES));
        assert!(read <= MAX_ELF_READ_BYTES, "{read} > {MAX_ELF_READ_BYTES}");
        assert_links_libpcap(&classify_image(&image));

        // Thousands of DT_NEEDED naming the same long string: read once.
        let mut entries = vec![(DT_STRTAB, BASE + strtab as u64)];
        entries.extend(std::iter::repeat_n((DT_NEEDED, 0), 4000));
        entries.push((DT_NULL, 0));
        image.dynamic(4096, &entries);
        let (found, read) = dynamic_counted(&scratch, &image);
        assert_eq!(found.unwrap().len(), 1);
        assert!(
            read <= (64 + MAX_PHDR_TABLE_BYTES + MAX_DYNAMIC_ENTRIES * 16 + MAX_NAME_BYTES) as u64,
            "{read}"
        );

        // Offsets and addresses at the ends of the address space.
        let mut image = Image::new(3);
        image.phdr(0, PT_LOAD, u64::MAX - 15, u64::MAX - 4095, u64::MAX);
        image.phdr(1, PT_LOAD, 0, u64::MAX - 0xfff, 0x2000);
        image.phdr(2, PT_DYNAMIC, 0, u64::MAX, u64::MAX);
        image.dynamic(256, &[(DT_NEEDED, u64::MAX), (DT_STRTAB, u64::MAX)]);
        image.put(511, b"\0");
        let _ = dynamic_counted(&scratch, &image);
        let _ = classify_image(&image);
    }

    // -----------------------------------------------------------------------------
    // The cache
    // -----------------------------------------------------------------------------

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
            let len = classifier.cache.lock().unwrap().len();
            assert!(len <= CACHE_CAPACITY, "{len}");
        }
    }

    // -----------------------------------------------------------------------------
    // Known evasions, now handled: each pins down how the kernel really treats the case.
    // -----------------------------------------------------------------------------

    #[test]
    fn interpreter_name_ending_at_a_nul_is_judged() {
        // `#!/d/innocent\0junk\n` runs /d/innocent (fs/binfmt_script.c:
        // next_terminator() stops at ' ', '\t' and '\0'). The classifier looks for a
        // file called "innocent\0junk", finds none, and lets the script run.
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "innocent");
        let script = scratch.write("run.sh", &[b"#!", bytes(&copy), b"\0junk\n"].concat());
        assert!(
            matches!(classify(&script).as_slice(), [Evidence::Interpreter { .. }]),
            "{:?}",
            classify(&script)
        );
    }

    #[test]
    fn interpreter_name_ending_in_cr_is_judged() {
        // The kernel only skips spaces and tabs: `#!/d/x\r\n` runs the file "/d/x\r".
        // The classifier trims the '\r', resolves "/d/x", which does not exist, and
        // lets a renamed tcpdump called "x\r" run.
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "x\r");
        let script = scratch.write("run.sh", format!("#!{}\n", copy.display()).as_bytes());
        assert!(
            matches!(classify(&script).as_slice(), [Evidence::Interpreter { .. }]),
            "{:?}",
            classify(&script)
        );
    }

    #[test]
    fn loader_as_interpreter_with_a_program_argument() {
        // `#!/lib64/ld-linux-x86-64.so.2 /d/innocent` makes the kernel run
        // [ld.so, "/d/innocent", script, args...]: the loader maps the sniffer and no
        // further execve happens. classify_loader_target reads the *script's* argv
        // ([script]), finds no program, and nothing is reported.
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let ld = loader_copy(&scratch);
        let copy = scratch.copy(tcpdump, "innocent");
        let script = scratch.write(
            "run.sh",
            format!("#!{} {}\n", ld.display(), copy.display()).as_bytes(),
        );
        let evidence = classify(&script);
        assert!(!evidence.is_empty(), "{evidence:?}");
    }

    #[test]
    fn renamed_loader_running_a_tcpdump_copy() {
        // `cp /lib64/ld-linux-x86-64.so.2 /d/helper; /d/helper /d/innocent` runs the
        // sniffer with a single execve of an unremarkable ELF.
        let Some(tcpdump) = tcpdump() else { return };
        if !Path::new(LOADER).is_file() {
            eprintln!("SKIPPED: {LOADER} missing");
            return;
        }
        let scratch = Scratch::new();
        let helper = scratch.copy(Path::new(LOADER), "helper");
        let copy = scratch.copy(tcpdump, "innocent");
        let argv = [bytes(&helper), bytes(&copy), b"-D"];
        let evidence = classify_with(
            &Classifier::new(),
            &Policy::builtin().unwrap(),
            bytes(&helper),
            &argv,
        );
        assert!(!evidence.is_empty(), "{evidence:?}");
    }

    #[test]
    fn tcpdump_without_section_headers_links_libpcap() {
        // The loader reads PT_DYNAMIC from the program headers; the section header
        // table is optional. With e_shoff/e_shnum/e_shstrndx zeroed the copy still
        // runs (checked below) but elf_needed() finds no dynamic section.
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let mut content = fs::read(tcpdump).unwrap();
        content[0x28..0x30].fill(0); // e_shoff
        content[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        let copy = scratch.write("innocent", &content);
        let ran = Command::new(&copy).arg("--version").output().unwrap();
        assert!(
            ran.status.success(),
            "the stripped copy does not run: {ran:?}"
        );
        assert_links_libpcap(&classify(&copy));
    }

    #[test]
    fn policy_capture_libraries_are_honoured() {
        let scratch = Scratch::new();
        let ls = scratch.copy(Path::new("/bin/ls"), "ls");
        let policy = policy_with_catalogue("libraries = [\"libpcap.so\", \"libc.so\"]");
        let evidence = classify_with(&Classifier::new(), &policy, bytes(&ls), &[b"ls"]);
        assert_eq!(
            evidence,
            [Evidence::LinksLibpcap {
                library: "libc.so.6".into()
            }]
        );
    }

    #[test]
    fn execveat_empty_path_flag_with_a_relative_path_uses_the_dirfd() {
        // AT_EMPTY_PATH only matters when the path is empty; otherwise the kernel
        // resolves the path against dirfd. resolve() maps Base::EmptyPath with a
        // non-empty path to the cwd, so a sniffer next to dirfd is never found (and
        // an unresolvable path is let through by decide_exec).
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        scratch.copy(tcpdump, "innocent");
        let dir = File::open(scratch.dir.path()).unwrap();
        let tid = std::process::id();
        let root = open_root(tid).unwrap();
        let resolved = resolve(&root, tid, Base::EmptyPath(dir.as_raw_fd()), b"innocent");
        let no_argv = Vec::new;
        let site = ExecSite {
            root: (&root).into(),
            tid,
            argv: &no_argv,
        };
        let evidence = Classifier::new().classify_exec(
            &Policy::builtin().unwrap(),
            &site,
            b"innocent",
            Some(b"innocent"),
            resolved.as_ref().ok(),
        );
        assert_links_libpcap(&evidence);
    }
}
