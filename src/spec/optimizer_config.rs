//! The run's optimizer: AdamW, Muon (with its AdamW for the other tensors) or Lion
//! (`optimizer`).

use serde::{Deserialize, Serialize};

use super::problems::*;

use super::is_false;
use super::patch::{patch_as_leaf, spec_struct, Patch, PatchError};

/// Which optimizer updates the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OptimizerConfig {
    /// AdamW on every parameter.
    AdamW(AdamWConfig),
    /// Muon on 2-D hidden matrices, AdamW (`adamw`) on everything else.
    Muon(MuonConfig),
    /// Lion on every parameter.
    Lion(LionConfig),
}

impl OptimizerConfig {
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::AdamW(_) => "AdamW",
            OptimizerConfig::Muon(_) => "Muon",
            OptimizerConfig::Lion(_) => "Lion",
        }
    }
}

impl Patch for OptimizerConfig {
    /// A path below `optimizer` goes into the active variant: `optimizer.lr` is the
    /// learning rate of whichever optimizer the run uses.
    fn patch(&mut self, path: &[&str], depth: usize, value: &str) -> Result<(), PatchError> {
        if depth == path.len() {
            return super::patch::replace(self, value);
        }
        let name = self.name();
        let result = match self {
            OptimizerConfig::AdamW(config) => config.patch(path, depth, value),
            OptimizerConfig::Muon(config) => config.patch(path, depth, value),
            OptimizerConfig::Lion(config) => config.patch(path, depth, value),
        };
        result.map_err(|err| match err {
            PatchError::NoSuchField {
                depth: at,
                expected,
                note: None,
            } if at == depth => PatchError::NoSuchField {
                depth: at,
                expected,
                note: Some(format!("the optimizer here is {name}")),
            },
            other => other,
        })
    }
}

spec_struct! {
    /// AdamW with decoupled weight decay.
    pub struct AdamWConfig {
        pub lr: f64,
        pub betas: (f64, f64),
        pub eps: f64,
        pub weight_decay: f64,
        /// Weight decay independent of the learning rate (Wortsman et al. 2023): each
        /// step p *= 1 - weight_decay x the schedule's multiplier, whatever `lr` and
        /// `schedule.lr_scale` are, so a learning-rate sweep does not also sweep the decay.
        /// Off (the default, left out of the serialised config): p *= 1 - lr x weight_decay.
        #[serde(default, skip_serializing_if = "is_false")]
        pub independent_weight_decay: bool,
    }
}

spec_struct! {
    /// Lion: the sign of an interpolated momentum, with decoupled weight decay
    /// (Chen et al. 2023).
    pub struct LionConfig {
        pub lr: f64,
        /// (interpolation of the update direction, momentum decay); the paper's (0.9, 0.99).
        pub betas: (f64, f64),
        /// Decoupled: p *= 1 - lr * weight_decay each step.
        pub weight_decay: f64,
        /// Weight decay independent of the learning rate (Wortsman et al. 2023): each
        /// step p *= 1 - weight_decay x the schedule's multiplier, whatever `lr` and
        /// `schedule.lr_scale` are, so a learning-rate sweep does not also sweep the decay.
        /// Off (the default, left out of the serialised config): p *= 1 - lr x weight_decay.
        #[serde(default, skip_serializing_if = "is_false")]
        pub independent_weight_decay: bool,
    }
}

spec_struct! {
    /// Muon: momentum, then Newton-Schulz orthogonalisation of each hidden matrix update.
    pub struct MuonConfig {
        pub variant: MuonVariant,
        pub lr: f64,
        pub momentum: f64,
        pub nesterov: bool,
        /// Newton-Schulz iterations (Polar Express has coefficients for at most 5).
        pub ns_steps: usize,
        pub update_scale: UpdateScale,
        /// Decoupled weight decay on Muon matrices: p *= 1 - lr * weight_decay.
        pub weight_decay: f64,
        /// Weight decay independent of the learning rate (Wortsman et al. 2023): each
        /// step p *= 1 - weight_decay x the schedule's multiplier, whatever `lr` and
        /// `schedule.lr_scale` are, so a learning-rate sweep does not also sweep the decay.
        /// Off (the default, left out of the serialised config): p *= 1 - lr x weight_decay.
        #[serde(default, skip_serializing_if = "is_false")]
        pub independent_weight_decay: bool,
        /// Precision of the Newton-Schulz iteration.
        pub precision: Precision,
        pub matrices: MuonMatrices,
        /// AdamW for embeddings, LM head and norm gains.
        pub adamw: AdamWConfig,
    }
}

/// Newton-Schulz coefficient schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MuonVariant {
    /// Quintic (3.4445, -4.7750, 2.0315) every step; X = G / (||G||_F + 1e-7).
    Ns5,
    /// Per-step "Polar Express" coefficients; X = G / (||G||_F * 1.01 + 1e-7).
    PolarExpress,
}

