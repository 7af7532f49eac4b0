//! llm.c / modded-nanogpt token shards: a 256 x int32 header (magic 20240520, version 1,
//! token count, rest zero), then the tokens as little-endian uint16.

use std::path::Path;

use super::DataError;

pub const MAGIC: i32 = 20240520;
pub const VERSION: i32 = 1;
const HEADER_INTS: usize = 256;
pub const HEADER_BYTES: usize = HEADER_INTS * 4;
/// GPT-2's end-of-text token, which separates documents in these shards.
pub const GPT2_EOT: u32 = 50256;

/// Reads one shard's tokens, checking the header against the file.
pub fn read_llmc_shard(path: &Path) -> Result<Vec<u32>, DataError> {
    let bytes = crate::regular_file::read(path).map_err(|e| DataError::io(path, e))?;
    parse_llmc_shard(&bytes).map_err(|why| {
        DataError::Input(format!(
            "{} is not an llm.c token shard: {why}\n  fix: give shards written by llm.c / modded-nanogpt (magic {MAGIC}, version {VERSION}, uint16 tokens)",
            path.display()
        ))
    })
}

/// Parses shard bytes; the error says what is wrong with the header.
pub fn parse_llmc_shard(bytes: &[u8]) -> Result<Vec<u32>, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    let int = |i: usize| i32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
    if int(0) != MAGIC {
        return Err(format!("magic number {} (expected {MAGIC})", int(0)));
    }
    if int(1) != VERSION {
        return Err(format!(
            "version {} (expected {VERSION}: uint16 tokens)",
            int(1)
        ));
    }
    let count = usize::try_from(int(2)).map_err(|_| format!("negative token count {}", int(2)))?;
    let body = &bytes[HEADER_BYTES..];
    if body.len() != count * 2 {
        return Err(format!(
            "header says {count} tokens ({} bytes) but {} bytes follow",
            count * 2,
            body.len()
        ));
    }
    Ok(body
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
        .collect())
}

/// Shard bytes for `tokens` (used by tests and tools that write shards).
pub fn encode_llmc_shard(tokens: &[u16]) -> Vec<u8> {
    let mut header = [0i32; HEADER_INTS];
    header[0] = MAGIC;
    header[1] = VERSION;
    header[2] = tokens.len() as i32;
    let mut bytes: Vec<u8> = header.iter().flat_map(|i| i.to_le_bytes()).collect();
    bytes.extend(tokens.iter().flat_map(|t| t.to_le_bytes()));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_tokens() {
        let tokens = [1u16, 50256, 7, 65535];
        let parsed = parse_llmc_shard(&encode_llmc_shard(&tokens)).unwrap();
        assert_eq!(parsed, vec![1, 50256, 7, 65535]);
    }

    #[test]
    fn rejects_bad_headers() {
        let good = encode_llmc_shard(&[1, 2, 3]);
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        assert!(parse_llmc_shard(&bad_magic)
            .unwrap_err()
            .contains("magic number"));
        let mut bad_version = good.clone();
        bad_version[4] = 2;
        assert!(parse_llmc_shard(&bad_version)
            .unwrap_err()
            .contains("version 2"));
        let truncated = &good[..good.len() - 1];
        assert!(parse_llmc_shard(truncated)
            .unwrap_err()
            .contains("header says 3 tokens"));
        assert!(parse_llmc_shard(&good[..100])
            .unwrap_err()
            .contains("shorter than"));
    }
}
