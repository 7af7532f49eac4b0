//! PNG figures of a report, drawn with plotters. The font is compiled in
//! (assets/DejaVuSans.ttf), so they render the same on any machine.

use std::path::Path;
use std::sync::Once;

use image::codecs::png::PngEncoder;
use image::{ColorType, ImageEncoder};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::atomic_file::write_atomic;

use super::conditions::tokens_title;
use super::figure_data::{Figures, LayerFigure, LineFigure, Series, PALETTE};

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
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The legend, top right, over a light background.
fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut Chart<'a, DB>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// One line chart of `series` in `area`: a line per condition and, with seeds, its 95%
/// confidence band.
fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    figure: &LineFigure,
) -> Result<(), String> {
    let (title, y_label) = (&figure.title, &figure.y_label);
    // A logarithmic axis is drawn as log10 of the values, labelled with the values.
    let log_x = figure.x_axis.is_some();
    let tx = |x: f64| if log_x { x.log10() } else { x };
    let ty = |y: f64| if figure.log_y { y.log10() } else { y };
    let series: Vec<Series> = (figure.series.iter())
        .map(|s| Series {
            title: s.title.clone(),
            points: (s.points.iter())
                .map(|&(x, y, b)| (tx(x), ty(y), b.map(|(lo, hi)| (ty(lo), ty(hi)))))
                .filter(|&(x, y, _)| x.is_finite() && y.is_finite())
                .collect(),
            markers: (s.markers.iter())
                .map(|&(x, y)| (tx(x), ty(y)))
                .filter(|&(x, y)| x.is_finite() && y.is_finite())
                .collect(),
        })
        .collect();
    let series = &series;
    // An infinite value (a condition number beyond float32 precision) has no place on
    // an axis: it is left out of the figure (the tables show it as inf).
    let (mut x_min, mut x_max) = if log_x {
        (f64::MAX, f64::MIN)
    } else {
        (0.0, 1.0f64)
    };
    let (mut y_min, mut y_max) = (f64::MAX, f64::MIN);
    let marked = series
        .iter()
        .flat_map(|s| s.markers.iter().map(|&(x, y)| (x, y, None)));
    for (x, y, band) in series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .chain(marked)
    {
        let (lo, hi) = band
            .filter(|(lo, hi)| lo.is_finite() && hi.is_finite())
            .unwrap_or((y, y));
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(lo.min(y));
        y_max = y_max.max(hi.max(y));
    }
    if x_min > x_max {
        (x_min, x_max) = (0.0, 1.0);
    }
    let x_range = if log_x {
        let pad = ((x_max - x_min) * 0.05).max(0.1);
        x_min - pad..x_max + pad
    } else {
        0f64..x_max * 1.02
    };
    if y_min > y_max {
        (y_min, y_max) = (0.0, 1.0);
    }
    // A flat series (no dead heads at all) still gets a readable axis around its value.
    let pad = ((y_max - y_min) * 0.08)
        .max(y_max.abs().max(y_min.abs()) * 0.05)
        .max(0.05);
    // A quantity that is never negative (a fraction, a loss) keeps its axis at or above
    // zero even where a wide interval would reach below it.
    let nonnegative = !figure.log_y && series.iter().flat_map(|s| &s.points).all(|p| p.1 >= 0.0);
    let bottom = if nonnegative {
        (y_min - pad).max(0.0)
    } else {
        y_min - pad
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title.as_str(), (FAMILY, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, bottom..y_max + pad)
        .map_err(err)?;
    let power = |v: f64| crate::plan::expand::three_digits(10f64.powf(v)).0;
    let x_desc = figure
        .x_axis
        .clone()
        .map_or("training tokens".to_owned(), |a| format!("{a} (log scale)"));
    let y_desc = if figure.log_y {
        format!("{y_label} (log scale)")
    } else {
        y_label.clone()
    };
    let y_format = |y: &f64| {
        if figure.log_y {
            power(*y)
        } else {
            format!("{y:.2}")
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_label_formatter(&y_format)
        .x_label_formatter(&|x| {
            if log_x {
                power(*x)
            } else {
                tokens_title(x.max(0.0).round() as u64)
            }
        })
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let banded: Vec<(f64, (f64, f64))> = s
            .points
            .iter()
            .filter_map(|&(x, _, b)| Some((x, b?)))
            .collect();
        if banded.len() > 1 {
            let outline: Vec<(f64, f64)> = banded
                .iter()
                .map(|&(x, (lo, _))| (x, lo))
                .chain(banded.iter().rev().map(|&(x, (_, hi))| (x, hi)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(outline, c.mix(0.18).filled())))
                .map_err(err)?;
        }
        let line = s.points.iter().map(|&(x, y, _)| (x, y));
        chart
            .draw_series(LineSeries::new(line, c.stroke_width(2)))
            .map_err(err)?
            .label(s.title.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|&(x, y, _)| Circle::new((x, y), 3, c.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(
                s.markers
                    .iter()
                    .map(|&(x, y)| Cross::new((x, y), 7, c.stroke_width(3))),
            )
            .map_err(err)?;
    }
    legend(&mut chart)
}

/// A new PNG of `size` at `dir/name`, drawn by `draw` into memory, encoded and written
/// atomically (as every file of a results tree: a link planted at the name is replaced,
/// never written through).
fn figure(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, size.0, size.1, ColorType::Rgb8)
        .map_err(err)?;
    let path = dir.join(name);
    write_atomic(&path, &png).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(name.to_owned())
}

/// Writes `trajectories.png` (validation loss and the report metric over training),
/// `layers.png` (every condition's per-layer values at the last probe on one axis) and,
/// when the runs have them, `probes.png` (the other probes over training) into `dir`;
/// returns the file names.
pub fn write_plots(dir: &Path, figures: &Figures) -> Result<Vec<String>, String> {
    register();
    let mut written = Vec::new();
    written.push(figure(dir, "trajectories.png", (1600, 600), |root| {
        let (left, right) = root.split_horizontally(800);
        let [loss, rank] = &figures.trajectories;
        line_chart(&left, loss)?;
        line_chart(&right, rank)
    })?);
    written.push(figure(dir, "layers.png", (1100, 620), |root| {
        layer_bars(root, &figures.layers)
    })?);
    if let [loss, logit, metric] = figures.sweep.as_slice() {
        written.push(figure(dir, "lr_sweep.png", (2400, 640), |root| {
            let areas = root.split_evenly((1, 3));
            line_chart(&areas[0], loss)?;
            line_chart(&areas[1], logit)?;
            line_chart(&areas[2], metric)
        })?);
    }
    let others = &figures.probes;
    if !others.is_empty() {
        let rows = others.len().div_ceil(2) as u32;
        written.push(figure(dir, "probes.png", (1600, 560 * rows), |root| {
            let areas = root.split_evenly((rows as usize, 2));
            for (probe, area) in others.iter().zip(&areas) {
                line_chart(area, probe)?;
            }
            Ok(())
        })?);
    }
    Ok(written)
}

/// Grouped bars: for each layer, one bar per condition (its mean at the last probe, with
/// the 95% interval as an error bar), and the threshold as a dashed line.
fn layer_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    figure: &LayerFigure,
) -> Result<(), String> {
    let threshold = figure.threshold;
    let n_layers = figure.bars.first().map_or(0, |(_, layers)| layers.len());
    let top = figure
        .bars
        .iter()
        .flat_map(|(_, layers)| layers.iter().flatten())
        .map(|e| e.ci.map_or(e.mean, |(_, hi)| hi))
        .fold(threshold, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(figure.title.as_str(), (FAMILY, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        // Headroom for the legend above the bars.
        .build_cartesian_2d(-0.6f64..n_layers as f64 - 0.4, 0f64..top * 1.45)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("layer")
        .y_desc(figure.y_label.as_str())
        .x_labels(n_layers.max(1))
        .x_label_formatter(&|x| format!("{:.0}", x))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(err)?;
    let width = 0.8 / figure.bars.len().max(1) as f64;
    for (i, (title, layers)) in figure.bars.iter().enumerate() {
        let c = color(i);
        let x0 = |l: usize| l as f64 - 0.4 + width * i as f64;
        chart
            .draw_series(layers.iter().enumerate().filter_map(|(l, e)| {
                let e = e.as_ref()?;
                Some(Rectangle::new(
                    [(x0(l) + 0.05 * width, 0.0), (x0(l) + 0.95 * width, e.mean)],
                    c.filled(),
                ))
            }))
            .map_err(err)?
            .label(title.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.filled()));
        // The 95% interval: a vertical line with caps.
        let cap = width * 0.2;
        chart
            .draw_series(layers.iter().enumerate().filter_map(|(l, e)| {
                let (lo, hi) = e.as_ref()?.ci?;
                let x = x0(l) + width / 2.0;
                Some(PathElement::new(
                    vec![
                        (x - cap, lo),
                        (x + cap, lo),
                        (x, lo),
                        (x, hi),
                        (x - cap, hi),
                        (x + cap, hi),
                    ],
                    BLACK.stroke_width(1),
                ))
            }))
            .map_err(err)?;
    }
    // The threshold in black and dashed: no condition has that colour.
    let dashes = (0..n_layers * 8).map(|k| {
        let x = -0.6 + k as f64 / 8.0;
        PathElement::new(
            vec![(x, threshold), (x + 0.07, threshold)],
            BLACK.stroke_width(2),
        )
    });
    chart
        .draw_series(dashes)
        .map_err(err)?
        .label(figure.threshold_label.clone())
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], BLACK.stroke_width(2)));
    legend(&mut chart)
}
