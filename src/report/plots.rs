//! PNG figures of a report, drawn with plotters. The font is compiled in
//! (assets/DejaVuSans.ttf), so they render the same on any machine.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::load::RunResults;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is part of the build; it always parses.
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

type Series = (String, Vec<(f64, f64)>);

/// One line chart of `series` in `area`.
fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), String> {
    // An infinite value (a condition number beyond float32 precision) has no place on
    // an axis: it is left out of the figure (the tables show it as inf).
    let series: Vec<Series> = series
        .iter()
        .map(|(label, points)| {
            let finite = points.iter().copied().filter(|(_, y)| y.is_finite());
            (label.clone(), finite.collect())
        })
        .collect();
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if y_min > y_max {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0f64..x_max * 1.02,
            (y_min - pad).min(0f64.max(y_min - pad))..y_max + pad,
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("training tokens")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{:.0}K", x / 1e3))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (label, points)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

fn pr_series(runs: &[RunResults]) -> Vec<Series> {
    runs.iter()
        .map(|r| {
            let points = r
                .probe_tokens()
                .into_iter()
                .filter_map(|t| r.model_at(t).map(|pr| (t as f64, pr)))
                .collect();
            (r.label.clone(), points)
        })
        .collect()
}

fn loss_series(runs: &[RunResults]) -> Vec<Series> {
    runs.iter()
        .map(|r| {
            (
                r.label.clone(),
                r.val_loss.iter().map(|(&t, &l)| (t as f64, l)).collect(),
            )
        })
        .collect()
}

/// Writes `pr_trajectory.png`, `loss_and_pr.png` and `layers_<label>.png` into `dir`;
/// returns the file names.
pub fn write_plots(
    dir: &Path,
    runs: &[RunResults],
    metric: &str,
    threshold: f64,
) -> Result<Vec<String>, String> {
    register();
    let mut written = Vec::new();
    let pr = pr_series(runs);

    let name = "pr_trajectory.png".to_owned();
    let path = dir.join(&name);
    let root = BitMapBackend::new(&path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    line_chart(
        &root,
        &format!("Model {metric} of attention keys (mean over heads and layers)"),
        metric,
        &pr,
    )?;
    root.present().map_err(|e| e.to_string())?;
    written.push(name);

    let name = "loss_and_pr.png".to_owned();
    let path = dir.join(&name);
    let root = BitMapBackend::new(&path, (1500, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(750);
    line_chart(&left, "Validation loss", "loss (nats)", &loss_series(runs))?;
    line_chart(&right, &format!("Model {metric}"), metric, &pr)?;
    root.present().map_err(|e| e.to_string())?;
    written.push(name);

    for (i, run) in runs.iter().enumerate() {
        let Some(last) = run.last_probe() else {
            continue;
        };
        let layers = run.final_layers();
        let name = format!("layers_{}.png", run.label);
        let path = dir.join(&name);
        let root = BitMapBackend::new(&path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        // A layer with an infinite value gets no bar (see `line_chart`).
        let finite = layers.iter().copied().filter(|v| v.is_finite());
        let y_max = finite.fold(threshold, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}: {metric} per layer at {}K tokens",
                    run.label,
                    last / 1000
                ),
                (FAMILY, 22),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.6f64..layers.len() as f64 - 0.4, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("layer")
            .y_desc(metric)
            .x_labels(layers.len())
            .x_label_formatter(&|x| format!("{:.0}", x))
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .draw()
            .map_err(|e| e.to_string())?;
        let c = color(i);
        chart
            .draw_series(
                layers
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(l, &v)| {
                        Rectangle::new([(l as f64 - 0.35, 0.0), (l as f64 + 0.35, v)], c.filled())
                    }),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                [(-0.6, threshold), (layers.len() as f64 - 0.4, threshold)],
                RED.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("{metric} = {threshold}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font((FAMILY, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
        written.push(name);
    }
    Ok(written)
}
