//! Kernel struct offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The exec probe names the executed file by walking `current->mm->exe_file`
//! down to its inode. Rust eBPF programs get no CO-RE relocations, so the
//! offsets of those fields are looked up here, at load time, and handed to the
//! program as a global ([`KernelOffsets`]).
//!
//! A small strict reader rather than a crate: aya-obj parses BTF but keeps its
//! member API private, and the one thing needed — "byte offset of this named
//! member of this named struct, through anonymous structs and unions" — takes
//! less code than a new dependency's review. Its input is the kernel's own
//! file, but it is parsed as if hostile all the same: every length is checked,
//! nothing indexes out of bounds, and an unexpected layout (a bitfield, a
//! member of the wrong size) is an error, never a guess. The format is the
//! kernel's `Documentation/bpf/btf.rst`.

use sniffguard_common::abi::KernelOffsets;

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Larger than any vmlinux BTF (about 6 MiB on a distribution kernel).
const MAX_BTF_BYTES: u64 = 64 * 1024 * 1024;

/// How deep anonymous structs and unions, and typedef/qualifier chains, are
/// followed.
const MAX_NESTING: usize = 16;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Why the offsets could not be had.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read.
    #[error("cannot read {VMLINUX_BTF}: {0}")]
    Read(#[source] std::io::Error),
    /// Not BTF, or cut short, or inconsistent.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// A kind this reader does not know (a newer kernel): the type section
    /// cannot be walked past it.
    #[error("unknown BTF kind {0}")]
    UnknownKind(u32),
    /// A struct or member the probe needs is not there, or not as expected.
    #[error("{0}")]
    Missing(String),
}

type Result<T> = std::result::Result<T, BtfError>;

/// One type record: where it is in the type section, and its fixed words.
#[derive(Debug, Clone, Copy)]
struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    vlen: usize,
    /// `size` or `type`, by kind.
    size_or_type: u32,
    /// Offset of the kind-specific data after the 12-byte header.
    extra: usize,
}

/// A parsed BTF blob.
pub struct Btf {
    data: Vec<u8>,
    /// Start and length of the string section in `data`.
    strings: (usize, usize),
    /// Index `id - 1` is type `id` (type 0 is `void`).
    types: Vec<Type>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32> {
    let bytes = data
        .get(
            at..at
                .checked_add(4)
                .ok_or(BtfError::Malformed("offset overflow"))?,
        )
        .ok_or(BtfError::Malformed("cut short"))?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn usize_of(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl Btf {
    /// Reads and parses the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Btf> {
        use std::io::Read;
        let file = std::fs::File::open(VMLINUX_BTF).map_err(BtfError::Read)?;
        let mut data = Vec::new();
        file.take(MAX_BTF_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(BtfError::Read)?;
        if data.len() as u64 > MAX_BTF_BYTES {
            return Err(BtfError::Malformed("larger than any kernel's BTF"));
        }
        Btf::parse(data)
    }

    /// Parses a little-endian BTF blob (the only byte order this host has).
    pub fn parse(data: Vec<u8>) -> Result<Btf> {
        let magic = data
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or(BtfError::Malformed("cut short"))?;
        if magic != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic (or not little-endian)"));
        }
        let hdr_len = usize_of(u32_at(&data, 4)?);
        let section = |off: usize, len: usize| -> Result<(usize, usize)> {
            let start = hdr_len
                .checked_add(usize_of(u32_at(&data, off)?))
                .ok_or(BtfError::Malformed("section offset overflow"))?;
            let len = usize_of(u32_at(&data, len)?);
            match start.checked_add(len) {
                Some(end) if end <= data.len() => Ok((start, len)),
                _ => Err(BtfError::Malformed("section past the end")),
            }
        };
        if hdr_len < 24 {
            return Err(BtfError::Malformed("header too short"));
        }
        let (types_at, types_len) = section(8, 12)?;
        let strings = section(16, 20)?;
        let mut types = Vec::new();
        let mut at = 0usize;
        while at < types_len {
            if types_len - at < 12 {
                return Err(BtfError::Malformed("type record cut short"));
            }
            let base = types_at + at;
            let name_off = u32_at(&data, base)?;
            let info = u32_at(&data, base + 4)?;
            let size_or_type = u32_at(&data, base + 8)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = usize_of(info & 0xffff);
            let extra_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                other => return Err(BtfError::UnknownKind(other)),
            };
            let next = at + 12 + extra_len;
            if next > types_len {
                return Err(BtfError::Malformed("type data cut short"));
            }
            types.push(Type {
                name_off,
                kind,
                kind_flag: info >> 31 == 1,
                vlen,
                size_or_type,
                extra: base + 12,
            });
            at = next;
        }
        Ok(Btf {
            data,
            strings,
            types,
        })
    }

    fn name(&self, off: u32) -> Result<&[u8]> {
        let (start, len) = self.strings;
        let off = usize_of(off);
        if off >= len {
            return Err(BtfError::Malformed("name past the string section"));
        }
        let rest = &self.data[start + off..start + len];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfError::Malformed("unterminated name"))?;
        Ok(&rest[..end])
    }

