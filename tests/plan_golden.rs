//! `plan` of every study that predates the learning-rate controls prints what it printed
//! before them, byte for byte (labels, run ids, the columns that differ, costs): the
//! fixtures in tests/fixtures/plans/ were written by the commit before those options
//! (464403a). Only the time estimate, which depends on this machine's measured speed, is
//! left out.

mod common;

#[test]
fn plans_of_the_studies_before_the_lr_controls_are_unchanged() {
    let fixtures = common::root().join("tests/fixtures/plans");
    let mut compared = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let study = format!("experiments/{name}.ron");
        let output = common::rankprobe(&["plan", &study, "--results", "/nonexistent-results"]);
        assert!(output.status.success(), "{}", common::text(&output));
        let printed: String = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("estimate:"))
            .map(|line| format!("{line}\n"))
            .collect();
        let want = std::fs::read_to_string(&path).unwrap();
        assert!(
            printed == want,
            "plan of {study} changed:\n{printed}\nwas:\n{want}"
        );
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} fixtures");
}
