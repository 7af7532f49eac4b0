//! What a run measures at an evaluation: the validation loss, the extra eval sets'
//! losses, and at probe points the probes (activations, weights, the causal key
//! ablation, QK-Clip's statistics). The training loop (`run_loop`) calls `evaluate`.

use std::time::Instant;

use crate::model::arch::KeyProjection;
use crate::model::forward::TokenBatch as TokenTensors;
use crate::model::Capture;
use crate::model::Taps;
use crate::optim::qk_clip::{
    QkClip, QK_CLIP_MIN_FACTOR_METRIC, QK_CLIP_STEPS_METRIC, TRAIN_MAX_LOGIT_METRIC,
};
use crate::probe::key_ablation::{
    projections, rank_at_pr, rank_metric, AT_PR_METRIC, RANK_AT_PR_METRIC,
};
use crate::probe::site_name;
use crate::probe::weights::{layer_rows, LayerWeights};
use crate::probe::{
    measure, model_rows, sites_to_capture, wants_token_losses, ProbePoint, ProbeRow,
};
use crate::spec::run_config::Gain;
use crate::spec::run_config::Tensor as TensorKind;

use super::device::TrainDevice;
use super::observer::{MetricRow, Split, TrainObserver, LOG_Z_METRIC};
use super::run_loop::RunLoop;

