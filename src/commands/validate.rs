//! `rankprobe validate FILE...`: check study files without running anything.

use std::path::PathBuf;

use super::{load_plan, Failure};

/// Checks every file; prints one line per good file and the diagnostics of bad ones.
pub fn validate(files: &[PathBuf]) -> Result<(), Failure> {
    let mut bad = 0;
    for file in files {
        match load_plan(file) {
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
