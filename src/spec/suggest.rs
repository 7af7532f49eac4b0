//! "Did you mean" for misspelled field names, variants and paths.

/// The candidate closest to `found`, if it is close enough to be a likely typo.
pub fn closest<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lowered = found.to_lowercase();
    candidates
        .iter()
        .map(|&candidate| {
            let distance = strsim::damerau_levenshtein(&lowered, &candidate.to_lowercase());
            (distance, candidate)
        })
        .filter(|&(distance, candidate)| {
            // Up to a third of the longer name may differ, and always one edit.
            let allowed = (found.len().max(candidate.len()) / 3).max(1);
            distance <= allowed
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// A help line: the likely intended name, or the list of valid ones.
pub fn help_for(found: &str, candidates: &[&str], what: &str) -> String {
    match closest(found, candidates) {
        Some(best) => format!("did you mean `{best}`?"),
        None if candidates.is_empty() => format!("this value has no {what}s"),
        None => format!("valid {what}s: {}", quoted_list(candidates)),
    }
}

/// `a`, `b`, `c`
pub fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_case_and_transpositions() {
        let fields = ["d_model", "n_heads", "n_kv_heads", "head_dim"];
        assert_eq!(closest("d_modle", &fields), Some("d_model"));
        assert_eq!(closest("n_head", &fields), Some("n_heads"));
        assert_eq!(closest("adamw", &["AdamW", "Muon"]), Some("AdamW"));
        assert_eq!(closest("zebra", &fields), None);
    }

    #[test]
    fn help_lists_choices_when_nothing_is_close() {
        assert_eq!(
            help_for("xyz", &["Ns5", "PolarExpress"], "variant"),
            "valid variants: `Ns5`, `PolarExpress`"
        );
        assert_eq!(
            help_for("Ns6", &["Ns5", "PolarExpress"], "variant"),
            "did you mean `Ns5`?"
        );
    }
}
