//! The runs of a study grouped by condition (their seeds), the numbers the report shows
//! of each run, and their names for a reader.

use crate::spec::run_config::ProbeMetric;

use super::load::RunResults;
use super::stats::{paired_difference, Estimate};

/// The runs of one condition: its seeds.
#[derive(Debug, Clone)]
pub struct Condition<'a> {
    pub name: String,
    pub description: String,
    pub runs: Vec<&'a RunResults>,
}

impl Condition<'_> {
    /// "A1 Muon + QK-norm", or the name alone when it has no description.
    pub fn title(&self) -> String {
        if self.description.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.description)
        }
    }

    /// The estimate over this condition's runs of a number each run gives.
    pub fn estimate(&self, value: &dyn Fn(&RunResults) -> Option<f64>) -> Option<Estimate> {
        let values: Vec<f64> = self.runs.iter().filter_map(|r| value(r)).collect();
        Estimate::of(&values)
    }
}

/// The most layers any run of `conditions` has probed at `tokens`.
pub fn layer_count(conditions: &[Condition], tokens: u64) -> usize {
    conditions
        .iter()
        .flat_map(|c| c.runs.iter().map(|r| r.layers_at(tokens).len()))
        .max()
        .unwrap_or(0)
}

/// The runs grouped by condition, in matrix order (each condition where its first run is).
pub fn group(runs: &[RunResults]) -> Vec<Condition<'_>> {
    let mut conditions: Vec<Condition> = Vec::new();
    for run in runs {
        match conditions.iter_mut().find(|c| c.name == run.condition) {
            Some(condition) => condition.runs.push(run),
            None => conditions.push(Condition {
                name: run.condition.clone(),
                description: run.description.clone(),
                runs: vec![run],
            }),
        }
    }
    conditions
}

/// The paired difference a - b of a number each run gives, over the seeds both
/// conditions ran; None when they share no seed.
pub fn difference(
    a: &Condition,
    b: &Condition,
    value: &dyn Fn(&RunResults) -> Option<f64>,
) -> Option<Estimate> {
    let pairs: Vec<(f64, f64)> = a
        .runs
        .iter()
        .filter_map(|ra| {
            let rb = b.runs.iter().find(|rb| rb.seed == ra.seed)?;
            Some((value(ra)?, value(rb)?))
        })
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    paired_difference(&pairs)
}

/// How a quantity is read from one run.
pub type RunValue = Box<dyn Fn(&RunResults) -> Option<f64>>;

/// A number the report shows for each run, with its name for a reader.
pub struct Quantity {
    /// Column name in tables and CSV files (`val_loss`, `study_pr`, ...).
    pub key: String,
    /// What it is, with its unit ("validation loss (nats)").
    pub title: String,
    pub digits: usize,
    /// Whether the paired differences show it (the values at the last point do, the
    /// earlier points and layer statistics do not).
    pub compared: bool,
    pub value: RunValue,
}

/// A probe metric's name for a reader and its unit (`ProbeMetric::info`); a name of no
/// metric of this version (results of another) is shown as it is.
pub fn metric_name_unit(metric: &str) -> (&str, &str) {
    match ProbeMetric::info_by_name(metric) {
        Some(info) => (info.title, info.unit),
        None => (metric, ""),
    }
}

/// "participation ratio (effective dimensions)".
pub fn metric_title(metric: &str) -> String {
    match metric_name_unit(metric) {
        (name, "") => name.to_owned(),
        (name, unit) => format!("{name} ({unit})"),
    }
}

/// A site's name for a reader: "attention keys after RoPE".
pub fn site_title(site: &str) -> String {
    let (tensor, stage) = site.split_once('_').unwrap_or((site, ""));
    let tensor = match tensor {
        "q" => "queries",
        "k" => "keys",
        "v" => "values",
        other => other,
    };
    match stage {
        "rope" => format!("attention {tensor} after RoPE"),
        "qknorm" => format!("attention {tensor} after QK-norm"),
        "projection" => format!("attention {tensor} (projection output)"),
        _ => tensor.to_owned(),
    }
}

/// A token count for a reader: "2.00M", "502K", "0".
pub fn tokens_title(tokens: u64) -> String {
    match tokens {
        t if t >= 1_000_000 => format!("{:.2}M", t as f64 / 1e6),
        t if t >= 1_000 => format!("{:.0}K", t as f64 / 1e3),
        t => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::manifest::RunStatus;

    fn run(label: &str, condition: &str, seed: u64, loss: f64) -> RunResults {
        RunResults {
            label: label.into(),
            condition: condition.into(),
            description: format!("{condition} described"),
            seed,
            index: 0,
            status: RunStatus::Done,
            budget: 10,
            val_loss: [(10, loss)].into(),
            eval_set_loss: Default::default(),
            heads: Default::default(),
            probes: Default::default(),
            unreadable: Vec::new(),
            x: None,
            x_path: None,
            family: condition.into(),
            max_logit_last: None,
        }
    }

    #[test]
    fn seeds_group_into_conditions_and_pair_by_seed() {
        let runs = [
            run("A_s1", "A", 1, 5.0),
            run("A_s2", "A", 2, 7.0),
            run("B_s2", "B", 2, 6.5),
            run("B_s1", "B", 1, 4.0),
            run("B_s3", "B", 3, 1.0), // no partner in A
        ];
        let groups = group(&runs);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].title(), "A A described");
        assert_eq!(groups[1].runs.len(), 3);
        let loss = |r: &RunResults| r.val_loss.get(&10).copied();
        let d = difference(&groups[0], &groups[1], &loss).unwrap();
        // Seed 1: 5 - 4 = 1; seed 2: 7 - 6.5 = 0.5.
        assert_eq!((d.mean, d.n), (0.75, 2));
        assert_eq!(groups[1].estimate(&loss).unwrap().n, 3);
    }
}
