//! The Slurm path on a real one-node Slurm cluster (`scripts/slurm-localhost.sh`): a tiny
//! study as a job array, one task requeued mid-run and one cancelled. The requeued task
//! must checkpoint on SIGTERM, go back into the queue, resume from that checkpoint, and
//! end with results equal to an uninterrupted run's, without duplicate rows; the
//! cancelled one must checkpoint and stay cancelled.
//!
//! Skipped, saying why, where Slurm cannot be started (no root, no apt-get, no packages).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rankprobe::store::manifest::{Manifest, RunStatus};

/// Stops the cluster however the test ends.
struct Cluster {
    dir: PathBuf,
    conf: String,
}

impl Cluster {
    fn up() -> Result<Cluster, String> {
        let dir = std::env::temp_dir().join(format!("rankprobe-slurm-test-{}", std::process::id()));
        let output = Command::new("bash")
            .arg(common::root().join("scripts/slurm-localhost.sh"))
            .arg("up")
            .env("RANKPROBE_SLURM_DIR", &dir)
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let conf = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .map(str::to_owned);
        match (output.status.success(), conf) {
            (true, Some(conf)) => Ok(Cluster { dir, conf }),
            _ => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        }
    }

    fn command(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .current_dir(common::root())
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(common::root().join("scripts/slurm-localhost.sh"))
            .arg("down")
            .env("RANKPROBE_SLURM_DIR", &self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_requeued_task_resumes_to_the_uninterrupted_results_and_a_cancelled_one_stays_cancelled() {
    let cluster = match Cluster::up() {
        Ok(cluster) => cluster,
        Err(why) => {
            println!("SKIPPED: a local Slurm cluster cannot be started here: {why}");
            return;
        }
    };
    let work = std::env::temp_dir().join(format!("rankprobe-slurm-study-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // Long enough (~10 s a run) to requeue a task in the middle of its run.
    let study = work.join("study.ron");
    std::fs::write(
        &study,
        common::tiny_text().replace("tokens: 20_480,", "tokens: 204_800,"),
    )
    .unwrap();
    let results = work.join("results");
    let (study_arg, results_arg) = (study.to_str().unwrap(), results.to_str().unwrap());
    let script = cluster.command(
        env!("CARGO_BIN_EXE_rankprobe"),
        &[
            "slurm",
            study_arg,
            "--results",
            results_arg,
            "--max-parallel",
            "2",
            "--gpus",
            "0",
            "--time",
            "20",
        ],
    );
    assert!(script.status.success(), "{}", text(&script));
    let script_path = work.join("job.sbatch");
    std::fs::write(&script_path, &script.stdout).unwrap();
    let submitted = cluster.command("sbatch", &["--parsable", script_path.to_str().unwrap()]);
    assert!(submitted.status.success(), "{}", text(&submitted));
    let job = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    let logs = results.join("tiny/slurm-logs");
    let log = |task: usize| {
        std::fs::read_to_string(logs.join(format!("task-{task}.out"))).unwrap_or_default()
    };

    // Task 1 (A2) is requeued once it trains.
    wait_until("task 1 to train", Duration::from_secs(120), || {
        log(1).contains(" tok/s")
    });
    let requeued = cluster.command("scontrol", &["requeue", &format!("{job}_1")]);
    assert!(requeued.status.success(), "{}", text(&requeued));
    // Task 3 (B2) is cancelled by hand: it checkpoints, and stays cancelled.
    wait_until("task 3 to train", Duration::from_secs(240), || {
        log(3).contains(" tok/s")
    });
    let cancelled = cluster.command("scancel", &[&format!("{job}_3")]);
    assert!(cancelled.status.success(), "{}", text(&cancelled));
    wait_until("the job array to end", Duration::from_secs(300), || {
        let queue = cluster.command("squeue", &["-h", "-j", &job]);
        queue.status.success() && text(&queue).trim().is_empty()
    });

    let first = log(1);
    assert!(
        first.contains("attempt 1") && first.contains("rankprobe exited with 3"),
        "{first}"
    );
    assert!(
        first.contains("attempt 2") && first.contains("resuming from its checkpoint at step"),
        "{first}"
    );
    let cancelled_log = log(3);
    assert!(
        cancelled_log.contains("rankprobe exited with 3"),
        "{cancelled_log}"
    );
    assert!(
        !cancelled_log.contains("attempt 2"),
        "a cancelled task was requeued: {cancelled_log}"
    );
    let missing = cluster.command(
        env!("CARGO_BIN_EXE_rankprobe"),
        &["missing", study_arg, "--results", results_arg],
    );
    assert!(
        text(&missing).contains("1 of 4 runs not done; indices: 3"),
        "{}",
        text(&missing)
    );
    let b2 = Manifest::read(&common::run_dir(&results.join("tiny"), "B2")).unwrap();
    assert_eq!(b2.status, RunStatus::Interrupted);
    let study_dir = results.join("tiny");
    let a2 = common::run_dir(&study_dir, "A2");
    let manifest = Manifest::read(&a2).unwrap();
    assert_eq!(manifest.status, RunStatus::Done);
    let resumed = manifest
        .resumed_from_step
        .expect("A2 resumed from its interrupt checkpoint");
    assert!(resumed > 0, "{resumed}");

    // The same run, uninterrupted, outside Slurm: the same rows, none twice.
    let reference = work.join("reference");
    let sweep = cluster.command(
        env!("CARGO_BIN_EXE_rankprobe"),
        &[
            "sweep",
            study_arg,
            "--results",
            reference.to_str().unwrap(),
            "--only",
            "A2",
        ],
    );
    assert!(sweep.status.success(), "{}", text(&sweep));
    let straight = common::metric_rows(&common::run_dir(&reference.join("tiny"), "A2"));
    let requeued_rows = common::metric_rows(&a2);
    assert_eq!(
        requeued_rows, straight,
        "the requeued run's losses differ from an uninterrupted run's"
    );
    preemption_reaches_rankprobe_at_once(&cluster, &work);
    std::fs::remove_dir_all(&work).unwrap();
}

/// A task of the `debug` partition preempted by a job of `high` (PreemptMode=REQUEUE,
/// GraceTime 30 s): Slurm signals the batch shell only when the grace time has run out,
/// so the script must notice the preemption itself and pass SIGTERM on at once. The
/// run must checkpoint well within the grace time, be requeued and resume.
fn preemption_reaches_rankprobe_at_once(cluster: &Cluster, work: &std::path::Path) {
    let study = work.join("preempt.ron");
    std::fs::write(
        &study,
        common::tiny_text()
            .replace("name: \"tiny\"", "name: \"preempt\"")
            .replace("tokens: 20_480,", "tokens: 1_024_000,"),
    )
    .unwrap();
    let results = work.join("results");
    let (study_arg, results_arg) = (study.to_str().unwrap(), results.to_str().unwrap());
    let script = cluster.command(
        env!("CARGO_BIN_EXE_rankprobe"),
        &["slurm", study_arg, "--results", results_arg, "--gpus", "0"],
    );
    assert!(script.status.success(), "{}", text(&script));
    let script_path = work.join("preempt.sbatch");
    std::fs::write(&script_path, &script.stdout).unwrap();
    let submitted = cluster.command(
        "sbatch",
        &["--parsable", "--array=0", script_path.to_str().unwrap()],
    );
    assert!(submitted.status.success(), "{}", text(&submitted));
    let job = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    let log_path = results.join("preempt/slurm-logs/task-0.out");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until("the task to train", Duration::from_secs(120), || {
        log().contains(" tok/s")
    });
    // A job of the higher partition that needs every CPU of the node.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let preempting = cluster.command(
        "sbatch",
        &[
            "--parsable",
            "-p",
            "high",
            "-n",
            &cpus.to_string(),
            "--output",
            "/dev/null",
            "--wrap",
            "sleep 1",
        ],
    );
    assert!(preempting.status.success(), "{}", text(&preempting));
    let preempted_at = Instant::now();
    wait_until(
        "the preempted run to checkpoint",
        Duration::from_secs(120),
        || log().contains("rankprobe exited with 3"),
    );
    let took = preempted_at.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the run checkpointed {took:?} after the preemption (grace time 30 s):\n{}",
        log()
    );
    assert!(log().contains("preempted: passing SIGTERM on"), "{}", log());
    wait_until("the task to resume", Duration::from_secs(180), || {
        log().contains("resuming from its checkpoint at step")
    });
    let cancelled = cluster.command("scancel", &[&job]);
    assert!(cancelled.status.success(), "{}", text(&cancelled));
    wait_until("the job to end", Duration::from_secs(120), || {
        let queue = cluster.command("squeue", &["-h", "-j", &job]);
        queue.status.success() && text(&queue).trim().is_empty()
    });
    println!("preempted run checkpointed {took:?} after the preempting job was submitted");
}
