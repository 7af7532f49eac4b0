//! `rankprobe sweep FILE`: runs the study (`runner::sweep`), then prints what each run
//! it took did, writes and prints the report with the plan it ran, and turns the
//! outcome into the exit code.

use std::path::Path;

pub use crate::runner::sweep::{Shard, SweepOptions};

use crate::report::ReportSettings;
use crate::runner::notices::Printed;

use super::Failure;

pub fn sweep(file: &Path, options: &SweepOptions) -> Result<(), Failure> {
    let outcome = crate::runner::sweep::sweep(file, options, &mut Printed)?;
    println!("study {} in {}:", outcome.plan.study, outcome.dir.display());
    // Kept runs were each named as the sweep started ("keeping ...").
    if !outcome.kept.is_empty() {
        println!("  {} run(s) kept from earlier sweeps", outcome.kept.len());
    }
    for (label, status, summary) in &outcome.trained {
        println!("  {label:<12} {status:<9} {summary}");
    }
    let settings = ReportSettings::from_spec(&outcome.plan.report);
    match super::report::write_and_describe(&outcome.dir, &settings) {
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
