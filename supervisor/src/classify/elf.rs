//! ELF: the libraries a file links and the name it gives itself, read the way
//! the dynamic loader finds them.
//!
//! Only the program headers matter: the kernel maps the `PT_LOAD` segments and
//! ld.so reads its dynamic table and strings *from memory*, at addresses, so
//! the section table, `p_offset` of `PT_DYNAMIC` and `DT_STRSZ` are all
//! ignorable by a file that wants to look innocent. Each quantity below is what
//! glibc does (elf/rtld.c rtld_setup_main_map, elf/dl-load.c
//! _dl_map_object_from_fd, elf/get-dynamic-info.h, elf/dl-deps.c), and each
//! read is bounded: the file is hostile input read while a seccomp caller
//! waits. A room of its own because it is the one binary-format parser here,
//! the part a fuzzer and crafted images exercise.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Largest program header table: the kernel execs no file with a larger one
/// (fs/binfmt_elf.c load_elf_phdrs: `size > 65536`). That is up to 1170 ELF64
/// headers; a lower count would be a way past the classifier on kernels with
/// 64 KiB pages, which accept that many. (ld.so run as `ld.so PROGRAM` maps
/// a PROGRAM with any number, up to 65535: such a file is not read here, like
/// anything past the other caps below.)
const MAX_PHDR_TABLE_BYTES: usize = 64 * 1024;

/// Distinct `DT_NEEDED` names kept when the host's `vm.max_map_count` cannot
/// be read. The loader maps every library it loads, at least one mapping each,
/// and no process holds more mappings than that sysctl allows (65530 by
/// default): a file that needs more libraries cannot run.
const DEFAULT_MAX_NEEDED: usize = 65_530;

/// Longest library name read: `PATH_MAX`. The loader cannot open a longer one.
const MAX_NAME_BYTES: usize = 4096;

/// Bytes read of any file beyond twice its size: the header, the program
/// header table and a few names of a file smaller than this.
const READ_ALLOWANCE: u64 = 1024 * 1024;

/// Distinct `DT_NEEDED` names one process could load: the host's
/// `vm.max_map_count` (not namespaced, so what a container's loader is held
/// to), read once.
fn max_needed() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .filter(|&limit| limit > 0)
            .unwrap_or(DEFAULT_MAX_NEEDED)
    })
}

/// The libraries an ELF file asks for and the name it gives itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Dynamic {
    /// The distinct `DT_NEEDED` names, in table order.
    pub(super) needed: Vec<String>,
    /// `DT_SONAME`.
    pub(super) soname: Option<String>,
    /// False when the table or its names were longer than the reader may read
    /// (twice the file's size, or more libraries than a process can map):
    /// only a file built to be unreadable gets there, and what it links is
    /// then unknown.
    pub(super) complete: bool,
}

// Program header types and dynamic tags, as <elf.h> numbers them.
pub(super) const PT_LOAD: u32 = 1;
pub(super) const PT_DYNAMIC: u32 = 2;
pub(super) const DT_NULL: u64 = 0;
pub(super) const DT_NEEDED: u64 = 1;
pub(super) const DT_STRTAB: u64 = 5;
pub(super) const DT_SONAME: u64 = 14;

/// Positioned reads of one file, counted, and refused past a budget of twice
/// the file's size plus [`READ_ALLOWANCE`]: the dynamic table can be read to
/// its end whatever its length, and a file whose names overlap so that
/// reading them costs more than that is reported incomplete rather than read
/// without end. Nothing read is kept beyond the caller's own small buffers.
struct Reader<'a> {
    file: &'a File,
    /// Bytes read so far.
    read: u64,
    /// Bytes this file may cost.
    limit: u64,
}