    fn get(&self, id: u32) -> Result<&Type> {
        usize_of(id)
            .checked_sub(1)
            .and_then(|i| self.types.get(i))
            .ok_or(BtfError::Malformed("type id out of range"))
    }

    /// The struct named `name` that has members (a kernel's BTF also holds
    /// forward declarations).
    fn find_struct(&self, name: &str) -> Result<&Type> {
        for t in &self.types {
            if t.kind == KIND_STRUCT && t.vlen > 0 && self.name(t.name_off)? == name.as_bytes() {
                return Ok(t);
            }
        }
        Err(BtfError::Missing(format!(
            "no struct {name} in the kernel's BTF"
        )))
    }

    /// The type `id` after typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Result<&Type> {
        for _ in 0..MAX_NESTING {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Ok(t),
            }
        }
        Err(BtfError::Malformed("type chain too long"))
    }

    /// The size in bytes of a resolved type, for the kinds a probed field can
    /// have.
    fn size_of(&self, t: &Type) -> Option<u32> {
        match t.kind {
            KIND_PTR => Some(8),
            KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT | KIND_UNION | KIND_FLOAT => {
                Some(t.size_or_type)
            }
            _ => None,
        }
    }

    /// (name offset, type id, bit offset) of member `i` of a struct or union.
    fn member(&self, t: &Type, i: usize) -> Result<(u32, u32, u32)> {
        let at = t.extra + 12 * i;
        let offset = u32_at(&self.data, at + 8)?;
        let bits = if t.kind_flag {
            // Bitfield size in the top byte: a bitfield is never a probed
            // field, and its offset is not a byte offset.
            if offset >> 24 != 0 {
                return Ok((
                    u32_at(&self.data, at)?,
                    u32_at(&self.data, at + 4)?,
                    u32::MAX,
                ));
            }
            offset & 0x00ff_ffff
        } else {
            offset
        };
        Ok((u32_at(&self.data, at)?, u32_at(&self.data, at + 4)?, bits))
    }

    /// Byte offset and type of member `field` of the struct or union `t`,
    /// searching anonymous members as C does.
    fn find_member(&self, t: &Type, field: &str, depth: usize) -> Result<Option<(u32, u32)>> {
        if depth > MAX_NESTING {
            return Err(BtfError::Malformed("anonymous members nested too deep"));
        }
        for i in 0..t.vlen {
            let (name_off, type_id, bits) = self.member(t, i)?;
            let name = self.name(name_off)?;
            if name == field.as_bytes() {
                if bits == u32::MAX || bits % 8 != 0 {
                    return Err(BtfError::Missing(format!("{field} is a bitfield")));
                }
                return Ok(Some((bits / 8, type_id)));
            }
            if name.is_empty() {
                let inner = self.resolve(type_id)?;
                if matches!(inner.kind, KIND_STRUCT | KIND_UNION) && bits != u32::MAX {
                    if let Some((off, ty)) = self.find_member(inner, field, depth + 1)? {
                        return Ok(Some((bits / 8 + off, ty)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Byte offset of `strukt.field` (a path like `i_ctime.tv_sec` follows
    /// named struct members), checked to be `size` bytes wide.
    pub fn offset_of(&self, strukt: &str, path: &str, size: u32) -> Result<u32> {
        let mut t = self.find_struct(strukt)?;
        let mut total = 0u32;
        let mut fields = path.split('.').peekable();
        while let Some(field) = fields.next() {
            let (off, ty) = self
                .find_member(t, field, 0)?
                .ok_or_else(|| BtfError::Missing(format!("struct {strukt} has no {path}")))?;
            total = total
                .checked_add(off)
                .ok_or(BtfError::Malformed("offset overflow"))?;
            let resolved = self.resolve(ty)?;
            if fields.peek().is_none() {
                if self.size_of(resolved) != Some(size) {
                    return Err(BtfError::Missing(format!(
                        "{strukt}.{path} is not {size} bytes wide"
                    )));
                }
            } else if !matches!(resolved.kind, KIND_STRUCT | KIND_UNION) {
                return Err(BtfError::Missing(format!(
                    "{strukt}.{path}: {field} is not a struct"
                )));
            }
            t = resolved;
        }
        Ok(total)
    }

    /// The first of `paths` that `strukt` has (kernels renamed some fields).
    fn offset_of_any(&self, strukt: &str, paths: &[&str], size: u32) -> Result<u32> {
        let mut last = None;
        for path in paths {
            match self.offset_of(strukt, path, size) {
                Ok(offset) => return Ok(offset),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or(BtfError::Missing(format!(
            "struct {strukt}: no field asked"
        ))))
    }

    /// The offsets the exec probe needs to name the executed file.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets> {
        Ok(KernelOffsets {
            valid: 1,
            task_mm: self.offset_of("task_struct", "mm", 8)?,
            mm_exe_file: self.offset_of("mm_struct", "exe_file", 8)?,
            file_inode: self.offset_of("file", "f_inode", 8)?,
            inode_sb: self.offset_of("inode", "i_sb", 8)?,
            inode_ino: self.offset_of("inode", "i_ino", 8)?,
            inode_nlink: self.offset_of("inode", "i_nlink", 4)?,
            // 6.11 and later keep the seconds and nanoseconds apart; 6.6 to
            // 6.10 name the timespec `__i_ctime`, older kernels `i_ctime`.
            inode_ctime_sec: self.offset_of_any(
                "inode",
                &["i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec"],
                8,
            )?,
            inode_ctime_nsec: match self.offset_of("inode", "i_ctime_nsec", 4) {
                Ok(offset) => offset,
                // A `long` tv_nsec: its low half on this little-endian host.
                Err(_) => {
                    self.offset_of_any("inode", &["__i_ctime.tv_nsec", "i_ctime.tv_nsec"], 8)?
                }
            },
            sb_dev: self.offset_of("super_block", "s_dev", 4)?,
        })
    }
}

/// The offsets from the running kernel's BTF.
pub fn kernel_offsets() -> Result<KernelOffsets> {
    Btf::from_sys_fs()?.kernel_offsets()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob builder for tests: types as (name, info, size_or_type, extra).
    struct Builder {
        strings: Vec<u8>,
        types: Vec<u8>,
    }

    impl Builder {
        fn new() -> Builder {
            Builder {
                strings: vec![0],
                types: Vec::new(),
            }
        }

        fn string(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let at = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            at
        }

        fn push(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32, extra: &[u32]) {
            let name = self.string(name);
            for word in [name, (kind << 24) | vlen, size_or_type] {
                self.types.extend_from_slice(&word.to_le_bytes());
            }
            for word in extra {
                self.types.extend_from_slice(&word.to_le_bytes());
            }
        }

        fn members(&mut self, name: &str, kind: u32, size: u32, members: &[(&str, u32, u32)]) {
            let mut extra = Vec::new();
            for (member, ty, bits) in members {
                extra.extend([self.string(member), *ty, *bits]);
            }
            self.push(name, kind, members.len() as u32, size, &extra);
        }

        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for word in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// 1 u32, 2 u64, 3 pointer, 4 anonymous union { u32 i_nlink; u32 __i_nlink },
    /// 5 struct inode { u64 i_ino @0; union @8; u64 i_ctime_sec @16; }.
    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        b.push("unsigned int", KIND_INT, 0, 4, &[32]);
        b.push("long unsigned int", KIND_INT, 0, 8, &[64]);
        b.push("", KIND_PTR, 0, 2, &[]);
        b.members("", KIND_UNION, 4, &[("i_nlink", 1, 0), ("__i_nlink", 1, 0)]);
        b.members(
            "inode",
            KIND_STRUCT,
            24,
            &[("i_ino", 2, 0), ("", 4, 64), ("i_ctime_sec", 2, 128)],
        );
        b.build()
    }

    #[test]
    fn members_through_anonymous_unions() {
        let btf = Btf::parse(sample()).unwrap();
        assert_eq!(btf.offset_of("inode", "i_ino", 8).unwrap(), 0);
        assert_eq!(btf.offset_of("inode", "i_nlink", 4).unwrap(), 8);
        assert_eq!(btf.offset_of("inode", "i_ctime_sec", 8).unwrap(), 16);
        // The wrong width, a missing member, a missing struct: errors.
        assert!(btf.offset_of("inode", "i_nlink", 8).is_err());
        assert!(btf.offset_of("inode", "i_size", 8).is_err());
        assert!(btf.offset_of("file", "f_inode", 8).is_err());
    }

    #[test]
    fn truncated_and_corrupted_blobs_are_errors_not_panics() {
        let blob = sample();
        for len in 0..blob.len() {
            let _ = Btf::parse(blob[..len].to_vec()).map(|b| b.offset_of("inode", "i_nlink", 4));
        }
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut bad = blob.clone();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % bad.len();
            bad[at] = (seed >> 13) as u8;
            if let Ok(btf) = Btf::parse(bad) {
                let _ = btf.offset_of("inode", "i_nlink", 4);
                let _ = btf.kernel_offsets();
            }
        }
    }

    #[test]
    fn a_self_referencing_type_chain_ends() {
        let mut b = Builder::new();
        b.push("loop", KIND_TYPEDEF, 0, 1, &[]);
        b.members("s", KIND_STRUCT, 8, &[("f", 1, 0)]);
        let btf = Btf::parse(b.build()).unwrap();
        assert!(btf.offset_of("s", "f", 8).is_err());
    }

    #[test]
    fn the_running_kernel_has_every_offset() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            return;
        }
        let offsets = kernel_offsets().unwrap();
        assert_eq!(offsets.valid, 1);
        assert!(offsets.task_mm > 0 && offsets.inode_ino > 0 && offsets.sb_dev > 0);
    }
}
