//! Optimizers, their state and checkpoints cover exactly the tensors the configured model
//! reads: a tied LM head, an unused SwiGLU gate and frozen or absent QK-norm gains keep
//! their initial values bit for bit, get no optimizer state, and a checkpoint of the
//! earlier layout (moments and weight decay for them) resumes to the same results.

mod common;

use std::path::Path;

use dfdx::prelude::Cpu;
use rankprobe::model::snapshot::tensor_names;
use rankprobe::model::{Architecture, Transformer};
use rankprobe::optim::adamw::moment_names;
use rankprobe::optim::groups::AdamWGroup;
use rankprobe::plan::cost::param_count;
use rankprobe::plan::PlannedRun;
use rankprobe::spec::run_config::OptimizerConfig;
use rankprobe::train::checkpoint::Checkpoint;

use common::recorded::{train_recorded, Recorded};

/// The tiny study's model shape: vocabulary 2048, d_model 128, head_dim 32, KV width 64,
/// d_ff 512, 4 layers.
type Tiny = Transformer<2048, 128, 32, 64, 512, 4, f32, Cpu>;
type TinyAdamWGroup = AdamWGroup<2048, 128, 32, 64, 512, 4, Cpu>;

fn run(label: &str) -> PlannedRun {
    let plan = common::plan_text(&common::tiny_text()).unwrap();
    plan.runs.into_iter().find(|r| r.label == label).unwrap()
}

/// Trains `run` with a checkpoint every 4 steps, from `resume` if given.
fn train(run: &PlannedRun, dir: &Path, resume: Option<Checkpoint>) -> Recorded {
    train_recorded(run, dir, 4, resume)
}

/// The names of the AdamW state's positions: the whole model in an AdamW run, the
/// AdamW group in a Muon run.
fn adamw_names(run: &PlannedRun) -> Vec<String> {
    match run.config.optimizer {
        OptimizerConfig::AdamW(_) => tensor_names::<Cpu, Tiny>(),
        OptimizerConfig::Muon(_) => tensor_names::<Cpu, TinyAdamWGroup>(),
        OptimizerConfig::Lion(_) => unreachable!("the tiny study has no Lion run"),
    }
}

/// The first moments a checkpoint holds, by the position of their tensor.
fn first_moments(checkpoint: &Checkpoint) -> Vec<(usize, &Vec<f32>)> {
    let buffers = checkpoint.optimizer.buffers.iter();
    buffers
        .filter_map(|(name, m)| Some((name.strip_prefix("adamw.m.")?.parse().unwrap(), m)))
        .collect()
}

/// Every checkpoint holds the initial values of the unread tensors, gains exactly 1, and
/// optimizer moments for exactly the read tensors, as many values as `plan` counts.
fn assert_only_read_tensors_trained(run: &PlannedRun, checkpoints: &[Checkpoint]) {
    let arch = Architecture::from_config(&run.config.model);
    let names = tensor_names::<Cpu, Tiny>();
    let unread: Vec<usize> = (0..names.len())
        .filter(|&i| !arch.reads(&names[i]))
        .collect();
    assert!(!unread.is_empty());
    let first = &checkpoints[0];
    for checkpoint in checkpoints {
        for &i in &unread {
            assert_eq!(checkpoint.model[i], first.model[i], "{} changed", names[i]);
            if names[i].ends_with("_gain") {
                assert!(
                    checkpoint.model[i].iter().all(|&g| g == 1.0),
                    "{}",
                    names[i]
                );
            }
        }
        let state_names = adamw_names(run);
        let mut moment_values = 0;
        let moments = first_moments(checkpoint);
        for (i, name) in state_names.iter().enumerate() {
            match moments.iter().find(|(at, _)| *at == i) {
                Some((_, m)) => {
                    assert!(arch.reads(name), "state for {name}");
                    moment_values += m.len() as u64;
                }
                None => assert!(!arch.reads(name), "no state for {name}"),
            }
        }
        let params = param_count(&run.config.model, 2048);
        let adamw_owned = match run.config.optimizer {
            OptimizerConfig::AdamW(_) => params.total(),
            OptimizerConfig::Muon(_) => params.embeddings + params.gains,
            OptimizerConfig::Lion(_) => unreachable!("the tiny study has no Lion run"),
        };
        assert_eq!(moment_values, adamw_owned);
    }
}

