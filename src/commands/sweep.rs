//! `rankprobe sweep FILE`: runs the study (`runner::sweep`), then prints what each run
//! did, writes and prints the report, and turns the outcome into the exit code.

use std::path::Path;

pub use crate::runner::sweep::{Shard, SweepOptions};

use super::Failure;

pub fn sweep(file: &Path, options: &SweepOptions) -> Result<(), Failure> {
    let outcome = crate::runner::sweep::sweep(file, options)?;
    println!("study {} in {}:", outcome.study, outcome.dir.display());
    for (label, status) in &outcome.kept {
        println!("  {label:<12} {status:<9} kept from an earlier sweep");
    }
    for (label, status, summary) in &outcome.trained {
        println!("  {label:<12} {status:<9} {summary}");
    }
    match super::report::write_report(&outcome.dir) {
        Ok(markdown) => println!(
            "\n{markdown}(report written to {})\n",
            outcome.dir.join("report").display()
        ),
        Err(err) => eprintln!("no report: {err}"),
    }
    println!(
        "wall time {:.1} s for {} runs",
        outcome.wall.as_secs_f64(),
        outcome.selected
    );
    if outcome.not_started() > 0 {
        println!("{} runs not started", outcome.not_started());
    }
    // The exit code says whether every selected run is done, kept runs included.
    let not_done = outcome.not_done();
    let message = format!("runs that did not finish: {}", not_done.join(", "));
    if not_done.is_empty() {
        Ok(())
    } else if outcome.only_interrupted() {
        Err(Failure::Interrupted(message))
    } else {
        Err(Failure::RunFailed(message))
    }
}
