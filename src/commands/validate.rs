//! `rankprobe validate FILE...`: check study files without running anything.

use std::path::PathBuf;

use crate::data::tokenizer::prepare_tokenizer;
use crate::model::shapes::{not_compiled_help, ModelShape};
use crate::plan::Plan;
use crate::spec::run_config::Tokenizer;

use super::{load_plan, Failure};

/// Runs whose tokenizer file does not load (as `sweep` would find when it prepares the
/// data) or whose model shape this binary cannot train; a tokenizer file gives the
/// vocabulary of its runs' shapes.
fn unusable_runs(plan: &Plan) -> Vec<String> {
    plan.runs
        .iter()
        .filter_map(|run| {
            let tokenizer = &run.config.data.tokenizer;
            let vocab = match tokenizer {
                Tokenizer::File(_) => match prepare_tokenizer(tokenizer, "", Vec::new) {
                    Ok(loaded) => loaded.vocab_size,
                    Err(err) => return Some(format!("run {}: {err}", run.label)),
                },
                _ => tokenizer.known_vocab()?,
            };
            let shape = ModelShape::of(&run.config, vocab);
            (!shape.is_compiled()).then(|| {
                format!(
                    "run {}: the model shape ({shape}) is not compiled in\n  = help: {}",
                    run.label,
                    not_compiled_help()
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
            let mut unusable = unusable_runs(&plan);
            if unusable.is_empty() {
                Ok(plan)
            } else {
                let mut seen = std::collections::HashSet::new();
                unusable.retain(|line| seen.insert(line.clone()));
                Err(Failure::BadInput(unusable.join("\n")))
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
