//! Run ids: a content hash of the fully resolved run config.
//!
//! The config is serialised to JSON with fields in declaration order and floats in their
//! shortest round-trip form, which is the same on every machine and every run of the
//! program; its SHA-256 is the id. Any change to a resolved value changes the id; labels,
//! the study name and execution settings (device) are not part of it.

use sha2::{Digest, Sha256};

use crate::spec::RunConfig;

/// Hex characters kept from the hash: 48 bits, collision-free for any realistic study.
pub const RUN_ID_LEN: usize = 12;

/// The canonical text that the run id hashes.
pub fn canonical_json(config: &RunConfig) -> String {
    serde_json::to_string(config).expect("a run config always serialises to JSON")
}

/// The run id of `config`.
pub fn run_id(config: &RunConfig) -> String {
    let digest = Sha256::digest(canonical_json(config).as_bytes());
    digest
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<String>()[..RUN_ID_LEN]
        .to_owned()
}
