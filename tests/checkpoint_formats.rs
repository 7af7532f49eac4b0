//! Checkpoints written by earlier versions resume: `tests/fixtures/v1-checkpoints` is a
//! sweep of `tests/studies/v1_checkpoints.ron` that format-1 code (commit 5126fbe)
//! stopped at step 8 of both runs, a Muon and an AdamW one. Resumed by today's code, each
//! run must say it resumed and end with exactly the rows of an uninterrupted sweep.

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
        assert_eq!(
            common::metric_rows(&ours),
            common::metric_rows(&theirs),
            "{label}: the resumed run's metrics differ"
        );
    }
    std::fs::remove_dir_all(&resumed).unwrap();
    std::fs::remove_dir_all(&straight).unwrap();
}
