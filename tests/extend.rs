//! Extending a run: a study's budget is raised after its runs finished with
//! `execution.keep_final_state`. A run whose learning rates over the old steps do not
//! depend on the budget continues from the old run's final state: it trains only the new
//! steps and ends with exactly the rows of a run trained from scratch on the new budget.
//! A run with a cosine over the budget trains from step 0 and says why; `plan` names both.

mod common;

use std::path::Path;

use common::{rankprobe, text};
use rankprobe::store::manifest::Manifest;

/// The micro study keeping its final state, with a constant and a cosine run, on a
/// budget of `tokens` (probes at 0, 8,192, 20,480 and the budget).
fn study(tokens: u64) -> String {
    common::micro_study(
        "extend",
        "
            (name: \"constant\"),
            (name: \"cosine\", set: {\"schedule.lr\": WarmupCosine(warmup_tokens: 2_048, min_lr_ratio: 0.1)}),
        ",
    )
    .replace("checkpoint_every_tokens: 2_048", "checkpoint_every_tokens: 2_048, keep_final_state: true")
    .replace("tokens: 20_480,", &format!("tokens: {tokens},"))
    .replace("at_tokens: [0, 8_192, 20_480]", &format!("at_tokens: [0, 8_192, 20_480, {tokens}]"))
}

/// `rankprobe <args[0]> <the study on budget tokens> --results <dir/results> <args[1..]>`.
fn run(dir: &Path, args: &[&str], tokens: u64, results: &str) -> String {
    let file = dir.join(format!("extend-{tokens}.ron"));
    std::fs::write(&file, study(tokens)).unwrap();
    let results = dir.join(results);
    let all = [
        &[
            args[0],
            file.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ][..],
        &args[1..],
    ]
    .concat();
    let output = rankprobe(&all);
    assert!(output.status.success(), "{}", text(&output));
    text(&output)
}

#[test]
fn a_raised_budget_continues_finished_runs_whose_rates_do_not_depend_on_it() {
    let dir = std::env::temp_dir().join(format!("rankprobe-extend-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    run(&dir, &["sweep"], 20_480, "results");
    let study_dir = dir.join("results/extend");
    let old = Manifest::read(&common::run_dir(&study_dir, "constant")).unwrap();
    assert!(common::run_dir(&study_dir, "constant")
        .join("final_state.bin")
        .is_file());

    let planned = run(&dir, &["plan"], 40_960, "results");
    assert!(
        planned.contains(&format!(
            "constant continues from constant-{} at step 40 (20.5K tokens)",
            old.run_id
        )),
        "{planned}"
    );
    assert!(
        planned.contains("cosine trains from step 0, not from cosine-")
            && planned.contains("depends on the budget"),
        "{planned}"
    );

    let said = run(&dir, &["sweep"], 40_960, "results");
    assert!(said.contains("constant: continuing from"), "{said}");
    assert!(said.contains("cosine: not continuing from"), "{said}");
    // The same budget from scratch, elsewhere.
    run(&dir, &["sweep", "--only", "constant"], 40_960, "scratch");

    let runs = |label: &str| {
        let mut dirs: Vec<_> = std::fs::read_dir(study_dir.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{label}-"))
            })
            .collect();
        dirs.sort_by_key(|d| Manifest::read(d).unwrap().steps);
        dirs
    };
    let [short, long] = <[_; 2]>::try_from(runs("constant")).unwrap();
    let continued = Manifest::read(&long).unwrap();
    assert_eq!(
        continued.continued_from.as_deref(),
        Some(old.run_id.as_str())
    );
    assert_eq!(continued.resumed_from_step, Some(40));
    let scratch = common::run_dir(&dir.join("scratch/extend"), "constant");
    let from_scratch = Manifest::read(&scratch).unwrap();
    assert_eq!(continued.run_id, from_scratch.run_id);
    // Every row (the old run's through step 40, then the new steps') equals the row of
    // the run trained from scratch, bit for bit.
    assert_eq!(common::metric_rows(&long), common::metric_rows(&scratch));
    let old_rows = common::metric_rows(&short);
    let through_40: Vec<_> = (common::metric_rows(&long).into_iter())
        .filter(|r| r.0 <= 40)
        .collect();
    assert_eq!(
        through_40, old_rows,
        "the old steps' rows are the old run's"
    );
    eprintln!(
        "wall time: continued {:.2} s (40 new steps), from scratch {:.2} s (80 steps), first 40 steps {:.2} s",
        continued.wall_seconds.unwrap(),
        from_scratch.wall_seconds.unwrap(),
        old.wall_seconds.unwrap()
    );
    let [_, cosine] = <[_; 2]>::try_from(runs("cosine")).unwrap();
    let cosine = Manifest::read(&cosine).unwrap();
    assert_eq!(cosine.continued_from, None);
    assert_eq!(cosine.resumed_from_step, None);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Continuing trusts only state proven to be the old run's own: a final state copied
/// from another run, or a manifest whose config was edited to another seed, trains the
/// new run from step 0, naming the file that failed which check.
#[test]
fn a_copied_final_state_or_an_edited_manifest_is_not_continued_from() {
    let dir = std::env::temp_dir().join(format!("rankprobe-extend-trust-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Another run's final state copied over the constant run's.
    run(&dir, &["sweep"], 20_480, "copied");
    let study_dir = dir.join("copied/extend");
    let constant = common::run_dir(&study_dir, "constant");
    std::fs::copy(
        common::run_dir(&study_dir, "cosine").join("final_state.bin"),
        constant.join("final_state.bin"),
    )
    .unwrap();
    let said = run(&dir, &["sweep"], 30_720, "copied");
    assert!(
        said.contains("constant: not continuing from constant-"),
        "{said}"
    );
    assert!(
        said.contains("final_state.bin: its SHA-256 is not the one"),
        "{said}"
    );
    let extended = Manifest::read(&common::run_dir(&study_dir, "constant")).unwrap();
    assert_eq!(extended.continued_from, None);
    // A manifest edited to another seed, then a study of that seed with a larger budget.
    run(&dir, &["sweep"], 20_480, "edited");
    let study_dir = dir.join("edited/extend");
    let manifest_path = common::run_dir(&study_dir, "constant").join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["config"]["seed"] = serde_json::json!(8);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let file = dir.join("seed8.ron");
    std::fs::write(&file, study(30_720).replace("seed: 7,", "seed: 8,")).unwrap();
    let results = dir.join("edited");
    let output = rankprobe(&[
        "sweep",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("manifest.json: its config does not hash to the run id"),
        "{said}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
