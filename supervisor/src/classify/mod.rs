//! Deciding whether an executable, or a socket, is a sniffer.
//!
//! Evidence, strongest first (DESIGN.md): behaviour (capture sockets), the file
//! that runs (catalogued name after symlinks, an ELF linking a capture library, a
//! listed SHA-256, a script whose interpreter is a sniffer, the dynamic loader
//! running a sniffer), then the name it was given. One classifier serves every
//! mechanism, so the seccomp path and the alerts agree.
//!
//! The rooms, each importing only those after it:
//! - this module: the evidence, where an exec happens, and the classifier that
//!   judges a file's facts against the policy, following interpreters and the
//!   loader to the file that really runs;
//! - `libraries`: whether an ELF links a capture library, by name or by the
//!   library file the loader would find in the container;
//! - `cache`: what a file is (its format, libraries, libpcap strings and
//!   digest), read once per file identity;
//! - `script`: the `#!` line and the loader's command line, parsed as the
//!   kernel and ld.so parse them;
//! - `elf`: the ELF dynamic-section reader, bounded against hostile files;
//! - `markers`: the strings a static copy of libpcap leaves in a file;
//! - `digest`: SHA-256 of a file, also used by the alert sinks and responses.

mod cache;
mod digest;
mod elf;
mod libraries;
mod markers;
mod script;
#[cfg(test)]
mod testutil;

use std::os::fd::OwnedFd;

use serde::Serialize;
use sniffguard_common::policy::Policy;

use self::cache::{FileCache, Format};
pub use self::digest::{sha256_hex, MAX_DECISION_HASH_BYTES, MAX_HASHED_BYTES};
use self::libraries::{capture_library, LookupRoot};
use self::script::{is_loader_name, loader_program, Shebang};
use crate::resolve::{self, Base, Resolved};

/// How deep interpreter and loader indirections are followed (the kernel itself
/// allows 4 levels of interpreters).
const MAX_DEPTH: usize = 4;

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
        /// When the entry's name does not say it (a renamed library, a path):
        /// the library file found in the container and what showed it to be
        /// one (its `DT_SONAME`, or libpcap's strings in it).
        #[serde(skip_serializing_if = "Option::is_none")]
        found_as: Option<String>,
    },
    /// The ELF file carries a static copy of libpcap: a string only libpcap
    /// has is in it.
    StaticLibpcap {
        /// The string found.
        marker: String,
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
    /// An `AF_XDP` socket: frames an XDP program redirects to it.
    XdpSocket {},
    /// An NFLOG group configured (`NFULNL_MSG_CONFIG`) on a netfilter netlink
    /// socket, or the legacy ULOG netlink family opened.
    NetfilterLog {
        /// What was seen.
        method: String,
    },
    /// An NFQUEUE queue configured (`NFQNL_MSG_CONFIG`) on a netfilter netlink
    /// socket.
    NetfilterQueue {
        /// What was seen.
        method: String,
    },
    /// A netfilter netlink socket in an environment that does not allow
    /// netfilter management: it could bind NFLOG groups and NFQUEUE queues.
    NetfilterSocket {},
    /// An interface put into promiscuous mode.
    Promiscuous {
        /// How: `PACKET_ADD_MEMBERSHIP`, `SIOCSIFFLAGS`, or a `NETLINK_ROUTE`
        /// `RTM_NEWLINK` / `RTM_SETLINK` with `IFF_PROMISC`.
        method: String,
    },
    /// Traffic copied or redirected to another address or device.
    Mirroring {
        /// How: `tc mirred (RTM_NEWTFILTER)`, `tc mirred (RTM_NEWACTION)`,
        /// `nft dup`, `iptables TEE`.
        method: String,
    },
    /// A packet filter attached to a packet socket.
    SocketFilter {
        /// `SO_ATTACH_FILTER` or `SO_ATTACH_BPF`.
        option: String,
    },
    /// A `bpf(BPF_PROG_LOAD)` of a program type that sees every frame of an
    /// interface or socket and can copy or redirect it (socket filter, tc
    /// classifier or action, XDP); in an enforce environment without
    /// `bpf_programs`, any program load.
    BpfProgram {
        /// The `prog_type` (`BPF_PROG_TYPE_XDP`, …), or why it is not known.
        program_type: String,
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

    /// Whether the root was needed and could not be had (the process was
    /// gone): what was concluded without it may be incomplete.
    pub fn was_missed(&self) -> bool {
        matches!(self, SiteRoot::Lazy(_, cell) if matches!(cell.get(), Some(None)))
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
    cache: FileCache,
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

    /// Whether what [`Classifier::classify_exec`] said of `resolved` came
    /// from its content, read and remembered (not from its name alone, for
    /// want of a file that could still be opened).
    pub fn has_read(&self, policy: &Policy, resolved: &Resolved) -> bool {
        self.cache.holds(policy, resolved)
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
        // Reading a file not seen before takes long enough for a short-lived
        // process to end meanwhile: take its root first, while it lives, for
        // the libraries, interpreters and loader arguments to be found in.
        let Some(facts) = self.cache.facts(policy, resolved, &|| {
            let _ = site.root.get();
        }) else {
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
                dynamic,
                loader: by_soname,
                markers,
            } => {
                loader |= *by_soname;
                if policy.catalogue.libpcap {
                    let root = || site.root.get();
                    let at = LookupRoot {
                        root: &root,
                        tid: site.tid,
                    };
                    if let Some(linked) =
                        capture_library(&self.cache, policy, &dynamic.needed, markers.calls, &at)
                    {
                        evidence.push(Evidence::LinksLibpcap {
                            library: linked.library,
                            found_as: linked.found_as,
                        });
                    } else if let Some(marker) = markers.libpcap {
                        evidence.push(Evidence::StaticLibpcap {
                            marker: marker.to_owned(),
                        });
                    } else if !dynamic.complete {
                        // Built so that its library list costs more to read
                        // than twice its size: what it links is unknown, and
                        // an enforce environment refuses what it cannot judge.
                        evidence.push(Evidence::Unresolved {
                            reason: format!(
                                "{}: its library list is too long to read ({} names read)",
                                resolved.host_path().display(),
                                dynamic.needed.len()
                            ),
                        });
                    }
                }
            }
            Format::Script(Shebang {
                interpreter,
                argument,
            }) if depth < MAX_DEPTH => {
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
}

#[cfg(test)]
mod tests {
    //! The classifier end to end: names, ELF files that link a capture library,
    //! the policy's switches and lists, and inputs that are not executables.

    use std::fs::{self, File};
    use std::os::fd::AsRawFd;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use sniffguard_common::policy::Policy;

    use super::*;
    use crate::classify::testutil::*;
    use crate::resolve::{open_root, resolve, Base};

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
    // Known evasions, now handled
    // -----------------------------------------------------------------------------

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
                library: "libc.so.6".into(),
                found_as: None,
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
