//! The runner as a library: a program that calls `sweep` receives what it has to say
//! as events in its own sink, not as lines on standard output.

mod common;

use std::time::Duration;

use rankprobe::runner::notices::Notice;
use rankprobe::runner::sweep::{sweep, SweepOptions};

#[test]
fn a_program_calling_sweep_gets_its_notices_as_events() {
    let dir = std::env::temp_dir().join(format!("rankprobe-notices-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = SweepOptions {
        results: dir.clone(),
        only: vec!["B1".to_owned()],
        device: None,
        force: false,
        fail_fast: false,
        shard: None,
        index: None,
        allow_repeat: false,
        log_every: Duration::from_secs(3600),
    };
    let study = common::root().join(common::TINY);
    let mut first: Vec<Notice> = Vec::new();
    let outcome = sweep(&study, &options, &mut first).expect("the first sweep");
    assert_eq!(first, [], "a fresh sweep has nothing to say");
    assert_eq!(outcome.trained.len(), 1);
    let run_id = (outcome.plan.runs.iter())
        .find(|run| run.label == "B1")
        .map(|run| run.id.clone())
        .expect("B1 planned");
    let mut second: Vec<Notice> = Vec::new();
    sweep(&study, &options, &mut second).expect("the second sweep");
    let kept = Notice::Kept {
        run: "B1".to_owned(),
        status: "done".to_owned(),
        run_id,
    };
    assert_eq!(second, std::slice::from_ref(&kept));
    // The command line prints the same event as before it was one.
    assert!(kept.to_string().starts_with("keeping B1 (done, run id "));
    std::fs::remove_dir_all(&dir).unwrap();
}
