//! What a sweep did, for its caller to report: runs kept, trained, still busy elsewhere,
//! and what that means for the exit code.

use std::path::PathBuf;

use crate::store::manifest::RunStatus;

/// What a sweep did, for the caller to report.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The plan it ran (the report after a sweep uses it as it is).
    pub plan: crate::plan::Plan,
    /// `<results>/<study>`.
    pub dir: PathBuf,
    /// Runs finished by an earlier sweep: (label, status).
    pub kept: Vec<(String, RunStatus)>,
    /// Runs this sweep took: (label, status, summary), including runs another process
    /// finished while this one waited for them.
    pub trained: Vec<(String, RunStatus, String)>,
    /// Runs another process was still training when an interrupt ended the wait.
    pub busy: Vec<String>,
    /// Runs selected for training (kept ones not included).
    pub selected: usize,
    pub wall: std::time::Duration,
}

impl SweepOutcome {
    /// Selected runs that did not finish, each with why ("B1 (diverged)"). A diverged
    /// run finished when the study expects divergence (`execution.divergence_expected`).
    pub fn not_done(&self) -> Vec<String> {
        let finished = |status: RunStatus| {
            status == RunStatus::Done
                || (status == RunStatus::Diverged && self.plan.execution.divergence_expected)
        };
        let kept = self.kept.iter().map(|(label, status)| (label, *status));
        let trained = self
            .trained
            .iter()
            .map(|(label, status, _)| (label, *status));
        let mut not_done: Vec<String> = kept
            .chain(trained)
            .filter(|(_, status)| !finished(*status))
            .map(|(label, status)| format!("{label} ({status})"))
            .collect();
        let busy = self.busy.iter();
        not_done.extend(busy.map(|label| format!("{label} (still training in another process)")));
        not_done
    }

    /// Whether the runs that are not done were all interrupted (or never started after
    /// an interrupt): nothing failed, and running the sweep again resumes them.
    pub fn only_interrupted(&self) -> bool {
        let kept = self.kept.iter().map(|(_, status)| *status);
        let trained = self.trained.iter().map(|(_, status, _)| *status);
        let statuses: Vec<RunStatus> = kept.chain(trained).collect();
        statuses.contains(&RunStatus::Interrupted)
            && statuses
                .iter()
                .all(|s| matches!(s, RunStatus::Done | RunStatus::Interrupted))
            && self.busy.is_empty()
    }

    /// Selected runs that were never started (a stop after an interrupt or a failure).
    pub fn not_started(&self) -> usize {
        self.selected - self.trained.len() - self.busy.len()
    }
}
