//! Which fields differ between the runs of a plan, and how each run sets them.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use crate::spec::run_config::{
    DataConfig, ModelConfig, OptimizerConfig, ProbeConfig, ScheduleConfig,
};
use crate::spec::RunConfig;

/// Values longer than this are shown by their variant name only.
const MAX_SHOWN_LEN: usize = 32;

/// The fields (dotted paths) whose values are not the same in every run, in config order.
/// A field inside a differing enum is listed only if every run has it, or if it differs
/// between runs that have it: with Muon and AdamW runs, `optimizer.lr` is listed but
/// Muon's `optimizer.momentum` is not, unless two Muon runs set it differently.
pub fn differing_fields(configs: &[&RunConfig]) -> Vec<String> {
    differing_values(configs).0
}

/// `differing_fields`, and how each config sets each of them (one row per config).
/// Every config is compared with the first one as a tree: equal subtrees are skipped, so
/// only the fields an override touched are visited, and 100,000 runs take a second.
pub fn differing_values(configs: &[&RunConfig]) -> (Vec<String>, Vec<Vec<String>>) {
    let Some(first) = configs.first().map(|c| to_json(c)) else {
        return (Vec::new(), Vec::new());
    };
    let first = &first;
    let mut paths = PathStats::default();
    let mut first_shown = Vec::new();
    flatten(first, "", &mut first_shown);
    for (path, _) in &first_shown {
        paths.note(path, false, false);
    }
    let first_shown: HashMap<String, String> = first_shown.into_iter().collect();
    paths.first_shown = first_shown;
    // Per config, how it shows the paths where it differs from the first. Only the
    // sections that differ (typed comparison, no serialisation) are compared as JSON, and
    // a section equal to one compared recently reuses that comparison (in a sweep most
    // runs share most sections with their neighbours).
    let first_config = configs[0];
    let mut caches = SectionCaches::default();
    let mut differences = |config: &RunConfig, paths: &mut PathStats| {
        let mut all: Vec<Rc<SectionDiff>> = Vec::new();
        macro_rules! section {
            ($field:ident, $cache:ident) => {
                if config.$field != first_config.$field {
                    let name = stringify!($field);
                    all.push(caches.$cache.get_or(&config.$field, || {
                        let value = serde_json::to_value(&config.$field)
                            .expect("a run config always serialises to JSON");
                        let mut diff = SectionDiff::default();
                        compare(
                            first.get(name),
                            Some(&value),
                            name,
                            &paths.first_shown,
                            &mut diff,
                        );
                        diff
                    }));
                }
            };
        }
        section!(seed, seed);
        section!(data, data);
        section!(model, model);
        section!(optimizer, optimizer);
        section!(schedule, schedule);
        section!(probes, probes);
        for diff in &all {
            for (path, varies, missing) in &diff.notes {
                paths.note(path, *varies, *missing);
            }
        }
        all
    };
    for config in configs {
        differences(config, &mut paths);
    }
    let mut differing: Vec<String> = Vec::new();
    for path in &paths.order {
        let (varies, missing, differs_where_present) = paths.stats[path];
        let covered = differing.iter().any(|parent| is_within(path, parent)) && missing;
        if (varies || missing) && (!covered || differs_where_present) {
            differing.push(path.clone());
        }
    }
    // A second comparison per config gives its row (keeping every config's differences
    // from the first pass would cost more memory than the comparison costs time).
    let rows = configs
        .iter()
        .map(|config| {
            let diffs = differences(config, &mut paths);
            differing
                .iter()
                .map(|path| {
                    let own = diffs.iter().find_map(|d| d.shown.get(path));
                    let value = own.or_else(|| paths.first_shown.get(path));
                    value.map_or_else(|| "-".to_owned(), String::clone)
                })
                .collect()
        })
        .collect();
    (differing, rows)
}

/// Every path seen, in first-seen order: (its shown value differs from the first
/// config's somewhere, some config lacks it, a config that has it shows another value
/// than the first config's).
#[derive(Default)]
struct PathStats {
    order: Vec<String>,
    stats: HashMap<String, (bool, bool, bool)>,
    /// How the first config shows each of its paths.
    first_shown: HashMap<String, String>,
}

impl PathStats {
    fn note(&mut self, path: &str, varies: bool, missing: bool) {
        match self.stats.get_mut(path) {
            Some(stat) => {
                stat.0 |= varies;
                stat.1 |= missing;
                stat.2 |= varies && !missing;
            }
            None => {
                self.order.push(path.to_owned());
                (self.stats).insert(path.to_owned(), (varies, missing, varies && !missing));
            }
        }
    }
}

/// How one section of a config differs from the first config's: the paths noted
/// (path, shown value differs, the config lacks it) and how it shows each of them.
#[derive(Default)]
struct SectionDiff {
    notes: Vec<(String, bool, bool)>,
    shown: HashMap<String, String>,
}

/// The last few distinct values of one section type, with their comparisons.
struct Recent<T> {
    items: Vec<(T, Rc<SectionDiff>)>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent { items: Vec::new() }
    }
}

impl<T: PartialEq + Clone> Recent<T> {
    const KEPT: usize = 16;

    fn get_or(&mut self, value: &T, compute: impl FnOnce() -> SectionDiff) -> Rc<SectionDiff> {
        if let Some((_, diff)) = self.items.iter().find(|(v, _)| v == value) {
            return diff.clone();
        }
        let diff = Rc::new(compute());
        if self.items.len() == Self::KEPT {
            self.items.remove(0);
        }
        self.items.push((value.clone(), diff.clone()));
        diff
    }
}

