//! The learning-rate view of a study that sweeps a `LogGrid` axis (Wortsman et al. 2023,
//! "Small-scale proxies for large-scale Transformer training instabilities"): per curve
//! (the runs that differ only in the grid value and the seed), the final validation loss
//! at each grid value with diverged runs counted, the best value, the loss there, and the
//! LR sensitivity.
//!
//! Definitions (docs/outputs.md states them for readers):
//! - a run's *scored loss* is min(final validation loss, step-0 validation loss) for a
//!   run that finished its budget, and its step-0 validation loss for a diverged run;
//!   failed and unfinished runs are left out (and counted in the report's notes);
//! - a curve's value at a grid point is the mean of its seeds' scored losses (95% CI);
//! - the *best* grid value is the one with the lowest mean scored loss;
//! - *LR sensitivity*, per seed: the mean over the grid of that seed's scored losses
//!   minus their minimum over the grid (Wortsman's E[min(L, L0)] - min L); reported as
//!   the mean over seeds with its 95% CI; a seed missing any grid point is left out.

use std::collections::BTreeMap;

use crate::store::manifest::RunStatus;

use super::load::RunResults;
use super::stats::Estimate;

/// A run's scored loss (see the module's definitions); None for a run that neither
/// finished nor diverged, or has no step-0 loss.
pub fn scored_loss(run: &RunResults) -> Option<f64> {
    let initial = run.initial_loss().filter(|l| l.is_finite())?;
    match run.status {
        RunStatus::Done => Some(run.final_loss()?.min(initial)),
        RunStatus::Diverged => Some(initial),
        _ => None,
    }
}

/// The report metric of a run at its last probe (what the LR view shows per grid value).
pub fn final_metric(run: &RunResults) -> Option<f64> {
    run.model_at(run.last_probe()?)
}

/// One grid value of a curve.
#[derive(Debug, Clone)]
pub struct GridPoint {
    pub x: f64,
    /// Runs finished or diverged at this value, and how many of them diverged.
    pub runs: usize,
    pub diverged: usize,
    /// Mean scored loss over seeds.
    pub loss: Option<Estimate>,
    /// The largest training attention logit at the last recorded step, over seeds.
    pub max_logit: Option<Estimate>,
    /// The report metric at the last probe of the runs that finished, over seeds.
    pub metric: Option<Estimate>,
    /// (x, step-0 loss) of each diverged run: where the figure marks it.
    pub diverged_at: Vec<(f64, f64)>,
}

/// The runs of one family over the grid.
#[derive(Debug, Clone)]
pub struct Curve {
    pub family: String,
    pub description: String,
    pub points: Vec<GridPoint>,
    /// The grid value with the lowest mean scored loss.
    pub best: Option<f64>,
    /// Each seed's LR sensitivity (seeds with every grid value).
    pub sensitivity_by_seed: BTreeMap<u64, f64>,
}

impl Curve {
    pub fn at(&self, x: f64) -> Option<&GridPoint> {
        self.points.iter().find(|p| p.x == x)
    }

    /// The per-seed LR sensitivity, over seeds.
    pub fn sensitivity(&self) -> Option<Estimate> {
        Estimate::of(
            &self
                .sensitivity_by_seed
                .values()
                .copied()
                .collect::<Vec<_>>(),
        )
    }

    pub fn best_point(&self) -> Option<&GridPoint> {
        self.at(self.best?)
    }

    pub fn runs(&self) -> usize {
        self.points.iter().map(|p| p.runs).sum()
    }

    pub fn diverged(&self) -> usize {
        self.points.iter().map(|p| p.diverged).sum()
    }
}

/// The curves of `runs` (those with a grid value), in matrix order; `metric` reads the
/// report metric of a finished run.
pub fn curves<'a>(
    runs: impl IntoIterator<Item = &'a RunResults>,
    metric: &dyn Fn(&RunResults) -> Option<f64>,
) -> Vec<Curve> {
    let mut families: Vec<(String, String, Vec<&RunResults>)> = Vec::new();
    for run in runs.into_iter().filter(|r| r.x.is_some()) {
        match families.iter_mut().find(|(f, _, _)| *f == run.family) {
            Some((_, _, members)) => members.push(run),
            None => families.push((run.family.clone(), run.description.clone(), vec![run])),
        }
    }
    families
        .into_iter()
        .map(|(family, description, members)| curve(family, description, &members, metric))
        .collect()
}

