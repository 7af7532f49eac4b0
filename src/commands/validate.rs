//! `rankprobe validate FILE...`: check study files without running anything.

use std::path::PathBuf;

use crate::model::shapes::{not_compiled_help, ModelShape};
use crate::plan::Plan;

use super::{load_plan, Failure};

/// Runs whose model shape this binary cannot train. Runs with a tokenizer file are
/// checked when their data is prepared (the vocabulary is in the file).
fn uncompiled_shapes(plan: &Plan) -> Vec<String> {
    plan.runs
        .iter()
        .filter_map(|run| {
            let vocab = run.config.data.tokenizer.known_vocab()?;
            let shape = ModelShape::of(&run.config, vocab);
            (!shape.is_compiled()).then(|| {
                format!(
                    "run {}: the model shape ({shape}) is not compiled in",
                    run.label
                )
            })
        })
        .collect()
}

/// Checks every file; prints one line per good file and the diagnostics of bad ones.
pub fn validate(files: &[PathBuf]) -> Result<(), Failure> {
    let mut bad = 0;
    for file in files {
        let checked = load_plan(file).and_then(|plan| {
            let uncompiled = uncompiled_shapes(&plan);
            if uncompiled.is_empty() {
                Ok(plan)
            } else {
                Err(Failure::BadInput(format!(
                    "{}\n  = help: {}",
                    uncompiled.join("\n"),
                    not_compiled_help()
                )))
            }
        });
        match checked {
            Ok(plan) => println!("ok    {} ({} runs)", file.display(), plan.runs.len()),
            Err(failure) => {
                bad += 1;
                println!("FAIL  {}", file.display());
                eprintln!("{failure}\n");
            }
        }
    }
    if bad == 0 {
        Ok(())
    } else {
        Err(Failure::BadInput(format!(
            "{bad} of {} study files have errors",
            files.len()
        )))
    }
}
