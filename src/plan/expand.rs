//! Sweep axes -> points -> the run matrix (cartesian product, first axis outermost).

use crate::spec::source::Location;
use crate::spec::study::{Axis, GridAxis, LogGridAxis, RonValue};
use crate::spec::suggest::quoted_list;
use crate::spec::{is_safe_name, Diagnostic, LoadedStudy};

/// One override: set `path` to `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub path: String,
    pub value: RonValue,
    /// Where it is written, for error messages.
    pub location: Option<Location>,
}

/// One value of an axis: a label piece and the overrides it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub label: String,
    pub assignments: Vec<Assignment>,
    /// What a named condition is ("Muon + QK-norm"); empty for other axes.
    pub description: String,
    /// Whether the point is a seed of a `Seeds` axis: runs that differ only in these are
    /// repeats of one condition.
    pub is_seed: bool,
    /// The number a `LogGrid` point sets (the report's x-axis); None for other axes.
    pub x: Option<f64>,
}

/// The points of every axis, in order, or what is wrong with the axes.
pub fn axis_points(loaded: &LoadedStudy) -> Result<Vec<Vec<Point>>, Vec<Diagnostic>> {
    let mut all = Vec::new();
    let mut diagnostics = Vec::new();
    for (index, axis) in loaded.study.sweep.iter().enumerate() {
        let at = AxisSite { loaded, index };
        match points_of(axis, &at) {
            Ok(points) => all.push(points),
            Err(mut errs) => diagnostics.append(&mut errs),
        }
    }
    diagnostics.extend(conflicting_paths(loaded, &all));
    if diagnostics.is_empty() {
        Ok(all)
    } else {
        Err(diagnostics)
    }
}

/// Every combination of one point per axis, first axis outermost. No axes: one run.
pub fn product(axes: &[Vec<Point>]) -> Vec<Vec<&Point>> {
    axes.iter().fold(vec![Vec::new()], |combos, points| {
        combos
            .iter()
            .flat_map(|combo| {
                points.iter().map(move |point| {
                    let mut next = combo.clone();
                    next.push(point);
                    next
                })
            })
            .collect()
    })
}

/// The label of a run: its points' labels joined with `_` ("base" when there are none).
pub fn run_label(points: &[&Point]) -> String {
    let label = join_labels(points.iter().map(|p| p.label.as_str()));
    if label.is_empty() {
        "base".to_owned()
    } else {
        label
    }
}

/// The family of a run on a numeric axis: its label without seed and `LogGrid` pieces
/// (the runs the report draws as one curve against the axis).
pub fn run_family(points: &[&Point]) -> String {
    let pieces: Vec<&Point> = (points.iter().copied())
        .filter(|p| !p.is_seed && p.x.is_none())
        .collect();
    run_label(&pieces)
}

/// The `LogGrid` value of a run: (path, number), if it has one.
pub fn run_x(points: &[&Point]) -> Option<(String, f64)> {
    let point = points.iter().find(|p| p.x.is_some())?;
    Some((point.assignments[0].path.clone(), point.x?))
}

/// The condition of a run: its label without the pieces of `Seeds` axes ("base" when
/// nothing else is left). Runs of one condition differ only in their seed.
pub fn run_condition(points: &[&Point]) -> String {
    let pieces: Vec<&Point> = points.iter().copied().filter(|p| !p.is_seed).collect();
    run_label(&pieces)
}

/// What the named conditions among `points` are, joined with "; " (empty when none
/// has a description).
pub fn run_description(points: &[&Point]) -> String {
    points
        .iter()
        .map(|p| p.description.as_str())
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Joins label pieces with `_`, skipping empty ones (a zipped axis may leave its part out).
fn join_labels<'a>(pieces: impl Iterator<Item = &'a str>) -> String {
    pieces
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// Locates things written inside one axis of the sweep.
struct AxisSite<'a> {
    loaded: &'a LoadedStudy,
    index: usize,
}

impl AxisSite<'_> {
    fn axis(&self) -> &Axis {
        &self.loaded.study.sweep[self.index]
    }

    /// The axis's variant name (`Grid`, ...) in the file.
    fn location(&self) -> Option<Location> {
        let source = &self.loaded.source;
        let sweep = source.find_key_path(&["sweep"]);
        let kind = self.axis().kind();
        let same_kind_before = self.loaded.study.sweep[..self.index]
            .iter()
            .filter(|a| a.kind() == kind)
            .count();
        source.find_ident(kind, same_kind_before, sweep.as_ref())
    }

    /// A string literal inside this axis, after `after` when given.
    fn string(&self, content: &str, after: Option<&Location>) -> Option<Location> {
        let start = after.cloned().or_else(|| self.location());
        self.loaded.source.find_string(content, start.as_ref())
    }

    fn error(&self, message: String, at: Option<Location>, help: &str) -> Diagnostic {
        Diagnostic::new(format!(
            "sweep axis {} ({}): {message}",
            self.index + 1,
            self.axis().kind()
        ))
        .at(at.or_else(|| self.location()))
        .in_file(self.loaded.source.path())
        .help(help)
    }
}

