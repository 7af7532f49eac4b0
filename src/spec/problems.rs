//! One thing wrong with a run config (`Problem`), the list each section's checks add to
//! (`Problems`), and the bounds they hold sizes to. Below the sections' modules, which
//! check their own fields; `check` runs them all.

/// Polar Express has coefficients for this many Newton-Schulz steps.
pub const POLAR_EXPRESS_STEPS: usize = 5;

/// Upper bounds of the sizes in a run config. Far beyond any model this tool can train,
/// they keep every product of sizes (widths x widths x layers, batch x sequence) well
/// inside 64 bits, so no shape or budget arithmetic can overflow; a value past them is
/// a typo, reported as such.
pub const MAX_WIDTH: usize = 1 << 20;
pub const MAX_LAYERS: usize = 1 << 12;
pub const MAX_SEQUENCES: usize = 1 << 24;
pub const MAX_NS_STEPS: usize = 1 << 10;
/// The largest rank of `probes.key_ablation` (each rank is a metric name of its own).
pub const MAX_ABLATION_RANK: usize = 4096;

/// One thing wrong with a run config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Dotted path of the field at fault, relative to the run config (`model.d_model`).
    pub field: String,
    pub message: String,
    pub help: String,
}

#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, field: &str, message: String, help: impl Into<String>) {
        self.0.push(Problem {
            field: field.to_owned(),
            message,
            help: help.into(),
        });
    }

    pub(super) fn positive(&mut self, field: &str, value: usize) {
        if value == 0 {
            self.push(
                field,
                format!("`{field}` must be at least 1"),
                "use a positive size",
            );
        }
    }

    /// A size in 1..=max; returns whether it is one.
    pub(super) fn size(&mut self, field: &str, value: usize, max: usize) -> bool {
        if value == 0 {
            self.positive(field, value);
            false
        } else if value > max {
            self.push(
                field,
                format!("`{field}` is {value}, more than the largest supported, {max}"),
                format!("use a size between 1 and {max}"),
            );
            false
        } else {
            true
        }
    }

    pub(super) fn positive_finite(&mut self, field: &str, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            self.push(
                field,
                format!("`{field}` must be a positive finite number, got {value}"),
                "use a value > 0",
            );
        }
    }

    pub(super) fn in_unit_interval(&mut self, field: &str, value: f64, open_top: bool) {
        let ok = value >= 0.0 && if open_top { value < 1.0 } else { value <= 1.0 };
        if !ok {
            let range = if open_top { "[0, 1)" } else { "[0, 1]" };
            self.push(
                field,
                format!("`{field}` must be in {range}, got {value}"),
                format!("use a value in {range}"),
            );
        }
    }

    pub(super) fn non_empty(&mut self, field: &str, text: &str, example: &str) {
        if text.trim().is_empty() {
            self.push(
                field,
                format!("`{field}` is empty"),
                format!("e.g. {example}"),
            );
        }
    }
}
