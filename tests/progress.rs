//! What a long study tells a user without a terminal: progress lines by time and at
//! evaluations, an estimate of the run and of the study once the first steps are timed,
//! a plain warning when that is hours on the CPU, and `plan` repeating the estimate from
//! the speed measured here.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{rankprobe, text};

#[test]
fn a_long_cpu_study_logs_by_time_estimates_and_warns_without_refusing() {
    let dir = std::env::temp_dir().join(format!("rankprobe-progress-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Two billion tokens of the tiny model: days on the CPU.
    let study = dir.join("long.ron");
    let text_of_study = common::tiny_text()
        .replace("name: \"tiny\"", "name: \"long\"")
        .replace("tokens: 20_480,", "tokens: 2_000_000_000,")
        .replace("at_tokens: [0, 4_096, 20_480]", "at_tokens: [0, 4_096]");
    std::fs::write(&study, text_of_study).unwrap();
    let log_path = dir.join("sweep.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args(["sweep", study.to_str().unwrap(), "--results"])
        .arg(dir.join("results"))
        .args(["--allow-repeat", "--log-every", "0.2", "--only", "A1"])
        .current_dir(common::root())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let periodic = |log: &str| {
        log.lines()
            .filter(|l| l.starts_with("[A1] ") && l.contains(" tok/s") && !l.contains("val"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while !(read().contains("[A1] estimate on cpu") && periodic(&read()) >= 2) {
        let exited = child.try_wait().unwrap();
        assert!(exited.is_none(), "the sweep ended early:\n{}", read());
        assert!(
            Instant::now() < deadline,
            "no estimate within 180 s:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = read();
    assert!(
        log.contains("[A1] 0 tok  val loss"),
        "an evaluation line: {log}"
    );
    let estimate = log
        .lines()
        .find(|l| l.starts_with("[A1] estimate on cpu: "))
        .unwrap_or_else(|| panic!("no estimate line:\n{log}"));
    assert!(estimate.contains(" for this run ("), "{estimate}");
    assert!(
        log.contains("experiments/qk_study_cpu.ron") && log.contains("GPU"),
        "the warning names the alternatives:\n{log}"
    );
    // `plan` now knows this machine's speed for the shape.
    let plan = rankprobe(&["plan", study.to_str().unwrap()]);
    let said = text(&plan);
    assert!(
        said.contains("estimate: about") && said.contains(" for the 4 runs on cpu"),
        "{said}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