fn points_of(axis: &Axis, at: &AxisSite) -> Result<Vec<Point>, Vec<Diagnostic>> {
    let points = match axis {
        Axis::Conditions(conditions) => conditions
            .iter()
            .map(|condition| {
                let name_at = at.string(&condition.name, None);
                let mut assignments: Vec<Assignment> = condition
                    .set
                    .iter()
                    .map(|(path, value)| Assignment {
                        path: path.clone(),
                        value: value.clone(),
                        location: at.string(path, name_at.as_ref()),
                    })
                    .collect();
                // A whole value before the fields inside it: "optimizer" before "optimizer.lr".
                assignments.sort_by_key(|a| a.path.matches('.').count());
                Point {
                    label: condition.name.clone(),
                    assignments,
                    description: condition.description.clone(),
                    is_seed: false,
                    x: None,
                }
            })
            .collect(),
        Axis::Grid(grid) => grid_points(grid, at)?,
        Axis::Zip(members) => zip_points(members, at)?,
        Axis::Seeds(seeds) => seeds
            .iter()
            .map(|seed| Point {
                label: format!("s{seed}"),
                assignments: vec![Assignment {
                    path: "seed".to_owned(),
                    value: RonValue(seed.to_string()),
                    location: at.location(),
                }],
                description: String::new(),
                is_seed: true,
                x: None,
            })
            .collect(),
        Axis::LogGrid(grid) => log_grid_points(grid, at)?,
    };
    check_points(&points, at)?;
    Ok(points)
}

fn grid_points(grid: &GridAxis, at: &AxisSite) -> Result<Vec<Point>, Vec<Diagnostic>> {
    let path_at = at.string(&grid.path, None);
    if let Some(labels) = &grid.labels {
        if labels.len() != grid.values.len() {
            return Err(vec![at.error(
                format!(
                    "`{}` has {} values but {} labels",
                    grid.path,
                    grid.values.len(),
                    labels.len()
                ),
                path_at,
                "give one label per value, or leave `labels` out to generate them",
            )]);
        }
    }
    let leaf = grid.path.rsplit('.').next().unwrap_or(&grid.path);
    Ok(grid
        .values
        .iter()
        .enumerate()
        .map(|(i, value)| Point {
            label: match &grid.labels {
                Some(labels) => labels[i].clone(),
                None => generated_label(leaf, value),
            },
            assignments: vec![Assignment {
                path: grid.path.clone(),
                value: value.clone(),
                location: path_at.clone(),
            }],
            description: String::new(),
            // A grid over the seed repeats the other axes' conditions, as `Seeds` does.
            is_seed: grid.path == "seed",
            x: None,
        })
        .collect())
}

fn zip_points(members: &[GridAxis], at: &AxisSite) -> Result<Vec<Point>, Vec<Diagnostic>> {
    let columns: Vec<Vec<Point>> = members
        .iter()
        .map(|grid| grid_points(grid, at))
        .collect::<Result<_, _>>()?;
    let lengths: Vec<usize> = columns.iter().map(Vec::len).collect();
    if lengths.windows(2).any(|pair| pair[0] != pair[1]) {
        let described: Vec<String> = members
            .iter()
            .map(|m| format!("`{}` has {}", m.path, m.values.len()))
            .collect();
        return Err(vec![at.error(
            format!("zipped axes must have equal lengths: {}", described.join(", ")),
            None,
            "give every zipped path the same number of values, or use separate Grid axes for a product",
        )]);
    }
    let len = lengths.first().copied().unwrap_or(0);
    Ok((0..len)
        .map(|i| Point {
            label: join_labels(columns.iter().map(|column| column[i].label.as_str())),
            assignments: columns
                .iter()
                .flat_map(|column| column[i].assignments.clone())
                .collect(),
            description: String::new(),
            // Zipped with the seed, each point is still its own condition.
            is_seed: false,
            x: None,
        })
        .collect())
}

