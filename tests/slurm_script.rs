//! The generated sbatch script, executed: over generated hostile paths (spaces, quotes,
//! `$(...)`, backticks, newlines, globs, non-ASCII) for the working directory, the binary,
//! the study file and the results directory, bash must run a stand-in `rankprobe` with
//! exactly the intended arguments, in the intended directory, and run nothing else. A path
//! Slurm itself cannot take in `#SBATCH --output` is refused with a clear error instead.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rankprobe::runner::slurm_script::{render, ScriptPaths, SlurmOptions};

/// Pieces of names a careless script would misread; `CANARY` marks injected commands.
const HOSTILE: [&str; 24] = [
    " ",
    "'",
    "\"",
    "$",
    "$(touch CANARY)",
    "`touch CANARY`",
    "; touch CANARY;",
    "&& touch CANARY",
    "| touch CANARY",
    "\n",
    "\ntouch CANARY\n",
    "\t",
    "\\",
    "*",
    "?",
    "[a]",
    "{a,b}",
    "~",
    "!",
    "#",
    "%",
    "é",
    "日本",
    "-",
];

fn hostile_name(rng: &mut ChaCha8Rng, slurm_safe: bool) -> String {
    let mut name = String::from("p");
    for _ in 0..rng.gen_range(1..5) {
        let piece = HOSTILE[rng.gen_range(0..HOSTILE.len())];
        if slurm_safe && piece.contains([' ', '\n', '\t', '\'', '"', '\\', '%']) {
            name.push_str("x_");
            continue;
        }
        name.push_str(piece);
        name.push('x');
    }
    name
}

fn canaries(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_name() == "CANARY" {
            found.push(path.clone());
        }
        if entry.file_type().unwrap().is_dir() {
            canaries(&path, found);
        }
    }
}

#[test]
fn the_generated_script_passes_hostile_paths_through_unchanged_and_runs_nothing_else() {
    let base = std::env::temp_dir().join(format!("rankprobe-sbatch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let (mut executed, mut refused) = (0, 0);
    for case in 0..48 {
        let root = base.join(format!("case{case}"));
        let cwd = root.join(hostile_name(&mut rng, false));
        let bin = root.join(hostile_name(&mut rng, false));
        fs::create_dir_all(&cwd).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let exe = bin.join(hostile_name(&mut rng, false));
        let record = root.join("argv");
        fs::write(
            &exe,
            "#!/bin/bash\n{ printf '%s\\0' \"$PWD\" \"$@\"; } > \"$RANKPROBE_ARGV\"\n",
        )
        .unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let file = root.join(hostile_name(&mut rng, false)).join("study.ron");
        let results = root.join(hostile_name(&mut rng, case % 2 == 0));
        let paths = ScriptPaths {
            cwd: cwd.clone(),
            exe: exe.clone(),
            file: file.clone(),
            results: results.clone(),
            logs: results.join("study").join("slurm-logs"),
        };
        let options = SlurmOptions {
            results: results.clone(),
            max_parallel: 2,
            gpus_per_task: 0,
            time: "1:00:00".to_owned(),
            partition: None,
        };
        let script = match render("study", 3, &paths, &options) {
            Ok(script) => script,
            Err(why) => {
                let unsafe_for_slurm = results
                    .to_str()
                    .unwrap()
                    .contains([' ', '\n', '\t', '\'', '"', '\\', '%']);
                assert!(unsafe_for_slurm, "case {case}: refused {results:?}: {why}");
                assert!(why.contains("#SBATCH --output"), "{why}");
                refused += 1;
                continue;
            }
        };
        let script_path = root.join("job.sh");
        fs::write(&script_path, &script).unwrap();
        let output = Command::new("bash")
            .arg(&script_path)
            .current_dir(&root)
            .env("SLURM_ARRAY_TASK_ID", "1")
            .env("SLURM_ARRAY_JOB_ID", "77")
            .env("RANKPROBE_ARGV", &record)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "case {case}: {said}\n{script}");
        let argv = fs::read(&record).unwrap_or_else(|e| panic!("case {case}: {e}: {said}"));
        let argv: Vec<String> = argv
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect();
        let want = [
            cwd.to_str().unwrap(),
            "run",
            file.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ];
        assert_eq!(argv, want, "case {case}:\n{script}");
        let mut found = Vec::new();
        canaries(&base, &mut found);
        assert!(
            found.is_empty(),
            "case {case}: a command ran: {found:?}\n{script}"
        );
        executed += 1;
    }
    assert!(
        executed >= 16 && refused >= 4,
        "{executed} run, {refused} refused"
    );
    fs::remove_dir_all(&base).unwrap();
}

#[test]
fn sbatch_option_values_outside_slurms_syntax_are_refused() {
    let paths = ScriptPaths {
        cwd: "/w".into(),
        exe: "/w/rankprobe".into(),
        file: "/w/s.ron".into(),
        results: "/w/results".into(),
        logs: "/w/results/s/slurm-logs".into(),
    };
    let options = |time: &str, partition: Option<&str>| SlurmOptions {
        results: "/w/results".into(),
        max_parallel: 1,
        gpus_per_task: 1,
        time: time.to_owned(),
        partition: partition.map(str::to_owned),
    };
    assert!(render("s", 1, &paths, &options("2-00:00:00", Some("gpu,long"))).is_ok());
    let why = render("s", 1, &paths, &options("1:00\n#SBATCH --x", None)).unwrap_err();
    assert!(why.contains("--time"), "{why}");
    let why = render("s", 1, &paths, &options("1:00", Some("a b"))).unwrap_err();
    assert!(
        why.contains("--partition") && why.contains("a space"),
        "{why}"
    );
}
