//! What the report's figures show, apart from how they are drawn: each condition's line
//! (mean of its seeds and 95% interval) over training for the validation loss, the report
//! metric and the other probes, and the per-layer values at the last probe. The PNG
//! figures (`plots`) and the interactive page (`html`) draw the same data.

use super::conditions::{
    group, layer_count, metric_name_unit, metric_title, site_title, tokens_title, Condition,
};
use super::context::other_probes;
use super::load::RunResults;
use super::settings::ReportSettings;
use super::stats::Estimate;

/// The conditions' colours, in order (matplotlib's tab10), for the PNGs and the page alike.
pub const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
];

/// A point of a condition's line: x, the mean, and the 95% interval when there are seeds.
pub type Point = (f64, f64, Option<(f64, f64)>);

/// One condition's line.
#[derive(Debug, Clone)]
pub struct Series {
    pub title: String,
    pub points: Vec<Point>,
}

/// A chart of lines over training tokens.
#[derive(Debug, Clone)]
pub struct LineFigure {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Per layer, one bar per condition at the last probe, and the collapse threshold.
#[derive(Debug, Clone)]
pub struct LayerFigure {
    pub title: String,
    pub y_label: String,
    /// (condition title, its estimate at each layer).
    pub bars: Vec<(String, Vec<Option<Estimate>>)>,
    pub threshold: f64,
    pub threshold_label: String,
}

/// Every figure of a report.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Validation loss, then the report metric.
    pub trajectories: [LineFigure; 2],
    pub layers: LayerFigure,
    /// The other probes over training (none when the runs have none).
    pub probes: Vec<LineFigure>,
}

/// The figures of `runs` under `settings`.
pub fn figures(runs: &[RunResults], settings: &ReportSettings) -> Figures {
    let conditions = group(runs);
    let (metric, site) = (&settings.metric, &settings.site);
    let seeds = if conditions.iter().any(|c| c.runs.len() > 1) {
        ", mean of seeds ± 95% CI"
    } else {
        ""
    };
    let loss = LineFigure {
        title: format!("Validation loss{seeds}"),
        y_label: "validation loss (nats)".to_owned(),
        series: series(
            &conditions,
            &|r| r.val_loss.keys().copied().collect(),
            &|r, t| r.val_loss.get(&t).copied(),
        ),
    };
    let rank = LineFigure {
        title: format!(
            "{} of {}{seeds}",
            metric_name_unit(metric).0,
            site_title(site)
        ),
        y_label: metric_title(metric),
        series: series(&conditions, &|r| r.probe_tokens(), &|r, t| r.model_at(t)),
    };
    let probes = other_probes(runs, site)
        .iter()
        .map(|(site, metric)| {
            let (name, unit) = metric_name_unit(metric);
            LineFigure {
                title: format!("{name}{seeds}"),
                y_label: unit.to_owned(),
                series: series(&conditions, &|r| r.probe_points(site, metric), &|r, t| {
                    r.model_probe(site, metric, t)
                }),
            }
        })
        .collect();
    Figures {
        trajectories: [loss, rank],
        layers: layer_figure(&conditions, settings),
        probes,
    }
}

fn layer_figure(conditions: &[Condition], settings: &ReportSettings) -> LayerFigure {
    let (metric, threshold) = (&settings.metric, settings.threshold);
    // The last probe point of any run: a run that has not reached it is left out.
    let last = conditions
        .iter()
        .flat_map(|c| c.runs.iter().filter_map(|r| r.last_probe()))
        .max()
        .unwrap_or(0);
    let n_layers = layer_count(conditions, last);
    let bars = conditions
        .iter()
        .map(|c| {
            let layers = (0..n_layers)
                .map(|l| c.estimate(&|r| r.layers_at(last).get(l).copied()))
                .collect();
            (c.title(), layers)
        })
        .collect();
    LayerFigure {
        title: format!(
            "{} of {} per layer at {} tokens",
            metric_name_unit(metric).0,
            site_title(&settings.site),
            tokens_title(last)
        ),
        y_label: metric_title(metric),
        bars,
        threshold,
        threshold_label: format!("{metric} = {threshold} (collapse threshold)"),
    }
}

/// Each condition's mean (and interval) of `value` at each of `points`.
fn series(
    conditions: &[Condition],
    points: &dyn Fn(&RunResults) -> Vec<u64>,
    value: &dyn Fn(&RunResults, u64) -> Option<f64>,
) -> Vec<Series> {
    conditions
        .iter()
        .map(|c| {
            let mut xs: Vec<u64> = c.runs.iter().flat_map(|r| points(r)).collect();
            xs.sort_unstable();
            xs.dedup();
            let points = xs
                .into_iter()
                .filter_map(|x| {
                    let e = c.estimate(&|r| value(r, x))?;
                    Some((x as f64, e.mean, e.ci))
                })
                .collect();
            Series {
                title: c.title(),
                points,
            }
        })
        .collect()
}
