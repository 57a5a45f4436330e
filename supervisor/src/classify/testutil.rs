//! What the classifier's unit tests share: scratch directories, the real
//! tcpdump to copy, classifying an exec from this test process, and an ELF
//! image builder.
//!
//! The test process is the "target": its root is `/`, so paths resolve on the
//! host exactly as an exec from this process would. Files are made in
//! temporary directories; the real `/usr/bin/tcpdump` (Debian's, linking
//! `libpcap.so.0.8`) is copied where a genuine capture binary is needed, and
//! those checks are skipped loudly when it is not installed.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sniffguard_common::policy::Policy;
use tempfile::TempDir;

use super::{Classifier, Evidence, ExecSite};
use crate::resolve::{open_root, resolve, Base};

pub(super) const TCPDUMP: &str = "/usr/bin/tcpdump";
/// The x86-64 glibc loader as binaries name it in `PT_INTERP`.
pub(super) const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
pub(super) const LOADER_NAME: &str = "ld-linux-x86-64.so.2";

/// The real tcpdump, or `None` after a loud skip line naming the test.
pub(super) fn tcpdump() -> Option<&'static Path> {
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

pub(super) fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// A temporary directory to build executables in.
pub(super) struct Scratch {
    /// The directory, removed on drop.
    pub(super) dir: TempDir,
}

impl Scratch {
    pub(super) fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `content` to `name`, mode 0755.
    pub(super) fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Copies `from` (following symlinks) to `name`.
    pub(super) fn copy(&self, from: &Path, name: &str) -> PathBuf {
        let path = self.path(name);
        fs::copy(from, &path).unwrap();
        path
    }

    pub(super) fn symlink(&self, target: &Path, name: &str) -> PathBuf {
        let path = self.path(name);
        symlink(target, &path).unwrap();
        path
    }
}

/// Classifies an exec of `path` (as given) with `argv`, from this process,
/// resolving it the way the notify path does.
pub(super) fn classify_with(
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
pub(super) fn classify(path: &Path) -> Vec<Evidence> {
    classify_with(
        &Classifier::new(),
        &Policy::builtin().unwrap(),
        bytes(path),
        &[bytes(path)],
    )
}

pub(super) fn catalogue_name(name: &str) -> Evidence {
    Evidence::CatalogueName { name: name.into() }
}

pub(super) fn name_given(name: &str) -> Evidence {
    Evidence::NameGiven { name: name.into() }
}

/// `[LinksLibpcap { library: "libpcap.so…" }]`, with a useful message otherwise.
pub(super) fn assert_links_libpcap(evidence: &[Evidence]) {
    match evidence {
        [Evidence::LinksLibpcap { library, .. }] => {
            assert!(library.starts_with("libpcap.so"), "{library}");
        }
        other => panic!("expected exactly LinksLibpcap, got {other:?}"),
    }
}

/// The built-in policy with its `[catalogue]` table replaced.
pub(super) fn policy_with_catalogue(catalogue: &str) -> Policy {
    let text = format!(
        "default_environment = \"ci\"\n[environments.ci]\nmode = \"audit\"\n\
         [catalogue]\n{catalogue}\n"
    );
    Policy::parse(&text, "test").unwrap()
}

pub(super) fn sha256_of(path: &Path) -> String {
    Sha256::digest(fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
pub(super) fn noise(seed: u64, len: usize) -> Vec<u8> {
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

/// A little-endian ELF64 image being assembled: fields are written at
/// absolute file offsets, the image growing as needed.
pub(super) struct Image(pub(super) Vec<u8>);

impl Image {
    /// An ELF64 `ET_DYN` x86-64 header with `phnum` program headers at 64.
    pub(super) fn new(phnum: u16) -> Image {
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

    pub(super) fn put(&mut self, at: usize, bytes: &[u8]) {
        let end = at + bytes.len();
        if self.0.len() < end {
            self.0.resize(end, 0);
        }
        self.0[at..end].copy_from_slice(bytes);
    }

    /// Program header `index`, with `p_memsz == p_filesz`.
    pub(super) fn phdr(&mut self, index: usize, p_type: u32, offset: u64, vaddr: u64, filesz: u64) {
        self.phdr_bss(index, p_type, offset, vaddr, filesz, filesz);
    }

    /// Program header `index`.
    pub(super) fn phdr_bss(
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
    pub(super) fn dynamic(&mut self, at: usize, entries: &[(u64, u64)]) {
        for (i, (tag, value)) in entries.iter().enumerate() {
            self.put(at + 16 * i, &tag.to_le_bytes());
            self.put(at + 16 * i + 8, &value.to_le_bytes());
        }
    }
}

/// An ELF64 image whose loader-visible dynamic table needs `needed` (in
/// order), names itself `soname`, and carries `extra` bytes after its strings.
pub(super) fn elf_with(needed: &[&str], soname: Option<&str>, extra: &[u8]) -> Image {
    const BASE: u64 = 0x40_0000;
    use super::elf::{DT_NEEDED, DT_NULL, DT_SONAME, DT_STRTAB, PT_DYNAMIC, PT_LOAD};
    let mut strings = vec![0u8];
    let mut offset_of = |name: &str| {
        let at = strings.len() as u64;
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        at
    };
    let mut entries: Vec<(u64, u64)> = needed.iter().map(|n| (DT_NEEDED, offset_of(n))).collect();
    if let Some(soname) = soname {
        entries.push((DT_SONAME, offset_of(soname)));
    }
    let table_at = 256;
    let strtab_at = table_at + 16 * (entries.len() + 2);
    entries.push((DT_STRTAB, BASE + strtab_at as u64));
    entries.push((DT_NULL, 0));
    let end = strtab_at + strings.len() + extra.len() + 1;
    let mut image = Image::new(2);
    image.phdr(0, PT_LOAD, 0, BASE, end as u64);
    image.phdr(1, PT_DYNAMIC, table_at as u64, BASE + table_at as u64, 16);
    image.dynamic(table_at, &entries);
    image.put(strtab_at, &strings);
    image.put(strtab_at + strings.len(), extra);
    image.put(end - 1, b"\0");
    image
}
