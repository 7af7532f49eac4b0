//! `data.eval_sets`: a real sweep of the micro model with an extra evaluation set (the
//! repository's own docs, English technical prose unlike the speeches it trains on).
//! Its loss is written at every evaluation as `loss.<name>`, the last one equals the
//! loss of the run's final weights on the set's windows computed here from the pieces,
//! the report shows it with its paired differences, and bad sets are refused before any
//! training.

mod common;

use dfdx::prelude::*;
use rankprobe::data::batches::eval_batch;
use rankprobe::data::prepare_dataset;
use rankprobe::model::init::init_model;
use rankprobe::model::weights_file::{decode, load_into};
use rankprobe::model::{Architecture, Constants, Transformer};
use rankprobe::spec::run_config::EvalWindows;

/// The micro study's model shape.
type Micro = Transformer<320, 32, 16, 16, 64, 2, f32, Cpu>;

fn study(eval_sets: &str, conditions: &str) -> String {
    common::micro_study("evalsets", conditions).replace(
        "eval_sequences: 8,\n        ),\n        model",
        &format!(
            "eval_sequences: 8,\n            eval_sets: [{eval_sets}],\n        ),\n        model"
        ),
    )
}

fn docs_set() -> String {
    let glob = common::root().join("docs/*.md");
    format!(
        "(name: \"docs\", corpus: Text({:?}))",
        glob.to_str().unwrap()
    )
}

const CONDITIONS: &str = "(name: \"muon\"), (name: \"adamw\", set: {\"optimizer\": AdamW(lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2)})";

