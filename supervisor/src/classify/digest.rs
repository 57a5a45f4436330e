//! The SHA-256 of a file: the identity an operator's hash list names, and the
//! digest alerts and forensic records carry.
//!
//! Kept apart from the format readers because it reads a whole file rather
//! than a bounded header, and callers outside the classifier (the alert sinks,
//! the responder) use it on their own.

use std::fs::File;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

/// Largest file hashed for alerts and forensic records.
pub const MAX_HASHED_BYTES: u64 = 128 * 1024 * 1024;

/// Largest file hashed while a seccomp caller waits for its answer (about
/// 10 ms here): runc retries an entrypoint exec answered later than that.
pub const MAX_DECISION_HASH_BYTES: u64 = 8 * 1024 * 1024;

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
    use std::io::Write;

    use super::*;

    #[test]
    fn digest_of_a_known_content() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"abc").unwrap();
        assert_eq!(
            sha256_hex(&file).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let empty = tempfile::tempfile().unwrap();
        assert_eq!(
            sha256_hex(&empty).as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }
}
