//! Command line of rankprobe. Argument parsing only; the work is in `rankprobe::commands`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use rankprobe::commands::sweep::{Shard, SweepOptions};
use rankprobe::commands::{self, Failure};
use rankprobe::spec::Device;

/// dfdx allocates a fresh buffer for every tensor op; mimalloc reuses freed memory where
/// the system allocator returns large blocks to the OS and faults them in again
/// (measured: 2.8K -> see README benchmark for tokens/s on the quickstart model).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

extern "C" {
    /// mimalloc's option setter (libmimalloc-sys links it; its Rust binding needs the
    /// crate's `extended` feature for this one call).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Training frees and reallocates the same large buffers every step. By default mimalloc
/// returns freed memory to the OS after 10 ms, and every step then faults and zeroes
/// fresh pages (measured: about 10% of a quickstart step). Keep freed memory for reuse.
fn keep_freed_memory() {
    // SAFETY: sets a documented option to a documented value (-1: never purge).
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Makes the main thread one of rayon's workers. Training runs on the main thread and
/// starts a parallel operation hundreds of times a step; from a thread outside the pool
/// each start hands the work to the pool and puts the caller to sleep until it is done
/// (two thread switches per operation), where a worker just forks and joins.
fn main_thread_joins_the_pool() {
    // An error means a pool exists already; the work then runs on that one.
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
}

/// Turn training studies (RON files) into trained, probed runs and comparison reports.
///
/// Exit codes: 0 success, 1 a run or the results store failed, 2 bad input.
#[derive(Parser)]
#[command(name = "rankprobe", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the run matrix: labels, run ids, differing fields, tokens, FLOPs.
    Plan {
        /// Study file (.ron).
        file: PathBuf,
        /// Results root: runs a sweep would continue from finished runs there are named.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Train every run of a study into results/<study>/, keeping runs done already.
    Sweep {
        /// Study file (.ron).
        file: PathBuf,
        /// Results root directory.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Only the runs with these labels.
        #[arg(long, num_args = 1..)]
        only: Vec<String>,
        /// auto, cpu, cuda or cuda:N (overrides the study's execution.device).
        #[arg(long)]
        device: Option<Device>,
        /// Retrain runs that are done already (by default they are kept).
        #[arg(long)]
        force: bool,
        /// Stop at the first run that fails or diverges.
        #[arg(long)]
        fail_fast: bool,
        /// Only shard INDEX/COUNT of the matrix (runs with index % COUNT == INDEX).
        #[arg(long)]
        shard: Option<Shard>,
        /// Allow a token budget larger than the training split (repeated data).
        #[arg(long)]
        allow_repeat: bool,
        /// Without a terminal (a log file, a Slurm log), write a progress line at least
        /// this often (seconds; also at every evaluation).
        #[arg(long, default_value_t = 60.0, value_parser = positive_seconds)]
        log_every: f64,
    },
    /// Train one run of a study, by matrix index (default: $SLURM_ARRAY_TASK_ID or
    /// $JOB_COMPLETION_INDEX), for job arrays.
    Run {
        /// Study file (.ron).
        file: PathBuf,
        /// The run's matrix index (see `plan` or `missing`).
        #[arg(long)]
        index: Option<usize>,
        /// Results root directory.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Retrain the run if it is done already.
        #[arg(long)]
        force: bool,
        /// Allow a token budget larger than the training split (repeated data).
        #[arg(long)]
        allow_repeat: bool,
        /// Without a terminal (a log file, a Slurm log), write a progress line at least
        /// this often (seconds; also at every evaluation).
        #[arg(long, default_value_t = 60.0, value_parser = positive_seconds)]
        log_every: f64,
    },
    /// Print an sbatch job-array script that trains every run of a study on a cluster.
    Slurm {
        /// Study file (.ron).
        file: PathBuf,
        /// Results root directory (on a filesystem every node sees).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// At most this many tasks at once.
        #[arg(long, default_value_t = 8)]
        max_parallel: usize,
        /// GPUs per task.
        #[arg(long, default_value_t = 1)]
        gpus: usize,
        /// Time limit per task.
        #[arg(long, default_value = "24:00:00")]
        time: String,
        /// Slurm partition.
        #[arg(long)]
        partition: Option<String>,
    },
    /// List the runs of a study that are not done, with their matrix indices.
    Missing {
        /// Study file (.ron).
        file: PathBuf,
        /// Results root directory.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Measure CPU training tokens/s of each study's first run, next to a plain matmul.
    Bench {
        /// Study files (.ron).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Optimizer steps to time per study.
        #[arg(long, default_value_t = 20)]
        steps: u64,
        /// The run to time (default: each study's first run).
        #[arg(long)]
        run: Option<String>,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: Device,
        /// Also time PyTorch eager on the same model, batch, optimizer and thread count
        /// (needs a Python with torch: `python3`, or RANKPROBE_PYTHON).
        #[arg(long)]
        torch: bool,
        /// Print where each step's time goes: forward, backward, optimizer, and each
        /// fused CPU operation.
        #[arg(long)]
        profile: bool,
        /// Time each run this many times (alternating with PyTorch under --torch) and
        /// report the best of each: shared machines disturb single runs.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Time one Muon update per matrix shape of a study's first Muon run, on the CPU (and
    /// on the GPU in a CUDA build).
    MuonBench {
        /// Study file (.ron).
        file: PathBuf,
    },
    /// Write and print the comparison tables of a study's results (results/<study>).
    Report {
        /// The study's results directory, e.g. results/quickstart.
        study_dir: PathBuf,
    },
    /// Export a study's finished runs for PyTorch: per run its final weights
    /// (safetensors), config.json, its validation batch and rankprobe_model.py.
    Export {
        /// The study's results directory, e.g. results/quickstart.
        study_dir: PathBuf,
        /// Only runs with these labels (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// Where to write: one directory per run, <label>-<run id>.
        #[arg(long)]
        to: PathBuf,
    },
    /// Check study files (syntax, schema, shapes, sweep) without running anything.
    Validate {
        /// Study files (.ron).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// A number of seconds for `--log-every`: positive and finite.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 1e9 => Ok(s),
        _ => Err(format!(
            "`{text}` is not a positive number of seconds, e.g. 60"
        )),
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    main_thread_joins_the_pool();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Plan { file, results } => commands::plan::plan(file, results),
        Command::Sweep {
            file,
            results,
            only,
            device,
            force,
            fail_fast,
            shard,
            allow_repeat,
            log_every,
        } => commands::sweep::sweep(
            file,
            &SweepOptions {
                results: results.clone(),
                only: only.clone(),
                device: *device,
                force: *force,
                fail_fast: *fail_fast,
                shard: *shard,
                index: None,
                allow_repeat: *allow_repeat,
                log_every: Duration::from_secs_f64(*log_every),
            },
        ),
        Command::Missing { file, results } => commands::missing::missing(file, results),
        Command::Run {
            file,
            index,
            results,
            force,
            allow_repeat,
            log_every,
        } => commands::run::run(
            file,
            *index,
            results,
            *force,
            *allow_repeat,
            Duration::from_secs_f64(*log_every),
        ),
        Command::Slurm {
            file,
            results,
            max_parallel,
            gpus,
            time,
            partition,
        } => commands::slurm::slurm(
            file,
            &commands::slurm::SlurmOptions {
                results: results.clone(),
                max_parallel: *max_parallel,
                gpus_per_task: *gpus,
                time: time.clone(),
                partition: partition.clone(),
            },
        ),
        Command::Validate { files } => commands::validate::validate(files),
        Command::Report { study_dir } => commands::report::report(study_dir),
        Command::Export {
            study_dir,
            only,
            to,
        } => commands::export::export(study_dir, only, to),
        Command::MuonBench { file } => commands::bench::muon_bench(file),
        Command::Bench {
            files,
            steps,
            run,
            device,
            torch,
            profile,
            rounds,
        } => commands::bench::bench(commands::bench::BenchOptions {
            files,
            steps: *steps,
            label: run.as_deref(),
            device: *device,
            torch: *torch,
            profile: *profile,
            rounds: *rounds,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            exit_code(&failure)
        }
    }
}

fn exit_code(failure: &Failure) -> ExitCode {
    ExitCode::from(failure.exit_code() as u8)
}
