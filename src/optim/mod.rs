//! Optimizers beyond dfdx's own: Muon (CPU reference) and the split of a model's
//! parameters between Muon and AdamW.

pub mod adamw;
pub mod groups;
pub mod muon;
pub mod newton_schulz;
