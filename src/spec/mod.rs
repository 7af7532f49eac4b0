//! The study as data: RON schema, parsing with positioned errors, semantic checks and
//! field-path overrides. Everything downstream starts from a `LoadedStudy`.

pub mod check;
pub mod data_config;
pub mod diagnostic;
pub mod inputs;
pub mod load;
pub mod model_config;
pub mod optimizer_config;
pub mod patch;
pub mod probe_config;
mod problems;
pub mod run_config;
pub mod schedule_config;
pub mod source;
pub mod study;
pub mod suggest;

/// Serde: leave a `false` out, so that adding such a field keeps every run id.
fn is_false(value: &bool) -> bool {
    !*value
}

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::{load_study, parse_study, LoadedStudy};
pub use run_config::RunConfig;
pub use study::{Axis, Device, Study};

use ron::extensions::Extensions;

/// The RON dialect of study files: `Some(..)` may be left out around optional values, and
/// an enum variant wrapping a struct is written `Muon(lr: 0.02, ...)`, not `Muon((...))`.
pub fn ron_options() -> ron::Options {
    ron::Options::default()
        .with_default_extension(Extensions::IMPLICIT_SOME)
        .with_default_extension(Extensions::UNWRAP_VARIANT_NEWTYPES)
}

/// Characters allowed in study names and run labels: they become directory names.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
        && !name.starts_with('.')
}

/// Problems of the study as written: its name and its base config, each located.
pub fn study_diagnostics(loaded: &LoadedStudy) -> Vec<Diagnostic> {
    let source = &loaded.source;
    let mut diagnostics = Vec::new();
    if !is_safe_name(&loaded.study.name) {
        diagnostics.push(
            Diagnostic::new(format!(
                "study name `{}` cannot be a directory name",
                loaded.study.name
            ))
            .at(source.find_key_path(&["name"]))
            .help("use letters, digits, `_`, `-`, `.` or `+` (at most 64, not starting with `.`)"),
        );
    }
    let descriptions = std::iter::once((loaded.study.description.as_str(), "description")).chain(
        loaded.study.sweep.iter().flat_map(|axis| match axis {
            Axis::Conditions(conditions) => conditions
                .iter()
                .map(|c| (c.description.as_str(), "condition description"))
                .collect(),
            _ => Vec::new(),
        }),
    );
    for (text, what) in descriptions {
        if let Some(c) = text
            .chars()
            .find(|c| c.is_control() && *c != '\n' && *c != '\t')
        {
            diagnostics.push(
                Diagnostic::new(format!(
                    "the {what} contains the control character {}",
                    c.escape_unicode()
                ))
                .at(source
                    .find_string(text, None)
                    .or_else(|| source.find_key_path(&["description"])))
                .in_file(source.path())
                .help("descriptions are shown on terminals and in reports: use plain text"),
            );
        }
    }
    for problem in check::check_run(&loaded.study.base) {
        diagnostics.push(base_problem(loaded, &problem));
    }
    let execution = &loaded.study.execution;
    if execution.checkpoint_every_tokens == Some(0) {
        diagnostics.push(
            Diagnostic::new("`execution.checkpoint_every_tokens` must be at least 1".to_owned())
                .at(source.find_key_path(&["execution", "checkpoint_every_tokens"]))
                .in_file(source.path())
                .help("give a token count, or leave the field out for time-based checkpoints only"),
        );
    }
    if execution.tf32 && execution.device == Device::Cpu {
        diagnostics.push(
            Diagnostic::new(
                "`execution.tf32` asks for TF32 tensor cores, but `execution.device` is Cpu"
                    .to_owned(),
            )
            .at(source.find_key_path(&["execution", "tf32"]))
            .in_file(source.path())
            .help("the CPU has no TF32: remove `tf32: true`, or use `device: Auto` or `Cuda(N)`"),
        );
    }
    let minutes = execution.checkpoint_every_minutes;
    if !(minutes.is_finite() && minutes >= 0.0) {
        diagnostics.push(
            Diagnostic::new(format!(
                "`execution.checkpoint_every_minutes` must be a finite number >= 0, got {minutes}"
            ))
            .at(source.find_key_path(&["execution", "checkpoint_every_minutes"]))
            .in_file(source.path())
            .help("e.g. 10.0; 0 turns time-based checkpoints off"),
        );
    }
    diagnostics
}

/// A problem of the base config, pointing at its field in the file.
pub fn base_problem(loaded: &LoadedStudy, problem: &check::Problem) -> Diagnostic {
    let mut path = vec!["base"];
    path.extend(problem.field.split('.'));
    // Enum fields (optimizer.lr) sit inside a variant: fall back to shorter paths.
    let location = (2..=path.len())
        .rev()
        .find_map(|n| loaded.source.find_key_path(&path[..n]));
    Diagnostic::new(problem.message.clone())
        .at(location)
        .in_file(loaded.source.path())
        .help(problem.help.clone())
}

/// Configs shared by the unit tests of several modules.
#[cfg(test)]
pub mod test_fixtures {
    use super::{ron_options, RunConfig, Study};

    /// The base config of `tests/studies/tiny.ron` (the quickstart shape, Muon base).
    pub fn tiny() -> RunConfig {
        let text = include_str!("../../tests/studies/tiny.ron");
        ron_options().from_str::<Study>(text).unwrap().base
    }

    /// The tiny model resized to the unit tests' `Transformer<11, 16, 4, 8, 24, 2, ..>`
    /// (d_model 16, 4 heads of 4, 2 key/value heads, d_ff 24, 2 layers), in every
    /// variant of the tensors it reads: activation x tied embeddings x QK-norm gains.
    pub fn small_model_variants() -> Vec<super::run_config::ModelConfig> {
        use super::run_config::{Activation, Gain, QkNorm};
        let mut config = tiny().model;
        (
            config.d_model,
            config.n_heads,
            config.n_kv_heads,
            config.head_dim,
        ) = (16, 4, 2, 4);
        (config.d_ff, config.n_layers) = (24, 2);
        let mut variants = Vec::new();
        for activation in [Activation::SquaredRelu, Activation::SwiGlu] {
            for tied in [true, false] {
                for qk_norm in [
                    QkNorm::None,
                    QkNorm::RmsNorm { gain: Gain::Frozen },
                    QkNorm::RmsNorm {
                        gain: Gain::Learnable,
                    },
                ] {
                    (config.activation, config.tied_embeddings) = (activation, tied);
                    config.qk_norm = qk_norm;
                    variants.push(config.clone());
                }
            }
        }
        variants
    }
}
