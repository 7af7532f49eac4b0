//! Where prepared data lives between runs: corpora, trained tokenizers, token shards.
//!
//! `RANKPROBE_CACHE` if set, else `$XDG_CACHE_HOME/rankprobe`, else `~/.cache/rankprobe`.
//! Everything in it is keyed by content hashes, so it can be deleted at any time.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::digest::hex;

/// The cache root (not created here).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RANKPROBE_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("rankprobe");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("rankprobe")
}

/// Hex SHA-256 of several parts, each length-prefixed so that ("ab", "c") != ("a", "bc").
pub fn hash_parts(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_parts_is_boundary_sensitive() {
        assert_ne!(hash_parts(&[b"ab", b"c"]), hash_parts(&[b"a", b"bc"]));
        assert_eq!(hash_parts(&[b"x"]), hash_parts(&[b"x"]));
    }
}
