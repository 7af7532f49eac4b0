//! Extending a run: when a study's token budget is raised, a finished run of the same
//! study that kept its whole final state (`execution.keep_final_state`) and whose config
//! differs only in the budget continues from that state instead of from step 0, if
//! training the new config from scratch would pass through exactly that state: the same
//! learning rate at every one of the old steps (bit for bit: `Constant`, or a warmup
//! that ends before the old budget; not a cosine or a decay defined over the budget) and
//! the same probe points before the old budget. Batches depend only on the seed and the
//! step, so the old steps are the new run's first steps.

use std::path::{Path, PathBuf};

use crate::plan::cost::steps_and_tokens;
use crate::plan::PlannedRun;
use crate::spec::RunConfig;
use crate::store::manifest::{Manifest, RunStatus};
use crate::store::{run_names, RunPaths};
use crate::train::checkpoint::FINAL_STATE_FILE;
use crate::train::schedule::lr_multiplier;

/// A finished run a new run can continue from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its directory name, `<label>-<run id>`.
    pub name: String,
    pub manifest: Manifest,
    pub paths: RunPaths,
    /// Its kept final state.
    pub state: PathBuf,
    /// Its steps and tokens: where the new run continues.
    pub steps: u64,
    pub tokens: u64,
}

/// What the study directory offers `run`.
#[derive(Debug, Clone)]
pub enum Offer {
    /// Continue from this run's final state.
    Continue(Box<Source>),
    /// A run that differs only in its budget exists, but cannot be continued: why.
    Refused {
        name: String,
        why: String,
    },
    Nothing,
}

/// Whether `new` can continue from a finished run of `old`: `Ok` when it can, `Err(None)`
/// when `old` is another experiment (it differs in more than the budget), `Err(Some)`
/// with the reason when it differs only in the budget but training `new` from scratch
/// would not pass through `old`'s final state.
pub fn continues(old: &RunConfig, new: &RunConfig) -> Result<(), Option<String>> {
    let (old_steps, old_tokens) = steps_and_tokens(old);
    let (new_steps, _) = steps_and_tokens(new);
    if old_steps == 0 || new_steps <= old_steps {
        return Err(None);
    }
    let without_budget = |config: &RunConfig| {
        let mut config = config.clone();
        config.schedule.tokens = 0;
        config.probes.at_tokens.clear();
        config
    };
    if without_budget(old) != without_budget(new) {
        return Err(None);
    }
    let before = |config: &RunConfig| -> Vec<u64> {
        let mut points: Vec<u64> = (config.probes.at_tokens.iter())
            .copied()
            .filter(|&t| t < old_tokens)
            .collect();
        points.sort_unstable();
        points.dedup();
        points
    };
    if before(old) != before(new) {
        return Err(Some(format!(
            "its probe points before {old_tokens} tokens differ from this run's"
        )));
    }
    let per_step = new.data.tokens_per_step();
    let rate = |config: &RunConfig, step: u64| {
        let schedule = &config.schedule;
        lr_multiplier(&schedule.lr, step * per_step, per_step, schedule.tokens).to_bits()
    };
    match (0..old_steps).find(|&step| rate(old, step) != rate(new, step)) {
        Some(step) => Err(Some(format!(
            "the learning rate at step {step} depends on the budget ({:?}), so training \
             from scratch would not pass through its final state",
            new.schedule.lr
        ))),
        None => Ok(()),
    }
}

/// The finished run of `study_dir` that `run` can continue from (the longest, if
/// several), or why the closest one cannot be.
pub fn offer(study_dir: &Path, run: &PlannedRun) -> Offer {
    let mut best: Option<Source> = None;
    let mut refused = None;
    for name in run_names(study_dir) {
        let paths = RunPaths::named(study_dir, &name);
        let dir = paths.dir.clone();
        let Some(manifest) = Manifest::read(&dir) else {
            continue;
        };
        if manifest.status != RunStatus::Done || manifest.run_id == run.id {
            continue;
        }
        match continues(&manifest.config, &run.config) {
            Err(None) => {}
            Err(Some(why)) => refused = Some((name, why)),
            Ok(()) => {
                let state = dir.join(FINAL_STATE_FILE);
                if !std::fs::symlink_metadata(&state).is_ok_and(|m| m.is_file()) {
                    let why = "it kept no final state (run it with \
                               `execution.keep_final_state: true` to extend it later)"
                        .to_owned();
                    refused = Some((name, why));
                    continue;
                }
                let (steps, tokens) = steps_and_tokens(&manifest.config);
                if best.as_ref().is_none_or(|b| steps > b.steps) {
                    best = Some(Source {
                        paths,
                        name,
                        manifest,
                        state,
                        steps,
                        tokens,
                    });
                }
            }
        }
    }
    match (best, refused) {
        (Some(source), _) => Offer::Continue(Box::new(source)),
        (None, Some((name, why))) => Offer::Refused { name, why },
        (None, None) => Offer::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::run_config::LrSchedule;

    fn config(tokens: u64, lr: LrSchedule) -> RunConfig {
        let mut config = crate::spec::test_fixtures::tiny();
        config.schedule.tokens = tokens;
        config.schedule.lr = lr;
        config.probes.at_tokens = vec![0, 4_096, tokens];
        config
    }

    #[test]
    fn only_a_longer_budget_with_the_same_rates_and_points_before_continues() {
        let per_step = crate::spec::test_fixtures::tiny().data.tokens_per_step();
        let (short, long) = (10 * per_step, 20 * per_step);
        let constant = LrSchedule::Constant;
        assert_eq!(
            continues(
                &config(short, constant.clone()),
                &config(long, constant.clone())
            ),
            Ok(())
        );
        assert_eq!(
            continues(
                &config(long, constant.clone()),
                &config(short, constant.clone())
            ),
            Err(None)
        );
        let mut other = config(long, constant.clone());
        other.seed += 1;
        assert_eq!(
            continues(&config(short, constant.clone()), &other),
            Err(None)
        );
        let mut moved = config(long, constant.clone());
        moved.probes.at_tokens = vec![0, 2_048, long];
        assert!(matches!(
            continues(&config(short, constant.clone()), &moved),
            Err(Some(_))
        ));
        // A warmup that ends before the old budget keeps the old rates; a cosine over the
        // budget does not.
        let warmup = LrSchedule::Wsd {
            warmup_tokens: 2 * per_step,
            decay_fraction: 0.0,
            min_lr_ratio: 0.1,
        };
        assert_eq!(
            continues(&config(short, warmup.clone()), &config(long, warmup)),
            Ok(())
        );
        let cosine = LrSchedule::WarmupCosine {
            warmup_tokens: 0,
            min_lr_ratio: 0.1,
        };
        let refused = continues(&config(short, cosine.clone()), &config(long, cosine));
        assert!(
            matches!(&refused, Err(Some(why)) if why.contains("depends on the budget")),
            "{refused:?}"
        );
    }
}
