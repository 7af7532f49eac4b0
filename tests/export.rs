//! `rankprobe export`: a finished run's final weights, config and validation batch, and
//! the PyTorch module that rebuilds the model. Where torch is importable
//! (`RANKPROBE_PYTHON`, else `python3`), each exported model's loss on the run's eval
//! batch must equal the run's recorded final validation loss within 1e-4 relative;
//! without torch that part is skipped with a message, the rest still runs.

mod common;

use std::path::Path;
use std::process::Command;

use common::{rankprobe, text};

/// The micro study (tests/studies/v1_checkpoints.ron) with architecture variants that
/// share its compiled shape: QK-norm off, frozen QK gains with GELU, SwiGLU untied with
/// unscaled embeddings.
fn study_text() -> String {
    common::micro_study(
        "export",
        "
            (name: \"muon\"),
            (name: \"noqk\", set: {\"model.qk_norm\": None}),
            (name: \"frozen_gelu\", set: {\"model.qk_norm\": RmsNorm(gain: Frozen), \"model.activation\": Gelu}),
            (name: \"swiglu_untied\", set: {\"model.activation\": SwiGlu, \"model.tied_embeddings\": false, \"model.embedding_scale\": Unscaled, \"optimizer\": AdamW(lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2)}),
        ",
    )
}

fn python_with_torch() -> Option<String> {
    let python = std::env::var("RANKPROBE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

#[test]
fn exported_runs_rebuild_in_pytorch_with_the_recorded_loss() {
    let dir = std::env::temp_dir().join(format!("rankprobe-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (results, sweep) = common::sweep_study(&dir, "export.ron", &study_text(), &[]);
    assert!(sweep.status.success(), "{}", text(&sweep));
    let study_dir = results.join("export");
    let out = dir.join("exported");
    let export = |extra: &[&str]| {
        let args = [
            &[
                "export",
                study_dir.to_str().unwrap(),
                "--to",
                out.to_str().unwrap(),
            ][..],
            extra,
        ]
        .concat();
        rankprobe(&args)
    };
    // Into the study's own results tree: refused, nothing written there.
    for inside in ["metrics", "runs/x", "report", "probes/../metrics/sub", "."] {
        let target = study_dir.join(inside);
        let refused = rankprobe(&[
            "export",
            study_dir.to_str().unwrap(),
            "--to",
            target.to_str().unwrap(),
        ]);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{inside}: {}",
            text(&refused)
        );
        assert!(
            text(&refused).contains("is inside the study's results"),
            "{}",
            text(&refused)
        );
    }
    assert!(!study_dir.join("runs/x").exists() && !study_dir.join("metrics/sub").exists());
    let done = export(&[]);
    assert!(done.status.success(), "{}", text(&done));
    let runs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 4, "{}", text(&done));
    for run in &runs {
        for file in [
            "model.safetensors",
            "config.json",
            "eval_batch.safetensors",
            "rankprobe_model.py",
            "tokenizer.json",
        ] {
            assert!(run.join(file).is_file(), "{} lacks {file}", run.display());
        }
        // The exported tokenizer is the run's: its vocabulary, and the eval batch decodes
        // to the corpus's prose.
        let tokenizer = tokenizers::Tokenizer::from_file(run.join("tokenizer.json")).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            tokenizer.get_vocab_size(true) as u64,
            config["vocab"].as_u64().unwrap()
        );
        let bytes = std::fs::read(run.join("eval_batch.safetensors")).unwrap();
        let batch = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let inputs = batch.tensor("inputs").unwrap();
        assert_eq!(inputs.dtype(), safetensors::Dtype::I32);
        let ids: Vec<u32> = (inputs.data().chunks_exact(4))
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect();
        let text = tokenizer.decode(&ids, false).unwrap();
        assert!(text.contains(" the "), "{}", &text[..200.min(text.len())]);
    }
    match python_with_torch() {
        None => eprintln!(
            "skipped the PyTorch half: torch is not importable (set RANKPROBE_PYTHON to a \
             Python with torch to run it)"
        ),
        Some(python) => {
            for run in &runs {
                check_in_pytorch(&python, run);
            }
        }
    }

    // A destination with spaces, `$` and an escape sequence in its name: the terminal gets
    // the escape shown, not obeyed, and the command to paste gets the path as one word.
    let odd = dir.join("out $HOME '\u{1b}[2J");
    let odd_export = rankprobe(&[
        "export",
        study_dir.to_str().unwrap(),
        "--to",
        odd.to_str().unwrap(),
        "--only",
        "noqk",
    ]);
    let said = String::from_utf8_lossy(&odd_export.stdout).into_owned();
    assert!(odd_export.status.success(), "{}", text(&odd_export));
    assert!(
        !said.contains('\u{1b}'),
        "a raw escape reached the terminal: {said:?}"
    );
    assert!(said.contains("python3 '"), "{said}");
    assert!(said.contains(r"out $HOME '\''\u{1b}[2J/"), "{said}");
    // A label the study does not have is refused; a damaged weights file is skipped
    // with the reason, never exported.
    let unknown = export(&["--only", "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("no run labelled `nope`"));
    let weights = common::run_dir(&study_dir, "noqk").join("final.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let damaged = export(&["--only", "noqk"]);
    assert_eq!(damaged.status.code(), Some(2), "{}", text(&damaged));
    assert!(text(&damaged).contains("SHA-256"), "{}", text(&damaged));
    // A manifest whose config was edited to another shape: its weights (checksum intact)
    // no longer fit the config an export would write beside them; skipped, saying so.
    let edited = common::run_dir(&study_dir, "muon");
    let manifest_path = edited.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["config"]["model"]["d_ff"] = serde_json::json!(128);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let misfit = export(&["--only", "muon"]);
    assert_eq!(misfit.status.code(), Some(2), "{}", text(&misfit));
    assert!(
        text(&misfit).contains("does not fit the model its manifest describes"),
        "{}",
        text(&misfit)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the exported module on its own eval batch and compares with the recorded loss.
fn check_in_pytorch(python: &str, run: &Path) {
    let output = Command::new(python)
        .arg(run.join("rankprobe_model.py"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: {}",
        run.display(),
        text(&output)
    );
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let (ours, recorded) = (
        figures["eval_loss"].as_f64().unwrap(),
        figures["recorded_final_val_loss"].as_f64().unwrap(),
    );
    let relative = (ours - recorded).abs() / recorded.abs();
    assert!(
        relative < 1e-4,
        "{}: PyTorch {ours}, recorded {recorded} ({relative:e} relative)",
        run.display()
    );
}