impl<'a> Reader<'a> {
    fn new(file: &'a File) -> Reader<'a> {
        let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        Reader {
            file,
            read: 0,
            limit: size.saturating_mul(2).saturating_add(READ_ALLOWANCE),
        }
    }

    /// Bytes left to read.
    fn budget(&self) -> usize {
        usize::try_from(self.limit.saturating_sub(self.read)).unwrap_or(usize::MAX)
    }

    /// Whether the budget is spent.
    fn spent(&self) -> bool {
        self.read >= self.limit
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
/// dynamic loader finds them (see above), reading at most twice the file's
/// size and [`READ_ALLOWANCE`].
pub(super) fn elf_dynamic(file: &File) -> Option<Dynamic> {
    elf_dynamic_from(&mut Reader::new(file))
}

fn elf_dynamic_from(reader: &mut Reader<'_>) -> Option<Dynamic> {
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

    // The dynamic table runs to DT_NULL (p_filesz and p_memsz play no part),
    // however long: no count of entries is a limit the loader knows. What
    // bounds it is the mapped file content and the reader's budget.
    let (mut at, available) = file_range(&loads, page, dynamic?)?;
    let entry = layout.dyn_size();
    let limit = u64::try_from(entry).ok()?;
    let mut left = available - available % limit;
    let mut chunk = [0u8; 4096];
    let mut needed: Vec<u64> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut complete = true;
    let (mut strtab, mut soname) = (None, None);
    'table: while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
        let got = reader.some(at, &mut chunk[..want]);
        for dyn_entry in chunk[..got].chunks_exact(entry) {
            let tag = layout.word(dyn_entry, 0)?;
            let value = layout.word(dyn_entry, entry / 2)?;
            match tag {
                DT_NULL => break 'table,
                // elf/dl-deps.c walks every DT_NEEDED, in order; one name
                // named twice is one library.
                DT_NEEDED if !seen.contains(&value) => {
                    if needed.len() >= max_needed() {
                        complete = false;
                    } else {
                        seen.insert(value);
                        needed.push(value);
                    }
                }
                // elf/get-dynamic-info.h: `info[tag] = dyn`, the last one wins.
                DT_STRTAB => strtab = Some(value),
                DT_SONAME => soname = Some(value),
                _ => {}
            }
        }
        if got < want {
            // The end of the file, or of the budget: only the second leaves
            // entries the loader would read unread.
            complete &= !reader.spent();
            break;
        }
        left -= got as u64;
        at = at.checked_add(got as u64)?;
    }
    drop(seen);
    // Without DT_STRTAB the loader has no names to load either.
    let strtab = strtab?;
    let mut name = |offset: u64| {
        let (at, available) = file_range(&loads, page, strtab.checked_add(offset)?)?;
        read_name(reader, at, available)
    };
    let mut names = Vec::new();
    let mut distinct = HashSet::new();
    for offset in needed {
        let Some(found) = name(offset) else {
            continue;
        };
        // Two offsets can spell one name: one library.
        if distinct.insert(found.clone()) {
            names.push(found);
        }
    }
    let soname = soname.and_then(&mut name);
    complete &= !reader.spent();
    Some(Dynamic {
        needed: names,
        soname,
        complete,
    })
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
    // Library names are short (Debian's longest, ~40 bytes): a first small
    // read keeps a long list of them cheap, then larger pieces.
    let mut size = 64;
    while name.len() < limit {
        let want = (limit - name.len()).min(size);
        size = piece.len();
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

#[cfg(test)]
mod tests {
    //! ELF files built byte by byte: what the dynamic loader reads, and no more.

    use std::fs::File;
    use std::path::Path;

    use super::*;
    use crate::classify::testutil::*;

    const DT_STRSZ: u64 = 10;

    /// `elf_dynamic` of `image`, written to a file in `scratch`.
    fn dynamic_of(scratch: &Scratch, image: &Image) -> Option<(Vec<String>, Option<String>)> {
        let path = scratch.write("image", &image.0);
        elf_dynamic(&File::open(path).unwrap()).map(|found| (found.needed, found.soname))
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
            let found = elf_dynamic(&File::open(copy).unwrap()).unwrap();
            (found.needed, found.soname)
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
    fn dynamic_counted(scratch: &Scratch, image: &Image) -> (Option<Dynamic>, u64) {
        let path = scratch.write("image", &image.0);
        let file = File::open(path).unwrap();
        let mut reader = Reader::new(&file);
        let found = elf_dynamic_from(&mut reader);
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
        // each naming a different suffix of one long unterminated string: the
        // names cost far more than the file to read, so the reader stops at its
        // budget and says the list is incomplete. The first name read is
        // libpcap's, and that is what the classifier reports.
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
        assert!(!found.complete);
        assert!(found.needed[0].starts_with("libpcap.so.A"));
        assert_eq!(found.needed[1].len(), MAX_NAME_BYTES);
        let budget = 2 * SIZE as u64 + READ_ALLOWANCE;
        assert!(read <= budget, "{read} > {budget}");
        assert_links_libpcap(&classify_image(&image));

        // The same names, all but the last spelling one library: read to the
        // end, complete, the last one found.
        let mut entries = vec![(DT_STRTAB, BASE + strtab as u64)];
        entries.extend(std::iter::repeat_n((DT_NEEDED, 1), 4000));
        entries.push((DT_NEEDED, 0));
        entries.push((DT_NULL, 0));
        image.dynamic(4096, &entries);
        let (found, read) = dynamic_counted(&scratch, &image);
        let found = found.unwrap();
        assert!(found.complete);
        assert_eq!(found.needed.len(), 2);
        assert!(found.needed[1].starts_with("libpcap.so.A"));
        // Read once each: the header, the table, two names.
        assert!(
            read <= (64 + MAX_PHDR_TABLE_BYTES + SIZE / 2 + 2 * MAX_NAME_BYTES) as u64,
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

    #[test]
    fn a_long_needed_list_is_read_to_its_end() {
        // Past the old limits of 256 DT_NEEDED names and 4096 dynamic entries,
        // libpcap last.
        let scratch = Scratch::new();
        let fillers: Vec<String> = (0..5000).map(|i| format!("libfiller{i}.so.1")).collect();
        let mut needed: Vec<&str> = fillers.iter().map(String::as_str).collect();
        needed.push("libpcap.so.0.8");
        let path = scratch.write("many", &elf_with(&needed, None, b"").0);
        let found = elf_dynamic(&File::open(&path).unwrap()).unwrap();
        assert!(found.complete);
        assert_eq!(found.needed.len(), 5001);
        assert_eq!(
            found.needed.last().map(String::as_str),
            Some("libpcap.so.0.8")
        );
        assert_links_libpcap(&classify(&path));
    }
}
