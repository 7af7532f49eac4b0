//! `rankprobe validate FILE...`: check study files without running anything.

use std::path::PathBuf;

use crate::data::tokenizer::prepare_tokenizer;
use crate::model::shapes::{not_compiled_help, ModelShape};
use crate::plan::Plan;
use crate::spec::run_config::Tokenizer;

use super::{load_plan, Failure};

/// What is wrong with the runs of `plan` that `sweep` would find when it prepares their
/// data: a tokenizer file that does not load, a model shape this binary cannot train (a
/// tokenizer file gives the vocabulary of its runs' shapes). `None` when nothing is.
fn unusable_runs(plan: &Plan) -> Option<String> {
    let mut problems = Vec::new();
    let mut uncompiled = false;
    for run in &plan.runs {
        let tokenizer = &run.config.data.tokenizer;
        let vocab = match tokenizer {
            Tokenizer::File(_) => match prepare_tokenizer(tokenizer, "", Vec::new) {
                Ok(loaded) => loaded.vocab_size,
                Err(err) => {
                    problems.push(format!("run {}: {err}", run.label));
                    continue;
                }
            },
            _ => match tokenizer.known_vocab() {
                Some(vocab) => vocab,
                None => continue,
            },
        };
        let shape = ModelShape::of(&run.config, vocab);
        if !shape.is_compiled() {
            uncompiled = true;
            problems.push(format!(
                "run {}: the model shape ({shape}) is not compiled in",
                run.label
            ));
        }
    }
    if uncompiled {
        problems.push(format!("  = help: {}", not_compiled_help()));
    }
    (!problems.is_empty()).then(|| problems.join("\n"))
}

/// Checks every file; prints one line per good file and the diagnostics of bad ones.
pub fn validate(files: &[PathBuf]) -> Result<(), Failure> {
    let mut bad = 0;
    for file in files {
        let checked = load_plan(file).and_then(|plan| match unusable_runs(&plan) {
            None => Ok(plan),
            Some(problems) => Err(Failure::BadInput(problems)),
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
