//! What the report's figures show, apart from how they are drawn: each condition's line
//! (mean of its seeds and 95% interval) over training for the validation loss, the report
//! metric and the other probes, and the per-layer values at the last probe. The PNG
//! figures (`plots`) and the interactive page (`html`) draw the same data.

use super::conditions::{
    group, layer_count, metric_name_unit, metric_title, site_title, tokens_title, Condition,
};
use super::context::other_probes;
use super::load::RunResults;
use super::lr_sweep::{self, GridPoint};
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
    /// Single runs marked with a cross at (x, y): diverged runs at their step-0 loss.
    pub markers: Vec<(f64, f64)>,
}

/// A chart of lines over training tokens, or over a swept number.
#[derive(Debug, Clone)]
pub struct LineFigure {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// The x-axis: None for training tokens, else the swept path (drawn on a log axis).
    pub x_axis: Option<String>,
    /// A logarithmic y-axis (a logit that grows by orders of magnitude).
    pub log_y: bool,
}

impl LineFigure {
    fn over_tokens(title: String, y_label: String, series: Vec<Series>) -> Self {
        LineFigure {
            title,
            y_label,
            series,
            x_axis: None,
            log_y: false,
        }
    }
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
    /// Against the study's `LogGrid` axis (none without one): scored loss, the largest
    /// attention logit, the report metric.
    pub sweep: Vec<LineFigure>,
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
    let loss = LineFigure::over_tokens(
        format!("Validation loss{seeds}"),
        "validation loss (nats)".to_owned(),
        series(
            &conditions,
            &|r| r.val_loss.keys().copied().collect(),
            &|r, t| r.val_loss.get(&t).copied(),
        ),
    );
    let rank = LineFigure::over_tokens(
        format!(
            "{} of {}{seeds}",
            metric_name_unit(metric).0,
            site_title(site)
        ),
        metric_title(metric),
        series(&conditions, &|r| r.probe_tokens(), &|r, t| r.model_at(t)),
    );
    let probes = other_probes(runs, site)
        .iter()
        .map(|(site, metric)| {
            let (name, unit) = metric_name_unit(metric);
            LineFigure::over_tokens(
                format!("{name}{seeds}"),
                unit.to_owned(),
                series(&conditions, &|r| r.probe_points(site, metric), &|r, t| {
                    r.model_probe(site, metric, t)
                }),
            )
        })
        .collect();
    Figures {
        trajectories: [loss, rank],
        layers: layer_figure(&conditions, settings),
        probes,
        sweep: sweep_figures(runs, settings),
    }
}

/// Scored loss, largest attention logit and the report metric against the `LogGrid`
/// axis, one line per curve (mean of seeds, 95% band), diverged runs as crosses.
fn sweep_figures(runs: &[RunResults], settings: &ReportSettings) -> Vec<LineFigure> {
    let Some(axis) = runs.iter().find_map(|r| r.x_path.clone()) else {
        return Vec::new();
    };
    let curves = lr_sweep::curves(runs, &lr_sweep::final_metric);
    let line = |value: &dyn Fn(&GridPoint) -> Option<Estimate>, marked: bool| -> Vec<Series> {
        (curves.iter())
            .map(|c| Series {
                title: c.family.clone(),
                points: (c.points.iter())
                    .filter_map(|p| value(p).map(|e| (p.x, e.mean, e.ci)))
                    .collect(),
                markers: if marked {
                    c.points
                        .iter()
                        .flat_map(|p| p.diverged_at.clone())
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect()
    };
    let figure = |title: String, y_label: String, series, log_y| LineFigure {
        title,
        y_label,
        series,
        x_axis: Some(axis.clone()),
        log_y,
    };
    let metric = &settings.metric;
    vec![
        figure(
            format!("Final validation loss vs {axis} (× diverged, at the step-0 loss)"),
            "scored validation loss (nats)".to_owned(),
            line(&|p| p.loss, true),
            false,
        ),
        figure(
            format!("Largest attention logit at the last step vs {axis}"),
            "max q·k/√d over layers and heads".to_owned(),
            line(&|p| p.max_logit, false),
            true,
        ),
        figure(
            format!("{} at the end vs {axis}", metric_name_unit(metric).0),
            metric_title(metric),
            line(&|p| p.metric, false),
            false,
        ),
    ]
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
                markers: Vec::new(),
            }
        })
        .collect()
}
