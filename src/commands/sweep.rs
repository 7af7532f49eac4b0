//! `rankprobe sweep FILE`: plan the study and prepare every run's directory with its
//! resolved config. (Training arrives with the CPU training issue.)

use std::fs;
use std::path::{Path, PathBuf};

use crate::plan::{Plan, PlannedRun};
use crate::spec::suggest::help_for;
use crate::spec::{ron_options, Device};
use crate::store::{run_dir_name, study_dir, write_atomic};

use super::{load_plan, Failure};

/// Options of `sweep`.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Results root; the study writes to `<results>/<study>/`.
    pub results: PathBuf,
    /// Only these run labels (all runs when empty).
    pub only: Vec<String>,
    /// Overrides the study's `execution.device`.
    pub device: Option<Device>,
}

pub fn sweep(file: &Path, options: &SweepOptions) -> Result<(), Failure> {
    let plan = load_plan(file)?;
    let device = resolve_device(options.device.unwrap_or(plan.execution.device))?;
    let runs = select_runs(&plan, &options.only)?;
    let dir = study_dir(&options.results, &plan.study);
    let source = fs::read(&plan.source).map_err(|err| {
        Failure::RunFailed(format!("cannot re-read {}: {err}", plan.source.display()))
    })?;
    create_dir(&dir)?;
    write(&dir.join("study.ron"), &source)?;
    for run in &runs {
        let run_dir = dir.join(run_dir_name(run));
        create_dir(&run_dir)?;
        write(
            &run_dir.join("run.ron"),
            resolved_run_ron(&plan, run).as_bytes(),
        )?;
        println!("prepared {}", run_dir.display());
    }
    println!(
        "{} of {} runs of study {} prepared in {} (device {device}); training is not part of this version yet",
        runs.len(),
        plan.runs.len(),
        plan.study,
        dir.display()
    );
    Ok(())
}

/// The device runs will use. This build has no CUDA support.
fn resolve_device(requested: Device) -> Result<Device, Failure> {
    match requested {
        Device::Auto | Device::Cpu => Ok(Device::Cpu),
        Device::Cuda(_) => Err(Failure::BadInput(format!(
            "device {requested} requested, but this build of rankprobe has no CUDA support; \
             use --device cpu (CUDA builds arrive with the Muon/CUDA work, see README)"
        ))),
    }
}

/// The runs named by `--only`, in plan order; an unknown label is an error.
fn select_runs(plan: &Plan, only: &[String]) -> Result<Vec<PlannedRun>, Failure> {
    if only.is_empty() {
        return Ok(plan.runs.clone());
    }
    let labels: Vec<&str> = plan.runs.iter().map(|r| r.label.as_str()).collect();
    if let Some(unknown) = only.iter().find(|label| !labels.contains(&label.as_str())) {
        return Err(Failure::BadInput(format!(
            "--only {unknown}: study {} has no run labelled `{unknown}`; {}",
            plan.study,
            help_for(unknown, &labels, "label")
        )));
    }
    Ok(plan
        .runs
        .iter()
        .filter(|run| only.contains(&run.label))
        .cloned()
        .collect())
}

/// `run.ron`: the fully resolved config, readable as a `RunConfig`, with a header saying
/// where it came from.
pub fn resolved_run_ron(plan: &Plan, run: &PlannedRun) -> String {
    let pretty = ron::ser::PrettyConfig::new().indentor("  ".to_owned());
    let body = ron_options()
        .to_string_pretty(&run.config, pretty)
        .expect("a run config always serialises to RON");
    let mut header = format!(
        "// Run `{}` (#{}) of study `{}` ({}), run id {}.\n",
        run.label,
        run.index,
        plan.study,
        plan.source.display(),
        run.id
    );
    for (path, value) in &run.overrides {
        header += &format!("// override {path} = {value}\n");
    }
    header + &body + "\n"
}

fn create_dir(dir: &Path) -> Result<(), Failure> {
    fs::create_dir_all(dir)
        .map_err(|err| Failure::RunFailed(format!("cannot create {}: {err}", dir.display())))
}

fn write(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    write_atomic(path, contents)
        .map_err(|err| Failure::RunFailed(format!("cannot write {}: {err}", path.display())))
}
