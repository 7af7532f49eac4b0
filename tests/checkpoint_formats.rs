//! Checkpoints written by earlier versions resume: `tests/fixtures/v1-checkpoints` is a
//! sweep of `tests/studies/v1_checkpoints.ron` that format-1 code (commit 5126fbe)
//! stopped at step 8 of both runs, a Muon and an AdamW one. Resumed by today's code, each
//! run must say it resumed and end with exactly the rows of an uninterrupted sweep
//! (metrics added since then: from the resume on).

mod common;

use std::path::{Path, PathBuf};

use common::{copy_tree, rankprobe, run_dir, text};
use rankprobe::store::manifest::{Manifest, RunStatus};

const STUDY: &str = "tests/studies/v1_checkpoints.ron";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rankprobe-v1-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn sweep(results: &Path) -> String {
    let output = rankprobe(&["sweep", STUDY, "--results", results.to_str().unwrap()]);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    said
}

#[test]
fn format_1_checkpoints_resume_to_the_uninterrupted_results() {
    let fixture = common::root().join("tests/fixtures/v1-checkpoints");
    let resumed = scratch("resumed");
    copy_tree(&fixture, &resumed);
    for label in ["muon", "adamw"] {
        let bytes = std::fs::read(run_dir(&resumed.join("v1ckpt"), label).join("checkpoint.bin"))
            .expect("the fixture holds a checkpoint of each run");
        assert_eq!(
            &bytes[..16],
            b"rankprobe-ckpt1\n",
            "{label}: a format-1 file"
        );
    }
    let said = sweep(&resumed);
    assert_eq!(
        said.matches("resuming from its checkpoint at step 8")
            .count(),
        2,
        "both runs resume: {said}"
    );
    assert!(!said.contains("not using"), "{said}");

    let straight = scratch("straight");
    sweep(&straight);
    for label in ["muon", "adamw"] {
        let ours = run_dir(&resumed.join("v1ckpt"), label);
        let theirs = run_dir(&straight.join("v1ckpt"), label);
        assert_eq!(ours.file_name(), theirs.file_name(), "same run ids");
        assert_eq!(Manifest::read(&ours).unwrap().status, RunStatus::Done);
        // Metrics recorded since format 1 was written (the gradient norm, the training
        // batch's largest logits, log Z) exist in the resumed run from its resume on;
        // every other row equals the uninterrupted run's, and so do those from step 8 on.
        let newer = |m: &str| m == "grad_norm" || m == "log_z" || m.starts_with("max_logit");
        let split = |rows: Vec<(u64, u64, String, String, u64)>| {
            let (new, old): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| newer(&r.3));
            (old, new)
        };
        let (ours_old, ours_new) = split(common::metric_rows(&ours));
        let (theirs_old, theirs_new) = split(common::metric_rows(&theirs));
        assert_eq!(
            ours_old, theirs_old,
            "{label}: the resumed run's metrics differ"
        );
        let after_resume: Vec<_> = theirs_new.into_iter().filter(|r| r.0 > 8).collect();
        assert!(!after_resume.is_empty());
        assert_eq!(
            ours_new, after_resume,
            "{label}: the newer metrics after the resume"
        );
    }
    std::fs::remove_dir_all(&resumed).unwrap();
    std::fs::remove_dir_all(&straight).unwrap();
}
