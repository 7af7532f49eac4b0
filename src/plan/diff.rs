//! Which fields differ between the runs of a plan, and how each run sets them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::spec::RunConfig;

/// Values longer than this are shown by their variant name only.
const MAX_SHOWN_LEN: usize = 32;

/// The fields (dotted paths) whose values are not the same in every run, in config order.
/// A field inside a differing enum is listed only if every run has it: with Muon and
/// AdamW runs, `optimizer.lr` is listed but Muon's `optimizer.momentum` is not.
pub fn differing_fields(configs: &[&RunConfig]) -> Vec<String> {
    let flat: Vec<Vec<(String, String)>> = configs.iter().map(|c| flatten_config(c)).collect();
    let maps: Vec<BTreeMap<&str, &str>> = flat
        .iter()
        .map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut differing: Vec<String> = Vec::new();
    for (path, _) in flat.iter().flatten() {
        if !seen.insert(path.as_str()) {
            continue;
        }
        let first = maps[0].get(path.as_str());
        let varies = maps.iter().any(|m| m.get(path.as_str()) != first);
        let everywhere = maps.iter().all(|m| m.contains_key(path.as_str()));
        let covered = differing.iter().any(|parent| is_within(path, parent)) && !everywhere;
        if varies && !covered {
            differing.push(path.clone());
        }
    }
    differing
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
    let value = serde_json::to_value(config).expect("a run config always serialises to JSON");
    let mut out = Vec::new();
    flatten(&value, "", &mut out);
    out
}

fn flatten(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            if let Some((variant, inner)) = as_enum(value) {
                out.push((path.to_owned(), short(value, variant)));
                if inner.is_object() {
                    // The variant's own fields sit directly below the enum's path.
                    flatten_fields(inner, path, out);
                }
            } else {
                if !path.is_empty() {
                    out.push((path.to_owned(), short(value, "(..)")));
                }
                for (name, field) in fields {
                    flatten(field, &join(path, name), out);
                }
            }
        }
        _ => out.push((path.to_owned(), compact(value))),
    }
}

fn flatten_fields(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if let Value::Object(fields) = value {
        for (name, field) in fields {
            flatten(field, &join(path, name), out);
        }
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
    let full = compact(value);
    if full.len() <= MAX_SHOWN_LEN {
        full
    } else {
        fallback.to_owned()
    }
}

/// A value in RON-like notation: `RmsNorm(gain: Learnable)`, `(0.9, 0.999)`, `[0, 1]`.
pub fn compact(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.starts_with(|c: char| c.is_ascii_uppercase()) => s.clone(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(compact).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(fields) => match as_enum(value) {
            Some((variant, Value::Object(inner))) => format!("{variant}({})", fields_text(inner)),
            Some((variant, inner)) => format!("{variant}({})", compact(inner)),
            None => format!("({})", fields_text(fields)),
        },
    }
}

fn fields_text(fields: &serde_json::Map<String, Value>) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{name}: {}", compact(value)))
        .collect::<Vec<_>>()
        .join(", ")
}