impl<
        D: TrainDevice,
        const V: usize,
        const M: usize,
        const HD: usize,
        const KVW: usize,
        const F: usize,
        const L: usize,
    > RunLoop<'_, D, V, M, HD, KVW, F, L>
{
    /// Validation loss at `step`, with the rank probes when `probing`.
    pub(super) fn evaluate(
        &mut self,
        observer: &mut dyn TrainObserver,
        step: u64,
        probing: bool,
        at: f64,
    ) {
        let tokens = step * self.tokens_per_step;
        let probes = &self.config.probes;
        // log Z of the output softmax at every evaluation; activations only when probing.
        let mut taps = Taps {
            sites: if probing {
                sites_to_capture(probes)
            } else {
                Vec::new()
            },
            captured: Vec::new(),
            project_keys: None,
            max_logits: None,
            mean_log_z: Some(f32::NAN),
        };
        let (loss, token_losses) = if probing && wants_token_losses(probes) {
            let (mean, losses) = self.model.loss_and_token_losses(
                &self.arch,
                &self.consts,
                self.eval.clone(),
                Some(&mut taps),
            );
            (mean, Some(losses))
        } else {
            (self.batch_loss(&self.eval, Some(&mut taps)), None)
        };
        let log_z = taps.mean_log_z;
        if probing {
            let probe_started = Instant::now();
            let at = ProbePoint {
                step,
                tokens,
                seq: self.config.data.seq_len,
            };
            let mut rows = measure(&taps.captured, probes, at);
            if let Some(losses) = &token_losses {
                rows.extend(model_rows(losses, probes, at));
            }
            if probes.weights {
                rows.extend(self.weight_rows(at));
            }
            if let Some(clip) = &self.clip {
                rows.extend(clip_rows(clip, at));
            }
            if !probes.key_ablation.is_empty() {
                rows.extend(self.key_ablation_rows(&taps.captured, f64::from(loss), at));
            }
            observer.probes(rows);
            self.counters.probe_seconds += probe_started.elapsed().as_secs_f64();
        }
        self.counters.last_val = f64::from(loss);
        let set_losses = (self.eval_sets.iter())
            .map(|(metric, batch)| (*metric, f64::from(self.batch_loss(batch, None))));
        let log_z = f64::from(log_z.unwrap_or(f32::NAN));
        for (metric, value) in [("loss", self.counters.last_val), (LOG_Z_METRIC, log_z)]
            .into_iter()
            .chain(set_losses)
        {
            observer.metric(MetricRow {
                step,
                tokens,
                split: Split::Val,
                metric,
                value,
                elapsed_s: at,
            });
        }
        observer.evaluated();
    }

    /// The mean loss of the model on a fixed batch (no gradients), with `taps`.
    fn batch_loss(&self, batch: &TokenTensors<D>, taps: Option<&mut Taps>) -> f32 {
        let embed = self.model.embed.clone();
        let loss = (self.model).loss(&self.arch, &self.consts, batch.clone(), embed, taps);
        loss.as_vec()[0]
    }

    /// The causal key-ablation probe of every layer (`probe::key_ablation`): the loss
    /// increase over `base` with the layer's keys at the first K probe site projected.
    fn key_ablation_rows(&self, captures: &[Capture], base: f64, at: ProbePoint) -> Vec<ProbeRow> {
        let probes = &self.config.probes;
        let Some(&site) = probes.sites.iter().find(|s| s.tensor == TensorKind::K) else {
            return Vec::new();
        };
        let row = |layer: usize, metric, value| ProbeRow {
            step: at.step,
            tokens: at.tokens,
            layer: Some(layer as u32),
            head: None,
            site: site_name(site),
            metric,
            value,
        };
        let mut out = Vec::new();
        for capture in captures.iter().filter(|c| c.site == site) {
            let rows = (probes.eval_sequences * at.seq).min(capture.rows);
            let at_pr = rank_at_pr(capture, rows);
            let ranks = probes.key_ablation.iter().map(|&r| (r, rank_metric(r)));
            for (r, metric) in ranks.chain([(at_pr, AT_PR_METRIC)]) {
                let mut taps = Taps {
                    sites: Vec::new(),
                    captured: Vec::new(),
                    project_keys: Some(KeyProjection {
                        layer: capture.layer,
                        after: site.after,
                        matrices: projections(capture, rows, r),
                    }),
                    max_logits: None,
                    mean_log_z: None,
                };
                let increase = f64::from(self.batch_loss(&self.eval, Some(&mut taps))) - base;
                out.push(row(capture.layer, metric, increase));
            }
            out.push(row(capture.layer, RANK_AT_PR_METRIC, at_pr as f64));
        }
        out
    }

    /// The weight probes of every layer (`probe::weights`).
    fn weight_rows(&self, at: ProbePoint) -> Vec<ProbeRow> {
        let arch = &self.arch;
        let shape = (arch.n_heads, arch.n_kv_heads, HD, M);
        let learned = arch.qk_norm == Some(Gain::Learnable);
        let mut rows = Vec::new();
        for (layer, block) in self.model.blocks.iter().enumerate() {
            let (wq, wk) = (block.wq.as_vec(), block.wk.as_vec());
            let gains = learned.then(|| (block.q_gain.as_vec(), block.k_gain.as_vec()));
            let weights = LayerWeights {
                layer,
                wq: &wq,
                wk: &wk,
                gains: gains.as_ref().map(|(q, k)| (q.as_slice(), k.as_slice())),
            };
            rows.extend(layer_rows(&weights, shape, at));
        }
        rows
    }
}

/// QK-Clip's statistics per (layer, query head) at a probe point: steps clipped so far,
/// the smallest factor applied so far, and the head's largest logit in the last training
/// step before its clip (none before the first step).
fn clip_rows(clip: &QkClip, at: ProbePoint) -> Vec<ProbeRow> {
    let mut rows = Vec::new();
    for (layer, head, steps, min_factor, last) in clip.head_statistics() {
        let row = |metric, value| ProbeRow {
            step: at.step,
            tokens: at.tokens,
            layer: Some(layer as u32),
            head: Some(head as u32),
            site: crate::probe::ATTENTION_SITE,
            metric,
            value,
        };
        rows.push(row(QK_CLIP_STEPS_METRIC, steps as f64));
        rows.push(row(QK_CLIP_MIN_FACTOR_METRIC, f64::from(min_factor)));
        // NaN before the first step of the run.
        if !last.is_nan() {
            rows.push(row(TRAIN_MAX_LOGIT_METRIC, f64::from(last)));
        }
    }
    rows
}