#[test]
fn an_eval_sets_loss_is_recorded_at_every_evaluation_and_reported() {
    let dir = std::env::temp_dir().join(format!("rankprobe-evalsets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = study(&docs_set(), CONDITIONS);
    let (results, output) = common::sweep_study(&dir, "evalsets.ron", &text, &[]);
    assert!(output.status.success(), "{}", common::text(&output));
    let study_dir = results.join("evalsets");
    let run_dir = common::run_dir(&study_dir, "muon");
    let rows = common::metric_rows(&run_dir);
    let at = |metric: &str| -> Vec<(u64, f64)> {
        (rows.iter())
            .filter(|(_, _, split, m, _)| split == "val" && m == metric)
            .map(|(step, _, _, _, bits)| (*step, f64::from_bits(*bits)))
            .collect()
    };
    let (val, docs) = (at("loss"), at("loss.docs"));
    let steps = |rows: &[(u64, f64)]| rows.iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(
        steps(&docs),
        steps(&val),
        "an eval-set loss at every evaluation"
    );
    assert_eq!(steps(&val), vec![0, 8, 16, 24, 32, 40]);
    assert!(docs
        .iter()
        .zip(&val)
        .all(|(d, v)| d.1.is_finite() && d.1 != v.1));
    // Trained on speeches, the model does worse on docs than on held-out speeches.
    let (last_docs, last_val) = (docs.last().unwrap().1, val.last().unwrap().1);
    assert!(last_docs > last_val, "docs {last_docs} vs val {last_val}");

    // The last value is the final weights' loss on the set's windows.
    let plan = common::plan_text(&text).unwrap();
    let run = plan.runs.iter().find(|r| r.label == "muon").unwrap();
    let dataset = prepare_dataset(&run.config.data).unwrap();
    let set = &dataset.eval_sets[0];
    assert_eq!(set.name, "docs");
    let batch = eval_batch(&set.tokens, 64, 8, EvalWindows::Spread).unwrap();
    let dev = Cpu::default();
    let arch = Architecture::from_config(&run.config.model);
    let consts = Constants::<16, Cpu>::new(&dev, &arch, 64);
    let mut model: Micro = init_model(&dev, 0.02);
    let weights = decode(&std::fs::read(run_dir.join("final.safetensors")).unwrap()).unwrap();
    load_into(&mut model, &weights).unwrap();
    let ids = |t: &[u32]| t.iter().map(|&t| t as usize).collect::<Vec<_>>();
    let tokens = (
        dev.tensor_from_vec(ids(&batch.inputs), (8, 64)),
        dev.tensor_from_vec(ids(&batch.targets), (8 * 64,)),
    );
    let loss = model.loss(&arch, &consts, tokens, model.embed.clone(), None);
    assert_eq!(f64::from(loss.as_vec()[0]), last_docs);

    // The manifest says where the set came from.
    let manifest = rankprobe::store::manifest::Manifest::read(&run_dir).unwrap();
    let sets = manifest.data.unwrap().eval_sets;
    assert_eq!(sets.len(), 1);
    assert_eq!(
        (sets[0].name.as_str(), sets[0].tokens),
        ("docs", set.tokens.len())
    );
    assert!(
        sets[0].origin.starts_with("text files "),
        "{}",
        sets[0].origin
    );

    // The report: the set's loss and gap in the comparison, with paired differences.
    let summary = std::fs::read_to_string(study_dir.join("report/summary.md")).unwrap();
    for wanted in ["| docs loss | docs gap |", "Δ docs loss | Δ docs gap"] {
        assert!(summary.contains(wanted), "no `{wanted}` in\n{summary}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_eval_sets_are_refused_before_any_training() {
    let dir = std::env::temp_dir().join(format!("rankprobe-evalsets-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "(name: \"Docs!\", corpus: Sotu)".to_owned(),
            "eval set name `Docs!` must be 1 to 32 lowercase letters",
        ),
        (
            format!("{}, {}", docs_set(), docs_set()),
            "two eval sets are named `docs`",
        ),
        (
            "(name: \"gone\", corpus: Text(\"no/such/dir/*.txt\"))".to_owned(),
            "no file matches the corpus glob `no/such/dir/*.txt`",
        ),
    ];
    for (i, (sets, says)) in cases.iter().enumerate() {
        let file = format!("bad{i}.ron");
        let (results, output) =
            common::sweep_study(&dir, &file, &study(sets, "(name: \"muon\")"), &[]);
        let said = common::text(&output);
        assert_eq!(output.status.code(), Some(2), "{said}");
        assert!(said.contains(says), "{says}: {said}");
        assert!(
            said.contains(&format!("{file}:")),
            "no file:line:col in {said}"
        );
        assert!(!results.join("evalsets/runs").exists());
    }
    // A FIFO and a link to a device matched by a set's glob: named for what they are
    // (reading either would block or never end), at validation.
    let odd = dir.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(odd.join("pipe.txt"))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", odd.join("zero.dat")).unwrap();
    for (glob, says) in [
        ("*.txt", "is a FIFO (named pipe)"),
        ("*.dat", "is a device"),
    ] {
        let sets = format!(
            "(name: \"odd\", corpus: Text({:?}))",
            odd.join(glob).to_str().unwrap()
        );
        let (_, output) =
            common::sweep_study(&dir, "odd.ron", &study(&sets, "(name: \"muon\")"), &[]);
        let said = common::text(&output);
        assert_eq!(output.status.code(), Some(2), "{said}");
        assert!(
            said.contains(says) && said.contains("matches no regular file"),
            "{said}"
        );
    }
    // Too little text for the set's windows: found when the data is prepared.
    let short = dir.join("short.txt");
    std::fs::write(
        &short,
        "Four score and seven years ago our fathers brought forth on this continent a new nation.",
    )
    .unwrap();
    let sets = format!(
        "(name: \"short\", corpus: Text({:?}))",
        short.to_str().unwrap()
    );
    let (_, output) =
        common::sweep_study(&dir, "short.ron", &study(&sets, "(name: \"muon\")"), &[]);
    let said = common::text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("eval set `short` (text files"), "{said}");
    assert!(
        said.contains("its windows need 513 (data.eval_sequences x seq_len + 1)"),
        "{said}"
    );
    // Plenty of tokens, all of them blank: nothing to score, refused by what it holds.
    let blank = dir.join("blank.txt");
    std::fs::write(&blank, " \n\t  \n".repeat(4000)).unwrap();
    let sets = format!(
        "(name: \"blank\", corpus: Text({:?}))",
        blank.to_str().unwrap()
    );
    let (results, output) =
        common::sweep_study(&dir, "blank.ron", &study(&sets, "(name: \"muon\")"), &[]);
    let said = common::text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("eval set `blank`"), "{said}");
    assert!(said.contains("that are not whitespace"), "{said}");
    assert!(!results.join("evalsets/runs").exists(), "{said}");
    // A Mix source that does not exist is found when the data is prepared, before any run.
    let unknown = "(name: \"nope\", corpus: MixSource(\"no-such-source\"))";
    let (results, output) = common::sweep_study(
        &dir,
        "unknown.ron",
        &study(unknown, "(name: \"muon\")"),
        &[],
    );
    let said = common::text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains(
            "the Mix corpus has no source `no-such-source`; its sources are sotu, shakespeare"
        ),
        "{said}"
    );
    assert!(said.contains("nothing was trained"), "{said}");
    assert!(common::find_run_dir(&results.join("evalsets"), "muon")
        .is_none_or(|run| !run.join("final.safetensors").exists()));
    std::fs::remove_dir_all(&dir).unwrap();
}