/// Scale applied to the orthogonalised update of a [rows x cols] matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum UpdateScale {
    /// max(1, rows/cols)^0.5.
    AspectRatio,
    /// factor * sqrt(max(rows, cols)), RMS-matched to AdamW with factor 0.2.
    AdamRms(f64),
}

/// A number format: of Muon's orthogonalisation, of the model's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    Bf16,
    F32,
}

impl Precision {
    /// The default of `model.precision`.
    pub fn f32() -> Precision {
        Precision::F32
    }

    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

/// How attention projections are grouped into Muon matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MuonMatrices {
    /// Q, K, V and O^T stacked into one [q+k+v+o, d_model] matrix per layer, as in the seed.
    MergedQkvo,
    /// Each projection orthogonalised on its own.
    Separate,
    /// Each head's block orthogonalised on its own: every query head's rows of Q and of
    /// O^T, every key/value head's rows of K and of V ([head_dim x d_model] each).
    PerHead,
}

patch_as_leaf!(MuonVariant, UpdateScale, Precision, MuonMatrices,);

// What this section must hold (`check::check_run` runs every section's checks).

pub(super) fn check_adamw(adamw: &AdamWConfig, at: &str, p: &mut Problems) {
    p.positive_finite(&format!("{at}.lr"), adamw.lr);
    p.in_unit_interval(&format!("{at}.betas"), adamw.betas.0, true);
    p.in_unit_interval(&format!("{at}.betas"), adamw.betas.1, true);
    p.positive_finite(&format!("{at}.eps"), adamw.eps);
    check_weight_decay(&format!("{at}.weight_decay"), adamw.weight_decay, p);
    check_independent(
        &format!("{at}.weight_decay"),
        adamw.weight_decay,
        adamw.independent_weight_decay,
        p,
    );
}

/// An independent decay multiplies the weights by 1 - weight_decay at the schedule's peak:
/// it must stay below 1.
fn check_independent(field: &str, weight_decay: f64, independent: bool, p: &mut Problems) {
    if independent && weight_decay >= 1.0 {
        p.push(
            field,
            format!(
                "an independent weight decay of {weight_decay} would zero the weights in one step"
            ),
            "use a value below 1 (Wortsman et al. use 1e-4)",
        );
    }
}

pub(super) fn check_lion(lion: &LionConfig, p: &mut Problems) {
    p.positive_finite("optimizer.lr", lion.lr);
    p.in_unit_interval("optimizer.betas", lion.betas.0, true);
    p.in_unit_interval("optimizer.betas", lion.betas.1, true);
    check_weight_decay("optimizer.weight_decay", lion.weight_decay, p);
    let independent = lion.independent_weight_decay;
    check_independent("optimizer.weight_decay", lion.weight_decay, independent, p);
    if !independent && lion.lr * lion.weight_decay >= 1.0 {
        p.push(
            "optimizer.weight_decay",
            format!(
                "lr * weight_decay is {}: each step would scale the weights by {} (<= 0)",
                lion.lr * lion.weight_decay,
                1.0 - lion.lr * lion.weight_decay
            ),
            "Lion's weight decay is typically 3-10x AdamW's, with lr 3-10x smaller (e.g. lr: 3e-4, weight_decay: 1.0)",
        );
    }
}

fn check_weight_decay(field: &str, value: f64, p: &mut Problems) {
    if !(value.is_finite() && value >= 0.0) {
        p.push(
            field,
            format!("`{field}` must be >= 0, got {value}"),
            "use 0.0 for none",
        );
    }
}

pub(super) fn check_muon(muon: &MuonConfig, p: &mut Problems) {
    p.positive_finite("optimizer.lr", muon.lr);
    p.in_unit_interval("optimizer.momentum", muon.momentum, true);
    p.size("optimizer.ns_steps", muon.ns_steps, MAX_NS_STEPS);
    if muon.variant == MuonVariant::PolarExpress && muon.ns_steps > POLAR_EXPRESS_STEPS {
        p.push(
            "optimizer.ns_steps",
            format!(
                "Polar Express has coefficients for {POLAR_EXPRESS_STEPS} steps, ns_steps is {}",
                muon.ns_steps
            ),
            format!("use ns_steps: {POLAR_EXPRESS_STEPS} or fewer, or variant: Ns5"),
        );
    }
    if let UpdateScale::AdamRms(factor) = muon.update_scale {
        p.positive_finite("optimizer.update_scale", factor);
    }
    check_weight_decay("optimizer.weight_decay", muon.weight_decay, p);
    let independent = muon.independent_weight_decay;
    check_independent("optimizer.weight_decay", muon.weight_decay, independent, p);
    check_adamw(&muon.adamw, "optimizer.adamw", p);
}
