//! Every optimizer, through the same path (`optim::build`, named state, checkpoints):
//! it trains the micro model of `tests/studies/v1_checkpoints.ron` (the loss falls), its
//! checkpoint holds state for exactly the tensors it trains, and a run resumed from its
//! first checkpoint ends bit for bit where the uninterrupted run does.

mod common;

use dfdx::prelude::Cpu;
use rankprobe::model::snapshot::tensor_names;
use rankprobe::model::{Architecture, Transformer};
use rankprobe::plan::PlannedRun;

use common::recorded::train_recorded;
use rankprobe::train::checkpoint::Checkpoint;

/// The micro study's model shape.
type Micro = Transformer<320, 32, 16, 16, 64, 2, f32, Cpu>;

/// The micro study with one run per optimizer.
fn runs() -> Vec<PlannedRun> {
    let text = common::micro_study(
        "v1ckpt",
        "
            (name: \"muon\"),
            (name: \"muon_per_head\", set: {\"optimizer.matrices\": PerHead}),
            (name: \"adamw\", set: {\"optimizer\": AdamW(lr: 0.006, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.2)}),
            (name: \"lion\", set: {\"optimizer\": Lion(lr: 0.001, betas: (0.9, 0.99), weight_decay: 1.0)}),
            (name: \"muon_qk_clip\", set: {\"model.qk_norm\": None, \"model.qk_clip\": (tau: 0.1)}),
            (name: \"lion_qk_clip\", set: {\"optimizer\": Lion(lr: 0.001, betas: (0.9, 0.99), weight_decay: 1.0), \"model.qk_norm\": None, \"model.qk_clip\": (tau: 0.1)}),
        ",
    );
    common::plan_text(&text).unwrap().runs
}

#[test]
fn every_optimizer_trains_and_resumes_exactly() {
    let runs = runs();
    assert_eq!(runs.len(), 6);
    for run in &runs {
        let label = &run.label;
        let dir = std::env::temp_dir().join(format!(
            "rankprobe-optimizers-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let straight = train_recorded(run, &dir, 8, None);
        let (first, last) = (straight.losses[0].1, straight.losses.last().unwrap().1);
        assert!(
            last < first - 0.5,
            "{label}: the loss fell from {first} to {last} only"
        );

        let clipped = |c: &Checkpoint| -> i64 {
            (c.optimizer.counters.iter())
                .filter(|(name, _)| name.starts_with("qk_clip.clipped_steps."))
                .map(|(_, count)| count)
                .sum()
        };
        // A clipped run resumes from a checkpoint that holds clip counts (not its last).
        let before_last = &straight.checkpoints[..straight.checkpoints.len() - 1];
        let checkpoint = if label.ends_with("_qk_clip") {
            let found = before_last.iter().find(|c| clipped(c) > 0);
            found.unwrap_or_else(|| panic!("{label}: no head clipped before the last checkpoint"))
        } else {
            &straight.checkpoints[0]
        }
        .clone();
        let from = checkpoint.step;
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let resumed = train_recorded(run, &dir, 8, Some(checkpoint));
        let tail: Vec<_> = straight.losses.iter().filter(|(s, _)| *s > from).collect();
        assert_eq!(resumed.losses.iter().collect::<Vec<_>>(), tail, "{label}");
        let (a, b) = (
            resumed.checkpoints.last().unwrap(),
            straight.checkpoints.last().unwrap(),
        );
        // (Their counters hold times, which differ.)
        assert_eq!(a.step, b.step, "{label}");
        assert!(a.model == b.model, "{label}: the final weights differ");
        assert!(
            a.optimizer == b.optimizer,
            "{label}: the optimizer's state differs"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn lions_state_is_one_momentum_per_trained_tensor() {
    let run = runs().into_iter().find(|r| r.label == "lion").unwrap();
    let dir = std::env::temp_dir().join(format!("rankprobe-lion-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = train_recorded(&run, &dir, 8, None).checkpoints.remove(0);
    let arch = Architecture::from_config(&run.config.model);
    let names = tensor_names::<Cpu, Micro>();
    let expected: Vec<(String, usize)> = (names.iter().enumerate())
        .filter(|(_, name)| arch.reads(name))
        .map(|(i, _)| (format!("lion.m.{i}"), checkpoint.model[i].len()))
        .collect();
    let held: Vec<(String, usize)> = (checkpoint.optimizer.buffers.iter())
        .map(|(name, values)| (name.clone(), values.len()))
        .collect();
    assert_eq!(held, expected);
    assert!(checkpoint.optimizer.counters.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
