//! The corpus of bad study files in tests/bad: each is rejected before any work, with
//! the message, position and fix listed in its `// expect:` lines.

mod common;

use std::process::Command;

use rankprobe::plan::build_plan;
use rankprobe::spec::load_study;

fn expectations(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("// expect: "))
        .collect()
}

#[test]
fn every_bad_file_fails_with_its_expected_messages() {
    let files = common::ron_files(&common::root().join("tests/bad"));
    assert!(files.len() >= 15, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{} has no `// expect:` lines",
            file.display()
        );
        let shown = match load_study(&file) {
            Err(diagnostics) => diagnostics.to_string(),
            Ok(loaded) => match build_plan(&loaded) {
                Err(diagnostics) => diagnostics.to_string(),
                Ok(_) => panic!("{} was accepted", file.display()),
            },
        };
        for fragment in expected {
            assert!(
                shown.contains(fragment),
                "{}: expected `{fragment}` in:\n{shown}",
                file.display()
            );
        }
        // Every diagnostic names the file, and every one has a fix.
        assert!(shown.contains(&file.display().to_string()), "{shown}");
        assert_eq!(
            shown.matches("error: ").count(),
            shown.matches("= help: ").count(),
            "{shown}"
        );
    }
}

/// Runs the CLI on a bad file; returns stderr after asserting exit code 2.
fn cli_rejects(subcommand: &str, file: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rankprobe"))
        .args([subcommand, file])
        .current_dir(common::root())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{file}: {output:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn cli_exits_2_with_file_line_col_for_syntax_error() {
    let stderr = cli_rejects("plan", "tests/bad/syntax_missing_comma.ron");
    assert!(
        stderr.contains("--> tests/bad/syntax_missing_comma.ron:11:13"),
        "{stderr}"
    );
}

#[test]
fn cli_exits_2_with_suggestion_for_misspelled_field() {
    let stderr = cli_rejects("sweep", "tests/bad/misspelled_field.ron");
    assert!(
        stderr.contains("--> tests/bad/misspelled_field.ron:15:13"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `d_model`?"), "{stderr}");
}

#[test]
fn cli_exits_2_for_impossible_shape_and_names_the_fix() {
    let stderr = cli_rejects("validate", "tests/bad/impossible_shape.ron");
    assert!(
        stderr.contains("--> tests/bad/impossible_shape.ron:15:13"),
        "{stderr}"
    );
    assert!(stderr.contains("set d_model: 64"), "{stderr}");
}

#[test]
fn cli_exits_2_for_missing_file() {
    let stderr = cli_rejects("plan", "experiments/no_such_study.ron");
    assert!(stderr.contains("cannot read study file"), "{stderr}");
}
