//! Symbolic links planted in a results tree: at every file path a finished study's tree
//! holds, at every directory it holds, and as an earlier-layout run directory. Whatever
//! rankprobe does (sweep, report, slurm), nothing outside the results tree may change:
//! file links are replaced by regular files, directory links are refused with a clear
//! error before any work, and the layout upgrade leaves linked directories alone.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{rankprobe, text};

fn study_text() -> String {
    common::tiny_with_sweep(r#"Conditions([(name: "A1")]),"#)
        .replace("name: \"tiny\"", "name: \"links\"")
        .replace(
            "execution: (device: Cpu)",
            "execution: (device: Cpu, checkpoint_every_tokens: 4_096)",
        )
}

/// Every file and directory below `dir`, relative, links not followed.
fn tree(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let relative = entry.path().strip_prefix(dir).unwrap().to_owned();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(relative);
                stack.push(entry.path());
            } else {
                files.push(relative);
            }
        }
    }
    files.sort();
    dirs.sort();
    (files, dirs)
}

/// The contents of every file below `dir` (following nothing).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    tree(dir)
        .0
        .into_iter()
        .map(|f| {
            let bytes = fs::read(dir.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

/// A directory outside the results tree with a file that must survive.
fn outside(base: &Path, name: &str) -> PathBuf {
    let dir = base.join("outside").join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("precious.txt"), format!("keep {name}")).unwrap();
    dir
}

#[test]
fn links_planted_anywhere_in_the_results_tree_change_nothing_outside_it() {
    let base = std::env::temp_dir().join(format!("rankprobe-links-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).unwrap();
    let study = base.join("links.ron");
    fs::write(&study, study_text()).unwrap();
    let sweep = |results: &Path| {
        rankprobe(&[
            "sweep",
            study.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ])
    };
    // The tree a finished study holds (with a checkpoint and a lock as a run has them).
    let clean = base.join("clean");
    let output = sweep(&clean);
    assert!(output.status.success(), "{}", text(&output));
    let (mut files, dirs) = tree(&clean);
    let run = dirs
        .iter()
        .find(|d| d.starts_with("links/runs/") && d.components().count() == 3);
    let run = run.expect("a run directory").clone();
    files.extend([run.join("checkpoint.bin"), run.join(".lock")]);

    // 1. A link at every file path, each to its own file outside.
    let linked = base.join("file-links");
    let targets = outside(&base, "files");
    for (i, file) in files.iter().enumerate() {
        let target = targets.join(format!("target-{i}"));
        fs::write(&target, format!("outside {i}")).unwrap();
        fs::create_dir_all(linked.join(file).parent().unwrap()).unwrap();
        symlink(&target, linked.join(file)).unwrap();
    }
    // An earlier-layout run directory that is a link to a copy of a run outside.
    let old_run = outside(&base, "old-run");
    for name in ["manifest.json", "run.ron"] {
        fs::copy(clean.join(&run).join(name), old_run.join(name)).unwrap();
    }
    symlink(&old_run, linked.join("links/run=A1-000000000000")).unwrap();
    let before = snapshot(&base.join("outside"));
    let output = sweep(&linked);
    assert!(output.status.success(), "{}", text(&output));
    let study_dir = linked.join("links");
    let output = rankprobe(&["report", study_dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        snapshot(&base.join("outside")),
        before,
        "files outside changed"
    );
    for file in tree(&linked).0 {
        let meta = fs::symlink_metadata(linked.join(&file)).unwrap();
        let planted_by_the_test = file.to_string_lossy().starts_with("links/run=");
        assert!(
            meta.is_file() || planted_by_the_test || file.to_string_lossy().contains(".unusable-"),
            "{} is still a link",
            file.display()
        );
    }

    // 2. A link at each directory path: refused before any work, nothing written outside.
    let mut dir_paths: Vec<PathBuf> = dirs.clone();
    dir_paths.push(PathBuf::from("links/slurm-logs"));
    for (i, dir) in dir_paths.iter().enumerate() {
        let results = base.join(format!("dir-link-{i}"));
        let target = outside(&base, &format!("dir-{i}"));
        fs::create_dir_all(results.join(dir).parent().unwrap()).unwrap();
        symlink(&target, results.join(dir)).unwrap();
        let before = snapshot(&target);
        let what = if dir.ends_with("slurm-logs") {
            rankprobe(&[
                "slurm",
                study.to_str().unwrap(),
                "--results",
                results.to_str().unwrap(),
            ])
        } else {
            sweep(&results)
        };
        let said = text(&what);
        if dir.ends_with("slurm-logs") || dir.ends_with("report") || dir == Path::new("links") {
            assert!(!what.status.success(), "{}: {said}", dir.display());
        } else {
            assert_eq!(what.status.code(), Some(2), "{}: {said}", dir.display());
        }
        assert!(said.contains("symbolic link"), "{}: {said}", dir.display());
        assert_eq!(
            snapshot(&target),
            before,
            "{}: written through",
            dir.display()
        );
    }
    // `report` on a study whose report directory is a link.
    let report_link = base.join("report-link");
    fs::create_dir_all(&report_link).unwrap();
    let copy = report_link.join("links");
    fs::rename(&study_dir, &copy).unwrap();
    fs::remove_dir_all(copy.join("report")).unwrap();
    let target = outside(&base, "report");
    symlink(&target, copy.join("report")).unwrap();
    let before = snapshot(&target);
    let output = rankprobe(&["report", copy.to_str().unwrap()]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("symbolic link"), "{}", text(&output));
    assert_eq!(
        snapshot(&target),
        before,
        "the report was written through a link"
    );
    fs::remove_dir_all(&base).unwrap();
}
