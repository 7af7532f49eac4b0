//! `rankprobe export STUDY_DIR --to DIR`: the study's finished runs as PyTorch-ready
//! directories (`crate::export`), and what was written or skipped.

use std::path::Path;

use super::Failure;

pub fn export(study_dir: &Path, only: &[String], to: &Path) -> Result<(), Failure> {
    if !study_dir.join(crate::store::RUNS_DIR).is_dir() {
        return Err(Failure::BadInput(format!(
            "{} holds no runs (expected a study's results directory, e.g. results/quickstart)",
            study_dir.display()
        )));
    }
    let (exported, skipped) =
        crate::export::export(study_dir, only, to).map_err(Failure::BadInput)?;
    // Labels, names and paths come from files on disk: printed as one line each, escapes
    // shown, never interpreted by the terminal.
    let shown = |text: &str| crate::spec::diagnostic::one_line(text);
    for run in &exported {
        println!(
            "{:<12} {} ({} tensors, {:.1} MB of weights)",
            shown(&run.label),
            shown(&run.dir.display().to_string()),
            run.tensors,
            run.weight_bytes as f64 / 1e6
        );
    }
    for run in &skipped {
        println!("skipped {}: {}", shown(&run.name), shown(&run.why));
    }
    if let Some(run) = exported.first() {
        // A command to paste: the path as one shell word, whatever it holds.
        let script = run.dir.join("rankprobe_model.py");
        let word = crate::shell_text::quote(&script.to_string_lossy());
        println!("check one in PyTorch: python3 {}", shown(&word));
    }
    match exported.is_empty() {
        true => Err(Failure::BadInput("no run was exported".to_owned())),
        false => Ok(()),
    }
}