fn curve(
    family: String,
    description: String,
    members: &[&RunResults],
    metric: &dyn Fn(&RunResults) -> Option<f64>,
) -> Curve {
    let mut xs: Vec<f64> = members.iter().filter_map(|r| r.x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let points: Vec<GridPoint> = xs
        .iter()
        .map(|&x| {
            let at: Vec<&RunResults> = members.iter().copied().filter(|r| r.x == Some(x)).collect();
            let scored: Vec<&RunResults> = at
                .iter()
                .copied()
                .filter(|r| scored_loss(r).is_some())
                .collect();
            let diverged: Vec<&RunResults> = (scored.iter().copied())
                .filter(|r| r.status == RunStatus::Diverged)
                .collect();
            let values = |f: &dyn Fn(&RunResults) -> Option<f64>| -> Vec<f64> {
                scored.iter().filter_map(|r| f(r)).collect()
            };
            GridPoint {
                x,
                runs: scored.len(),
                diverged: diverged.len(),
                loss: Estimate::of(&values(&scored_loss)),
                max_logit: Estimate::of(&values(&|r| r.max_logit_last)),
                metric: Estimate::of(&values(&|r| {
                    (r.status == RunStatus::Done).then(|| metric(r)).flatten()
                })),
                diverged_at: (diverged.iter())
                    .filter_map(|r| Some((x, r.initial_loss()?)))
                    .collect(),
            }
        })
        .collect();
    let best = (points.iter())
        .filter_map(|p| Some((p.x, p.loss?.mean)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(x, _)| x);
    // Per seed: its scored loss at every grid value, or it is left out.
    let mut by_seed: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for run in members {
        if let (Some(x), Some(loss)) = (run.x, scored_loss(run)) {
            by_seed.entry(run.seed).or_default().push((x, loss));
        }
    }
    let per_seed: BTreeMap<u64, f64> = (by_seed.into_iter())
        .filter(|(_, losses)| losses.len() == xs.len())
        .map(|(seed, losses)| {
            let mean = losses.iter().map(|(_, l)| l).sum::<f64>() / losses.len() as f64;
            let min = losses.iter().map(|(_, l)| *l).fold(f64::INFINITY, f64::min);
            (seed, mean - min)
        })
        .collect();
    Curve {
        family,
        description,
        points,
        best,
        sensitivity_by_seed: per_seed,
    }
}

/// The paired difference a − b of two curves' LR sensitivities over the seeds both have.
pub fn sensitivity_difference(a: &Curve, b: &Curve) -> Option<Estimate> {
    let diffs: Vec<f64> = (a.sensitivity_by_seed.iter())
        .filter_map(|(seed, sa)| Some(sa - b.sensitivity_by_seed.get(seed)?))
        .collect();
    Estimate::of(&diffs)
}

/// A grid value for a reader: 3 significant digits.
pub fn x_text(x: f64) -> String {
    crate::plan::expand::three_digits(x).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(family: &str, x: f64, seed: u64, status: RunStatus, last: f64) -> RunResults {
        RunResults {
            label: format!("{family}_{x}_s{seed}"),
            condition: format!("{family}_{x}"),
            description: String::new(),
            seed,
            index: 0,
            status,
            budget: 100,
            val_loss: [(0, 8.0), (100, last)].into(),
            eval_set_loss: Default::default(),
            heads: Default::default(),
            probes: Default::default(),
            unreadable: Vec::new(),
            x: Some(x),
            x_path: Some("schedule.lr_scale".to_owned()),
            family: family.to_owned(),
            max_logit_last: Some(x * 10.0),
        }
    }

    #[test]
    fn sensitivity_counts_divergence_as_the_initial_loss() {
        use RunStatus::*;
        let runs = [
            // seed 1: 5, 4, diverged (8), above the initial (9 -> 8)
            run("A", 0.1, 1, Done, 5.0),
            run("A", 1.0, 1, Done, 4.0),
            run("A", 10.0, 1, Diverged, f64::NAN),
            run("A", 100.0, 1, Done, 9.0),
            // seed 2: 6, 4, 7, 8
            run("A", 0.1, 2, Done, 6.0),
            run("A", 1.0, 2, Done, 4.0),
            run("A", 10.0, 2, Done, 7.0),
            run("A", 100.0, 2, Diverged, f64::NAN),
        ];
        let curves = curves(&runs, &|_| None);
        let [curve] = curves.as_slice() else { panic!() };
        assert_eq!(curve.best, Some(1.0));
        assert_eq!((curve.runs(), curve.diverged()), (8, 2));
        // seed 1: mean(5, 4, 8, 8) - 4 = 2.25; seed 2: mean(6, 4, 7, 8) - 4 = 2.25.
        let s = curve.sensitivity().unwrap();
        assert_eq!((s.mean, s.n), (2.25, 2));
        let p = curve.at(10.0).unwrap();
        assert_eq!(p.loss.unwrap().mean, 7.5);
        assert_eq!(p.diverged_at, vec![(10.0, 8.0)]);
        assert_eq!(x_text(0.001), "1e-3");
        assert_eq!(x_text(31.6), "31.6");
    }
}
