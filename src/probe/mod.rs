//! Rank probes: metrics of captured attention activations.

pub mod rank;
