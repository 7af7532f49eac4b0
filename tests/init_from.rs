//! `model.init_from`: a study starts from a run's kept weights instead of a random
//! initialisation (e.g. to switch optimizer after N tokens). The loaded model is the one
//! that finished: its first validation loss equals the finished run's last one exactly.
//! Weights that do not fit are refused before any work, naming the tensor and both
//! shapes; a missing file is a study error.

mod common;

use std::path::Path;

use common::{rankprobe, text};
use rankprobe::model::weights_file::{decode, encode};
use rankprobe::store::manifest::Manifest;

/// The micro study; `set` is the RON of extra `model` fields and the optimizer to use.
fn study(name: &str, init_from: Option<&Path>, optimizer_adamw: bool) -> String {
    let mut text = common::micro_study(name, "(name: \"only\")");
    if let Some(path) = init_from {
        text = text.replace(
            "init_std: 0.02,",
            &format!(
                "init_std: 0.02, init_from: Some({:?}),",
                path.display().to_string()
            ),
        );
    }
    if optimizer_adamw {
        let muon = text.find("optimizer: Muon(").unwrap();
        let end = muon + text[muon..].find("\n        ),\n").unwrap() + "\n        ),\n".len();
        text.replace_range(
            muon..end,
            "optimizer: AdamW(lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2),\n",
        );
    }
    text
}

fn sweep(dir: &Path, name: &str, text: &str) -> std::process::Output {
    common::sweep_study(dir, &format!("{name}.ron"), text, &[]).1
}

fn val_losses(run_dir: &Path) -> Vec<u64> {
    let rows = common::metric_rows(run_dir);
    let losses = rows.iter().filter(|r| r.2 == "val" && r.3 == "loss");
    losses.map(|r| r.4).collect()
}

#[test]
fn a_study_starts_from_kept_weights_and_refuses_weights_that_do_not_fit() {
    let dir = std::env::temp_dir().join(format!("rankprobe-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let first = sweep(&dir, "first", &study("first", None, false));
    assert!(first.status.success(), "{}", text(&first));
    let first_run = common::run_dir(&dir.join("results/first"), "only");
    let weights = first_run.join("final.safetensors");

    // Muon for 40 steps, then AdamW from its weights.
    let second = sweep(&dir, "second", &study("second", Some(&weights), true));
    assert!(second.status.success(), "{}", text(&second));
    let second_run = common::run_dir(&dir.join("results/second"), "only");
    let before = val_losses(&first_run);
    let after = val_losses(&second_run);
    assert_eq!(
        after[0],
        *before.last().unwrap(),
        "the loaded model's loss at step 0 is the finished run's final loss, bit for bit"
    );
    let manifest = Manifest::read(&second_run).unwrap();
    assert_eq!(
        manifest.config.model.init_from.as_deref(),
        weights.to_str(),
        "the manifest records where it started"
    );

    // A tensor of another shape: refused before any work, naming it and both shapes.
    let mut tensors = decode(&std::fs::read(&weights).unwrap()).unwrap();
    let wq = tensors
        .iter_mut()
        .find(|t| t.name == "blocks.0.wq")
        .unwrap();
    wq.shape = vec![16, 64];
    let misfit = dir.join("misfit.safetensors");
    std::fs::write(&misfit, encode(&tensors, Default::default())).unwrap();
    let refused = sweep(&dir, "third", &study("third", Some(&misfit), true));
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("`blocks.0.wq` has shape [16, 64], the model's is [32, 32]"),
        "{said}"
    );
    assert!(
        !said.contains("training"),
        "refused before any work: {said}"
    );

    // A file far larger than any weights of this model: refused without reading it all.
    let huge = dir.join("huge.safetensors");
    std::fs::write(&huge, vec![0u8; 4 << 20]).unwrap();
    let refused = sweep(&dir, "huge", &study("huge", Some(&huge), true));
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("larger than weights of this model can be"),
        "{}",
        text(&refused)
    );

    // A file that is not there: a study error at its field.
    let missing = dir.join("no-such.safetensors");
    let file = dir.join("fourth.ron");
    std::fs::write(&file, study("fourth", Some(&missing), true)).unwrap();
    let invalid = rankprobe(&["validate", file.to_str().unwrap()]);
    assert_eq!(invalid.status.code(), Some(2), "{}", text(&invalid));
    assert!(
        text(&invalid).contains("init_from: Some("),
        "{}",
        text(&invalid)
    );
    assert!(
        text(&invalid).contains("does not exist"),
        "{}",
        text(&invalid)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