/// What the earlier layout wrote: zero moments for every unread tensor, and the unread
/// tensors weight-decayed.
fn as_earlier_layout(run: &PlannedRun, mut checkpoint: Checkpoint) -> Checkpoint {
    let arch = Architecture::from_config(&run.config.model);
    for (i, name) in tensor_names::<Cpu, Tiny>().iter().enumerate() {
        if !arch.reads(name) {
            checkpoint.model[i].iter_mut().for_each(|v| *v *= 0.9985);
        }
    }
    for (i, name) in adamw_names(run).iter().enumerate() {
        if !arch.reads(name) {
            let len = slot_len(name);
            let (m, v) = moment_names(i);
            checkpoint.optimizer.buffer(m, vec![0.0; len]);
            checkpoint.optimizer.buffer(v, vec![0.0; len]);
        }
    }
    checkpoint
}

fn slot_len(name: &str) -> usize {
    let field = name.rsplit('.').next().unwrap();
    match field {
        "lm_head" => 2048 * 128,
        "w_gate" => 512 * 128,
        "q_gain" | "k_gain" => 32,
        other => panic!("{other} is read"),
    }
}

#[test]
fn unread_tensors_stay_initial_and_an_earlier_checkpoint_resumes_exactly() {
    // A2: Muon, no QK-norm; B2: AdamW, no QK-norm. Both tie embeddings and use squared
    // ReLU, so the LM head, every gate and every QK gain are unread.
    for label in ["A2", "B2"] {
        let run = run(label);
        let dir =
            std::env::temp_dir().join(format!("rankprobe-trained-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let straight = train(&run, &dir, None);
        assert!(straight.checkpoints.len() >= 2, "{label}");
        assert_only_read_tensors_trained(&run, &straight.checkpoints);

        let earlier = as_earlier_layout(&run, straight.checkpoints[0].clone());
        let from = earlier.step;
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let resumed = train(&run, &dir, Some(earlier));
        let tail: Vec<_> = straight.losses.iter().filter(|(s, _)| *s > from).collect();
        let resumed_losses: Vec<_> = resumed.losses.iter().collect();
        assert_eq!(resumed_losses, tail, "{label}: resumed losses differ");
        let last = resumed.checkpoints.last().unwrap();
        assert_only_read_tensors_trained(&run, &[straight.checkpoints[0].clone(), last.clone()]);
        let straight_last = straight.checkpoints.last().unwrap();
        assert_eq!(last.step, straight_last.step, "{label}");
        assert!(
            last.model == straight_last.model,
            "{label}: final weights differ"
        );
        assert!(
            last.optimizer == straight_last.optimizer,
            "{label}: the optimizer's state differs"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The orders docs/outputs.md ("Checkpoint files") states for other tools.
#[test]
fn the_checkpoint_orders_the_manual_documents_are_the_code_s() {
    let model = tensor_names::<Cpu, Tiny>();
    let mut want = vec!["embed".to_owned(), "lm_head".to_owned()];
    for i in 0..4 {
        for field in [
            "attn_norm",
            "wq",
            "wk",
            "wv",
            "wo",
            "q_gain",
            "k_gain",
            "ffn_norm",
            "w_up",
            "w_gate",
            "w_down",
        ] {
            want.push(format!("blocks.{i}.{field}"));
        }
    }
    want.push("final_norm".to_owned());
    assert_eq!(model, want);
    let group = tensor_names::<Cpu, TinyAdamWGroup>();
    let mut want = vec![
        "embed".to_owned(),
        "lm_head".to_owned(),
        "final_norm".to_owned(),
    ];
    for field in ["attn_norm", "ffn_norm", "q_gain", "k_gain"] {
        want.extend((0..4).map(|i| format!("blocks.{i}.{field}")));
    }
    assert_eq!(group, want);
    // Muon's matrices, per block: attention (merged here), then the feed-forward ones.
    let OptimizerConfig::Muon(muon) = run("A1").config.optimizer else {
        panic!("A1 is Muon")
    };
    let names: Vec<String> = rankprobe::optim::muon::Muon::matrices(
        &muon,
        rankprobe::spec::run_config::Activation::SquaredRelu,
        128,
        64,
        32,
        512,
        2,
    )
    .into_iter()
    .map(|m| m.name)
    .collect();
    assert_eq!(
        names,
        [
            "blocks.0.qkvo",
            "blocks.0.w_up",
            "blocks.0.w_down",
            "blocks.1.qkvo",
            "blocks.1.w_up",
            "blocks.1.w_down"
        ]
    );
}