fn log_grid_points(grid: &LogGridAxis, at: &AxisSite) -> Result<Vec<Point>, Vec<Diagnostic>> {
    let path_at = at.string(&grid.path, None);
    let valid = |v: f64| v.is_finite() && v > 0.0;
    if !valid(grid.from) || !valid(grid.to) || grid.from == grid.to || grid.points < 2 {
        return Err(vec![at.error(
            format!(
                "needs two different positive numbers and at least 2 points, got from: {}, \
                 to: {}, points: {}",
                grid.from, grid.to, grid.points
            ),
            path_at,
            "e.g. LogGrid(path: \"schedule.lr_scale\", from: 0.1, to: 10.0, points: 5)",
        )]);
    }
    let leaf = grid.path.rsplit('.').next().unwrap_or(&grid.path);
    let prefix = grid.prefix.as_deref().unwrap_or(leaf);
    let ratio = grid.to / grid.from;
    let last = (grid.points - 1) as f64;
    Ok((0..grid.points)
        .map(|i| {
            let (text, value) = three_digits(grid.from * ratio.powf(i as f64 / last));
            Point {
                label: format!("{prefix}{text}"),
                assignments: vec![Assignment {
                    path: grid.path.clone(),
                    value: RonValue(format!("{value:?}")),
                    location: path_at.clone(),
                }],
                description: String::new(),
                is_seed: false,
                x: Some(value),
            }
        })
        .collect())
}

/// `value` rounded to 3 significant digits: its label text (`3e-3`, `0.316`, `31.6`)
/// and the number that text means, so that a label says exactly what the run used.
pub fn three_digits(value: f64) -> (String, f64) {
    let mut exponent = value.log10().floor() as i32;
    let mut mantissa = (value / 10f64.powi(exponent) * 100.0).round() / 100.0;
    if mantissa >= 10.0 {
        mantissa /= 10.0;
        exponent += 1;
    }
    let digits = format!("{mantissa:.2}");
    let digits = digits.trim_end_matches('0').trim_end_matches('.');
    let scientific = format!("{digits}e{exponent}");
    let number: f64 = scientific.parse().expect("a number in scientific notation");
    let text = if exponent <= -2 {
        scientific
    } else {
        format!("{number}")
    };
    (text, number)
}

/// `lr0.012`, `qk_normNone`: the field name and the value with unsafe characters dropped.
fn generated_label(leaf: &str, value: &RonValue) -> String {
    let value: String = value
        .as_str()
        .chars()
        .filter(|&c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        .collect();
    format!("{leaf}{value}")
}

fn check_points(points: &[Point], at: &AxisSite) -> Result<(), Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    if points.is_empty() {
        diagnostics.push(at.error(
            "has no values".to_owned(),
            None,
            "give the axis at least one value, or remove it",
        ));
    }
    for (i, point) in points.iter().enumerate() {
        if !is_safe_name(&point.label) {
            diagnostics.push(at.error(
                format!("label `{}` cannot be part of a directory name", point.label),
                at.string(&point.label, None),
                "use letters, digits, `_`, `-`, `.` or `+` (at most 64 characters)",
            ));
        }
        if points[..i].iter().any(|p| p.label == point.label) {
            diagnostics.push(at.error(
                format!("label `{}` is used twice", point.label),
                at.string(&point.label, None),
                "give every value of an axis its own label",
            ));
        }
    }
    if diagnostics.is_empty() {
        Ok(())
    } else {
        Err(diagnostics)
    }
}

/// Two axes setting the same path would make the later one silently win.
fn conflicting_paths(loaded: &LoadedStudy, axes: &[Vec<Point>]) -> Vec<Diagnostic> {
    let paths_of = |points: &Vec<Point>| -> Vec<String> {
        let mut paths: Vec<String> = points
            .iter()
            .flat_map(|p| p.assignments.iter().map(|a| a.path.clone()))
            .collect();
        paths.sort();
        paths.dedup();
        paths
    };
    let per_axis: Vec<Vec<String>> = axes.iter().map(paths_of).collect();
    let mut diagnostics = Vec::new();
    for (later, later_paths) in per_axis.iter().enumerate() {
        for (earlier, earlier_paths) in per_axis[..later].iter().enumerate() {
            let shared: Vec<&str> = later_paths
                .iter()
                .filter(|p| earlier_paths.contains(p))
                .map(String::as_str)
                .collect();
            if !shared.is_empty() {
                let at = AxisSite {
                    loaded,
                    index: later,
                };
                diagnostics.push(at.error(
                    format!(
                        "sets {} which axis {} sets too",
                        quoted_list(&shared),
                        earlier + 1
                    ),
                    None,
                    "set each path in one axis only (a Zip axis varies several paths together)",
                ));
            }
        }
    }
    diagnostics
}
