//! `rankprobe plan FILE`: the run matrix as a table.

use std::path::Path;

use crate::plan::cost::{param_count, steps_and_tokens, training_flops};
use crate::plan::diff::differing_values;
use crate::plan::Plan;
use crate::runner::continuation::{offer, Offer};
use crate::runner::estimate::run_cost;
use crate::runner::speed_range::from_memory;
use crate::spec::diagnostic::{one_line, printable};
use crate::store::finished::recorded;
use crate::store::study_dir;
use crate::text_table::{human_count, TextTable};

use super::{load_plan, Failure};

pub fn plan(file: &Path, results: &Path) -> Result<(), Failure> {
    let plan = load_plan(file)?;
    print!(
        "{}",
        render_plan(&plan, remembered_estimate(&plan).as_deref())
    );
    print!("{}", continuations(&plan, &study_dir(results, &plan.study)));
    Ok(())
}

/// Which unfinished runs a sweep would continue from a finished run's kept final state
/// (a raised budget), and which it could not and why; empty when none.
pub fn continuations(plan: &Plan, study_dir: &Path) -> String {
    let mut out = String::new();
    for run in &plan.runs {
        // The offer (manifests only) first: the finished check reads the run's tables.
        match offer(study_dir, run) {
            Offer::Nothing => {}
            _ if recorded(study_dir, run).is_finished() => {}
            Offer::Continue(source) => {
                out += &format!(
                "{} continues from {} at step {} ({} tokens): only the new tokens are trained\n",
                run.label,
                source.name,
                source.steps,
                human_count(source.tokens)
            )
            }
            Offer::Refused { name, why } => {
                out += &format!(
                    "{} trains from step 0, not from {name}: {}\n",
                    run.label,
                    one_line(&why)
                )
            }
        }
    }
    match out.is_empty() {
        true => out,
        false => format!("\nin {}:\n{out}", study_dir.display()),
    }
}

/// How long the study's runs take on this machine, from speeds measured here before (by
/// `sweep` or `bench`, see `runner::remembered`); `None` before any measurement.
pub fn remembered_estimate(plan: &Plan) -> Option<String> {
    let ignored = crate::runner::remembered::impossible_speeds();
    let estimate = remembered_estimate_only(plan);
    match (estimate, ignored) {
        (estimate, 0) => estimate,
        (estimate, n) => {
            let note = format!(
                "note: {n} speed(s) remembered in the cache lie outside {:.0e}-{:.0e} FLOP/s and \
                 were ignored as impossible (a damaged or edited speed.json)",
                crate::runner::remembered::SLOWEST_FLOPS,
                crate::runner::remembered::FASTEST_FLOPS
            );
            Some(match estimate {
                Some(estimate) => format!("{estimate}\n{note}"),
                None => note,
            })
        }
    }
}

fn remembered_estimate_only(plan: &Plan) -> Option<String> {
    let device = crate::train::device::resolve(plan.execution.device).ok()?;
    let costs: Vec<_> = plan.runs.iter().map(|run| run_cost(run, None)).collect();
    let remembered = from_memory(&device.to_string(), &costs)?;
    Some(format!(
        "estimate: {}",
        remembered.describe(plan.runs.len(), &device.to_string())
    ))
}

/// The header lines (with `estimate`, when there is one) and the table: label, run id,
/// the fields that differ between runs, tokens, steps, parameters and estimated training
/// FLOPs.
pub fn render_plan(plan: &Plan, estimate: Option<&str>) -> String {
    let configs: Vec<_> = plan.runs.iter().map(|r| &r.config).collect();
    let (differing, shown) = differing_values(&configs);
    let mut header: Vec<String> = ["#", "label", "run id"].map(String::from).to_vec();
    header.extend(differing.iter().cloned());
    header.extend(["tokens", "steps", "params", "train FLOPs"].map(String::from));
    let mut table = TextTable::new(header);
    let mut total_flops = Some(0.0);
    for (run, shown) in plan.runs.iter().zip(shown) {
        let (steps, tokens) = steps_and_tokens(&run.config);
        let vocab = run.config.data.tokenizer.known_vocab();
        let params = vocab.map(|v| param_count(&run.config.model, v as u64).total());
        let flops = training_flops(&run.config, tokens);
        total_flops = total_flops.zip(flops).map(|(sum, f)| sum + f);
        let mut row = vec![run.index.to_string(), run.label.clone(), run.id.clone()];
        row.extend(shown);
        row.push(human_count(tokens));
        row.push(steps.to_string());
        row.push(params.map_or_else(|| "?".to_owned(), human_count));
        row.push(flops.map_or_else(|| "?".to_owned(), |f| format!("{f:.2e}")));
        table.push(row);
    }
    let mut out = format!("study {} ({})\n", plan.study, plan.source.display());
    if !plan.description.trim().is_empty() {
        out += &format!("  {}\n", printable(plan.description.trim()));
    }
    let total = total_flops.map_or_else(|| "unknown".to_owned(), |f| format!("{f:.2e}"));
    let tf32 = if plan.execution.tf32 {
        " (TF32 products on CUDA)"
    } else {
        ""
    };
    out += &format!(
        "{} runs, device {}{tf32}, total training FLOPs {total}\n",
        plan.runs.len(),
        plan.execution.device
    );
    if let Some(estimate) = estimate {
        out += &format!("{estimate}\n");
    }
    out += "\n";
    out + &table.render()
}
