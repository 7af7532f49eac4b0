//! The in-context-learning score: how much lower the next-token loss is late in a
//! sequence than early in it (Olsson et al. 2022 take position 500 minus position 50).

/// Mean losses over `early` and `late` positions ([from, to) ranges) of every sequence,
/// from per-token losses laid out [sequences * seq]: (early, late, late - early).
pub fn icl_score(
    losses: &[f32],
    seq: usize,
    early: (usize, usize),
    late: (usize, usize),
) -> (f64, f64, f64) {
    let mean_over = |(from, to): (usize, usize)| {
        let values: Vec<f64> = losses
            .chunks_exact(seq)
            .flat_map(|sequence| sequence[from..to].iter().map(|&l| f64::from(l)))
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    let (early, late) = (mean_over(early), mean_over(late));
    (early, late, late - early)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_score() {
        // Two sequences of 4 tokens; early = positions 0..2, late = 3..4.
        let losses = [4.0, 2.0, 9.0, 1.0, 6.0, 4.0, 9.0, 2.0];
        let (early, late, score) = icl_score(&losses, 4, (0, 2), (3, 4));
        assert_eq!(early, 4.0); // (4 + 2 + 6 + 4) / 4
        assert_eq!(late, 1.5); // (1 + 2) / 2
        assert_eq!(score, -2.5);
    }
}
