//! A bounded fuzz test of the study loader, the `validate` path: arbitrary bytes, and
//! every real and bad study file mutated at random (spans deleted, duplicated or moved,
//! RON tokens, huge numbers, non-ASCII and control characters inserted). Every input must
//! be accepted or rejected with diagnostics that each carry a fix, never a panic, and
//! within a time limit; rejections through the CLI exit 2 and point at file:line:col.
//!
//! Deterministic: `RANKPROBE_FUZZ_INPUTS` (default 5000) and `RANKPROBE_FUZZ_SEED` choose
//! how many inputs and which; CI runs the default, about a second.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rankprobe::plan::build_plan;
use rankprobe::spec::load_study;

/// Longer than any input may take: a corpus glob is given up after 10 s at most.
const PER_INPUT: Duration = Duration::from_secs(12);

/// Fragments a mutation inserts: RON syntax, the schema's names, hostile values.
const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"",
    "'",
    "//",
    "/*",
    "*/",
    "#",
    "r#\"",
    "\\",
    "Some(",
    "None",
    "true",
    "-",
    ".",
    "e",
    "1e400",
    "-0.0",
    "NaN",
    "inf",
    "16.5",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "0",
    "4611686018427387904",
    "name",
    "base",
    "sweep",
    "report",
    "model",
    "data",
    "n_heads",
    "d_model",
    "seq_len",
    "batch_size",
    "Conditions",
    "Grid",
    "Zip",
    "Seeds",
    "set",
    "path",
    "values",
    "labels",
    "Muon",
    "AdamW",
    "RmsNorm",
    "Text",
    "Jsonl",
    "Parquet",
    "LlmcBin",
    "Bpe",
    "File",
    "\"model.qk_norm\": None",
    "\"optimizer.lr\": 0.1",
    "layer_threshold: NaN",
    "Café",
    "🦀",
    "\u{feff}",
    "\u{1b}[2J",
    "\u{0}",
    "\u{7f}",
    "é",
    "\\u{1b}",
    "\\u{zz}",
    "\n",
    "\r\n",
    "\t",
];

fn seeds_files() -> Vec<(PathBuf, String)> {
    let root = common::root();
    ["experiments", "tests/bad", "tests/studies"]
        .iter()
        .flat_map(|dir| common::ron_files(&root.join(dir)))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// A char boundary at or before `i`.
fn boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut out = text.to_owned();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len();
        let at = boundary(&out, rng.gen_range(0..=len));
        let end = boundary(&out, at + rng.gen_range(0..=40));
        match rng.gen_range(0..5) {
            0 => out.replace_range(at..end, ""),
            1 => {
                let span = out[at..end].to_owned();
                out.insert_str(at, &span);
            }
            2 => {
                let fragment = FRAGMENTS[rng.gen_range(0..FRAGMENTS.len())];
                out.insert_str(at, fragment);
            }
            3 => {
                // Replace a number with a hostile one.
                let fragment =
                    ["0", "1e400", "18446744073709551615", "-3", "2.5", "NaN"][rng.gen_range(0..6)];
                let digits = out[at..].find(|c: char| c.is_ascii_digit()).map(|i| at + i);
                if let Some(start) = digits {
                    let stop = out[start..]
                        .find(|c: char| !(c.is_ascii_digit() || c == '_' || c == '.'))
                        .map_or(out.len(), |i| start + i);
                    out.replace_range(start..stop, fragment);
                }
            }
            _ => {
                let span = out[at..end].to_owned();
                out.replace_range(at..end, "");
                let to = boundary(&out, rng.gen_range(0..=out.len()));
                out.insert_str(to, &span);
            }
        }
    }
    out
}

fn arbitrary_bytes(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = rng.gen_range(0..2000);
    (0..len).map(|_| rng.gen()).collect()
}

/// Loads and plans `bytes` written to `path`; returns the rendered diagnostics of a
/// rejection (None if accepted). Panics and overlong inputs fail the test, keeping the
/// input for reproduction.
fn check(bytes: &[u8], path: &Path, keep: &Path, case: &str) -> Option<String> {
    std::fs::write(path, bytes).unwrap();
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| match load_study(path) {
        Err(diagnostics) => Some(diagnostics),
        Ok(loaded) => build_plan(&loaded).err(),
    }));
    let took = started.elapsed();
    let save = || {
        std::fs::write(keep, bytes).unwrap();
        format!("{case}: input kept in {}", keep.display())
    };
    let rejected = match outcome {
        Ok(rejected) => rejected,
        Err(_) => panic!("panicked; {}", save()),
    };
    assert!(took < PER_INPUT, "took {took:?}; {}", save());
    rejected.map(|diagnostics| {
        assert!(
            !diagnostics.0.is_empty(),
            "a rejection without diagnostics; {}",
            save()
        );
        for diagnostic in &diagnostics.0 {
            assert!(
                diagnostic.help.is_some(),
                "no fix in `{}`; {}",
                diagnostic.message,
                save()
            );
        }
        let shown = diagnostics.to_string();
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "a raw control character reaches the terminal; {}",
            save()
        );
        shown
    })
}

#[test]
fn no_study_input_panics_hangs_or_is_rejected_without_a_position_and_a_fix() {
    let inputs: usize = std::env::var("RANKPROBE_FUZZ_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let dir = std::env::temp_dir().join(format!("rankprobe-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.ron");
    let keep = std::env::temp_dir().join("rankprobe-fuzz-failure.ron");
    let seeds = seeds_files();
    let seed = std::env::var("RANKPROBE_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20261129);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut accepted, mut rejected) = (0, 0);
    let mut cli_samples = Vec::new();
    for case in 0..inputs {
        let (bytes, what) = if case % 10 == 0 {
            (arbitrary_bytes(&mut rng), "arbitrary bytes".to_owned())
        } else {
            let (seed_path, text) = &seeds[rng.gen_range(0..seeds.len())];
            let name = seed_path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                mutate(text, &mut rng).into_bytes(),
                format!("mutated {name}"),
            )
        };
        match check(&bytes, &path, &keep, &format!("case {case} ({what})")) {
            None => accepted += 1,
            Some(_) => {
                rejected += 1;
                if cli_samples.len() < 40 && case % 7 == 0 {
                    cli_samples.push(bytes);
                }
            }
        }
    }
    println!("{inputs} inputs: {accepted} accepted, {rejected} rejected");
    assert!(
        rejected > inputs / 2,
        "the mutations should mostly break the files"
    );
    // Through the CLI: exit code 2, and a position (file:line:col) whenever the file is
    // UTF-8 text that parses far enough to have one.
    for (i, bytes) in cli_samples.iter().enumerate() {
        let file = dir.join(format!("cli-{i}.ron"));
        std::fs::write(&file, bytes).unwrap();
        let output = common::rankprobe(&["validate", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        let positioned = format!("{}:", file.display());
        let utf8 = std::str::from_utf8(bytes).is_ok();
        assert!(
            stderr.contains(&file.display().to_string()),
            "the file is not named: {stderr}"
        );
        if utf8 {
            assert!(stderr.contains(&positioned), "no position: {stderr}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
