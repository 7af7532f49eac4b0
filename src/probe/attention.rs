//! What each query head's causal attention looks like: how spread out it is (entropy)
//! and how large its logits get, from the queries and keys the model attends with
//! (captured after QK-norm and RoPE).

use rayon::prelude::*;

/// Queries and keys of one layer, rows [sequences * seq] as the model lays them out.
pub struct QueriesKeys<'a> {
    /// [rows, heads * head_dim].
    pub q: &'a [f32],
    /// [rows, kv_heads * head_dim].
    pub k: &'a [f32],
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub seq: usize,
    /// Rows used: whole sequences from the start.
    pub rows: usize,
}

/// One query head's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadAttention {
    /// Mean over queries of the entropy (nats) of the softmax over keys 0..=i.
    pub entropy: f64,
    /// Largest logit q_i . k_j / sqrt(head_dim) over every pair j <= i.
    pub max_logit: f64,
}

/// The statistics of every query head (query head h reads key head h / (heads /
/// kv_heads), as the model does). Heads run in parallel; a logit is an f32 dot product
/// (as in the model), the softmax and its entropy are taken in f64.
pub fn head_attention(x: &QueriesKeys) -> Vec<HeadAttention> {
    (0..x.heads)
        .into_par_iter()
        .map(|h| one_head(x, h))
        .collect()
}

fn one_head(x: &QueriesKeys, h: usize) -> HeadAttention {
    let d = x.head_dim;
    let scale = 1.0 / (d as f64).sqrt();
    let kv = h / (x.heads / x.kv_heads);
    let mut logits = vec![0.0f64; x.seq];
    let (mut entropy_sum, mut max_logit, mut queries) = (0.0, f64::NEG_INFINITY, 0usize);
    for b in 0..x.rows / x.seq {
        for i in 0..x.seq {
            let row = b * x.seq + i;
            let q = &x.q[(row * x.heads + h) * d..][..d];
            for (j, logit) in logits[..=i].iter_mut().enumerate() {
                let key_row = b * x.seq + j;
                let k = &x.k[(key_row * x.kv_heads + kv) * d..][..d];
                let dot: f32 = q.iter().zip(k).map(|(a, b)| a * b).sum();
                *logit = f64::from(dot) * scale;
            }
            let seen = &logits[..=i];
            let top = seen.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            max_logit = max_logit.max(top);
            let z: f64 = seen.iter().map(|l| (l - top).exp()).sum();
            // H = log Z' + top - sum p_j l_j, with p_j = exp(l_j - top) / Z'.
            let mean_logit: f64 = seen.iter().map(|l| (l - top).exp() * l).sum::<f64>() / z;
            entropy_sum += z.ln() + top - mean_logit;
            queries += 1;
        }
    }
    HeadAttention {
        entropy: entropy_sum / queries.max(1) as f64,
        max_logit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_entropy_and_largest_logit() {
        // One sequence of 2 tokens, head_dim 1 (scale 1), 2 query heads sharing one key
        // head. Keys: k0 = 1, k1 = 2.
        // Head 0: q = (0, 0): query 0 sees one key (entropy 0); query 1 sees logits
        // (0, 0): uniform, entropy ln 2. Mean ln(2)/2; largest logit 0.
        // Head 1: q = (3, ln 3): query 0: logit 3, entropy 0; query 1: logits (ln 3,
        // 2 ln 3): p = (1/4, 3/4), entropy -(1/4 ln 1/4 + 3/4 ln 3/4). Largest logit 3.
        let ln3 = 3f32.ln();
        let q = [0.0, 3.0, 0.0, ln3];
        let k = [1.0, 2.0];
        let stats = head_attention(&QueriesKeys {
            q: &q,
            k: &k,
            heads: 2,
            kv_heads: 1,
            head_dim: 1,
            seq: 2,
            rows: 2,
        });
        let h1 = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        assert!(
            (stats[0].entropy - 2f64.ln() / 2.0).abs() < 1e-7,
            "{stats:?}"
        );
        assert_eq!(stats[0].max_logit, 0.0);
        assert!((stats[1].entropy - h1 / 2.0).abs() < 1e-6, "{stats:?}");
        assert!((stats[1].max_logit - 3.0).abs() < 1e-7);
    }

    #[test]
    fn scale_and_sequences_are_separate() {
        // Two sequences of one token each, head_dim 4 (scale 1/2): every query sees only
        // its own key, so the entropy is 0; the largest logit is over both.
        let q = [1.0, 1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.0];
        let k = [1.0, 1.0, 1.0, 1.0, 5.0, 0.0, 0.0, 0.0];
        let stats = head_attention(&QueriesKeys {
            q: &q,
            k: &k,
            heads: 1,
            kv_heads: 1,
            head_dim: 4,
            seq: 1,
            rows: 2,
        });
        assert_eq!(stats[0].entropy, 0.0);
        assert_eq!(stats[0].max_logit, 5.0); // 2 * 5 / 2
    }
}
