//! What a training run reports while it runs.

/// Which data a metric was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}

/// One observation, in tidy form.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// Optimizer steps taken when it was measured.
    pub step: u64,
    /// Training tokens consumed by then.
    pub tokens: u64,
    pub split: Split,
    /// `loss`, `lr`, `tokens_per_s`, ...
    pub metric: &'static str,
    pub value: f64,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

/// The global gradient norm before any clip, every step of every run (split `train`).
pub const GRAD_NORM_METRIC: &str = "grad_norm";

/// The mean over the eval batch's tokens of log Z, Z the output softmax's normaliser,
/// at every evaluation (split `val`): the output logits' scale that z-loss holds down.
pub const LOG_Z_METRIC: &str = "log_z";

/// The largest pre-softmax attention logit q.k / sqrt(head_dim) of the training batch,
/// over every layer and head, every step (split `train`).
pub const MAX_LOGIT_METRIC: &str = "max_logit";

/// What a layer's largest training logit metric starts with: `max_logit.layer<i>`.
pub const LAYER_LOGIT_PREFIX: &str = "max_logit.layer";

/// The metric of layer `layer`'s largest training attention logit.
pub fn layer_logit_metric(layer: usize) -> &'static str {
    interned(format!("{LAYER_LOGIT_PREFIX}{layer}"))
}

/// The metric of an extra evaluation set's loss: `loss.<name>`.
pub fn eval_set_metric(name: &str) -> &'static str {
    interned(format!("{EVAL_SET_PREFIX}{name}"))
}

/// `metric` as a `&'static str`, as metric names are. Such names are few (a study has
/// at most `spec::check::MAX_EVAL_SETS` eval sets and a model a bounded number of
/// layers), so each distinct one is kept for the life of the process.
fn interned(metric: String) -> &'static str {
    use std::sync::Mutex;
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = names.iter().find(|n| **n == metric) {
        return known;
    }
    let leaked: &'static str = Box::leak(metric.into_boxed_str());
    names.push(leaked);
    leaked
}

/// What an eval set's loss metric starts with.
pub const EVAL_SET_PREFIX: &str = "loss.";

/// Receives a run's observations as they happen.
pub trait TrainObserver {
    /// A new observation.
    fn metric(&mut self, row: MetricRow);
    /// After every step: a chance to update a progress display.
    fn step_done(&mut self, tokens: u64, loss: f32, tokens_per_s: f64);
    /// The rank probes of one probe point.
    fn probes(&mut self, _rows: Vec<crate::probe::ProbeRow>) {}
    /// After each evaluation: a good moment to persist what was observed so far.
    fn evaluated(&mut self) {}
    /// Persist everything observed so far, now (before a checkpoint is written).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// The trained model at the end of a run that finished its budget: every tensor the
    /// model reads, by name. Called once, before the run returns `Done`.
    fn final_weights(&mut self, _weights: Vec<crate::model::snapshot::NamedTensor>) {}
}