#[derive(Default)]
struct SectionCaches {
    seed: Recent<u64>,
    data: Recent<DataConfig>,
    model: Recent<ModelConfig>,
    optimizer: Recent<OptimizerConfig>,
    schedule: Recent<ScheduleConfig>,
    probes: Recent<ProbeConfig>,
}

/// Notes in `diff` the paths at which `a` (the first config's subtree at `path`) and
/// `b` differ, and how `b` shows each of them ("-" where it lacks the field).
fn compare(
    a: Option<&Value>,
    b: Option<&Value>,
    path: &str,
    first_shown: &HashMap<String, String>,
    diff: &mut SectionDiff,
) {
    match (a, b) {
        (Some(a), Some(b)) if a == b => {}
        (Some(only), None) | (None, Some(only)) => {
            let mut flat = Vec::new();
            flatten(only, path, &mut flat);
            let present = b.is_some();
            for (path, value) in flat {
                diff.notes.push((path.clone(), true, true));
                diff.shown
                    .insert(path, if present { value } else { "-".to_owned() });
            }
        }
        (Some(a), Some(b)) => {
            if !path.is_empty() {
                let b_shown = display(b);
                let differs = match first_shown.get(path) {
                    Some(a_shown) => *a_shown != b_shown,
                    None => display(a) != b_shown,
                };
                diff.notes.push((path.to_owned(), differs, false));
                diff.shown.insert(path.to_owned(), b_shown);
            }
            let (fields_a, fields_b) = (children(a), children(b));
            let names = fields_a
                .iter()
                .flat_map(|f| f.keys())
                .chain(fields_b.iter().flat_map(|f| {
                    f.keys()
                        .filter(|k| !fields_a.is_some_and(|a| a.contains_key(*k)))
                }));
            for name in names {
                let (child_a, child_b) = (
                    fields_a.and_then(|f| f.get(name)),
                    fields_b.and_then(|f| f.get(name)),
                );
                compare(child_a, child_b, &join(path, name), first_shown, diff);
            }
        }
        (None, None) => {}
    }
}

/// The fields below a value's path: a struct's, or an enum variant's own.
fn children(value: &Value) -> Option<&serde_json::Map<String, Value>> {
    match as_enum(value) {
        Some((_, inner)) => inner.as_object(),
        None => value.as_object(),
    }
}

/// How a value is shown in its column.
fn display(value: &Value) -> String {
    match as_enum(value) {
        Some((variant, _)) => short(value, variant),
        None if value.is_object() => short(value, "(..)"),
        None => compact(value),
    }
}

fn to_json(config: &RunConfig) -> Value {
    serde_json::to_value(config).expect("a run config always serialises to JSON")
}

/// How `config` sets the field at `path`, compactly ("-" when the field does not exist).
pub fn shown_value(config: &RunConfig, path: &str) -> String {
    flatten_config(config)
        .into_iter()
        .find(|(p, _)| p == path)
        .map_or_else(|| "-".to_owned(), |(_, v)| v)
}

fn is_within(path: &str, parent: &str) -> bool {
    path.len() > parent.len() && path.starts_with(parent) && path.as_bytes()[parent.len()] == b'.'
}

/// Every field of the config by dotted path, in config order, with its shown value.
fn flatten_config(config: &RunConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten(&to_json(config), "", &mut out);
    out
}

/// Every node below `path` with how it is shown: a struct or enum at its own path
/// (then its fields below it; an enum variant's fields sit directly below the enum's
/// path), a leaf by its value.
fn flatten(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if !path.is_empty() {
        out.push((path.to_owned(), display(value)));
    }
    for (name, field) in children(value).into_iter().flatten() {
        flatten(field, &join(path, name), out);
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Externally tagged enum variants serialise as `{"Variant": inner}`; field names are
/// snake_case, so a single capitalised key is always a variant.
fn as_enum(value: &Value) -> Option<(&str, &Value)> {
    let fields = value.as_object()?;
    let (key, inner) = fields.iter().next()?;
    (fields.len() == 1 && key.starts_with(|c: char| c.is_ascii_uppercase()))
        .then_some((key.as_str(), inner))
}

fn short(value: &Value, fallback: &str) -> String {
    let mut full = String::new();
    if write_compact(value, &mut full, MAX_SHOWN_LEN) {
        full
    } else {
        fallback.to_owned()
    }
}
/// A value in RON-like notation: `RmsNorm(gain: Learnable)`, `(0.9, 0.999)`, `[0, 1]`.
pub fn compact(value: &Value) -> String {
    let mut out = String::new();
    write_compact(value, &mut out, usize::MAX);
    out
}

/// Appends `compact(value)` to `out`; stops early and returns false once `out` is longer
/// than `limit` (a long value is not shown, so it need not be written out in full).
fn write_compact(value: &Value, out: &mut String, limit: usize) -> bool {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(&b.to_string()),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) if s.starts_with(|c: char| c.is_ascii_uppercase()) => out.push_str(s),
        Value::String(s) => out.push_str(&format!("{s:?}")),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if !write_compact(item, out, limit) {
                    return false;
                }
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let complete = match as_enum(value) {
                Some((variant, Value::Object(inner))) => {
                    out.push_str(variant);
                    out.push('(');
                    write_fields(inner, out, limit)
                }
                Some((variant, inner)) => {
                    out.push_str(variant);
                    out.push('(');
                    write_compact(inner, out, limit)
                }
                None => {
                    out.push('(');
                    write_fields(fields, out, limit)
                }
            };
            if !complete {
                return false;
            }
            out.push(')');
        }
    }
    out.len() <= limit
}

fn write_fields(fields: &serde_json::Map<String, Value>, out: &mut String, limit: usize) -> bool {
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str(": ");
        if !write_compact(value, out, limit) {
            return false;
        }
    }
    out.len() <= limit
}
