//! `rankprobe missing FILE`: the runs of a study that are not done, and their matrix
//! indices as a compact list (`3,7,12-15`) for `run --index` or a job array.

use std::path::Path;

use crate::spec::diagnostic::one_line;
use crate::store::finished::recorded;
use crate::store::study_dir;
use crate::text_table::TextTable;

use super::{load_plan, Failure};

/// `[0, 1, 2, 5, 7, 8]` -> `0-2,5,7-8`.
pub fn index_list(indices: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

pub fn missing(file: &Path, results: &Path) -> Result<(), Failure> {
    let plan = load_plan(file)?;
    let dir = study_dir(results, &plan.study);
    let mut table = TextTable::new(
        ["#", "label", "run id", "status"]
            .map(String::from)
            .to_vec(),
    );
    let mut indices = Vec::new();
    for run in &plan.runs {
        let recorded = recorded(&dir, run);
        if !recorded.is_finished() {
            table.push(vec![
                run.index.to_string(),
                run.label.clone(),
                run.id.clone(),
                one_line(&recorded.describe()),
            ]);
            indices.push(run.index);
        }
    }
    if indices.is_empty() {
        println!(
            "all {} runs of {} are done in {}",
            plan.runs.len(),
            plan.study,
            dir.display()
        );
    } else {
        print!("{}", table.render());
        println!(
            "{} of {} runs not done; indices: {}",
            indices.len(),
            plan.runs.len(),
            index_list(&indices)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::index_list;

    #[test]
    fn compresses_ranges() {
        assert_eq!(index_list(&[3, 7, 12, 13, 14, 15]), "3,7,12-15");
        assert_eq!(index_list(&[0, 1]), "0-1");
        assert_eq!(index_list(&[]), "");
    }
}
