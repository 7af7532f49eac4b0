//! Summaries of repeated runs (seeds): mean, standard deviation, n and a 95% confidence
//! interval of the mean (Student's t), and of paired differences between two conditions
//! run with the same seeds.

/// The mean of `n` values with its spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    /// Sample standard deviation (n - 1); NaN for one value.
    pub sd: f64,
    pub n: usize,
    /// The 95% confidence interval of the mean; None for one value.
    pub ci: Option<(f64, f64)>,
}

impl Estimate {
    /// The estimate of the finite values among `values`; None when there are none.
    pub fn of(values: &[f64]) -> Option<Estimate> {
        let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Some(Estimate {
                mean,
                sd: f64::NAN,
                n,
                ci: None,
            });
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        let half = t_975(n - 1) * sd / (n as f64).sqrt();
        Some(Estimate {
            mean,
            sd,
            n,
            ci: Some((mean - half, mean + half)),
        })
    }

    /// Whether the interval lies wholly on one side of zero.
    pub fn excludes_zero(&self) -> bool {
        self.ci.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0)
    }

    /// A difference with its sign: "+0.525 [+0.250, +0.801]" (the 95% interval) for
    /// several values, "+0.525" for one.
    pub fn signed(&self, digits: usize) -> String {
        match self.ci {
            Some((lo, hi)) => format!("{:+.digits$} [{lo:+.digits$}, {hi:+.digits$}]", self.mean),
            None => format!("{:+.digits$}", self.mean),
        }
    }

    /// "4.512" for one value, "4.512 ± 0.031" (95% CI half-width) for several.
    pub fn display(&self, digits: usize) -> String {
        match self.ci {
            Some((lo, hi)) => format!("{:.digits$} ± {:.digits$}", self.mean, (hi - lo) / 2.0),
            None => format!("{:.digits$}", self.mean),
        }
    }
}

/// The paired differences `a[i] - b[i]` of values matched by seed: (seed, a, b).
pub fn paired_difference(pairs: &[(f64, f64)]) -> Option<Estimate> {
    let diffs: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
    Estimate::of(&diffs)
}

impl Estimate {
    /// The two-sided p-value of the one-sample t-test of mean zero (for paired
    /// differences: the paired t-test); None for one value. A zero spread gives 0 for a
    /// nonzero mean and 1 for a zero mean.
    pub fn p_value(&self) -> Option<f64> {
        if self.n < 2 || !self.sd.is_finite() {
            return None;
        }
        if self.sd == 0.0 {
            return Some(if self.mean == 0.0 { 1.0 } else { 0.0 });
        }
        let t = self.mean / (self.sd / (self.n as f64).sqrt());
        Some(t_two_sided_p(t, (self.n - 1) as f64))
    }

    /// The largest |difference| the 95% interval allows: the interval supports "the
    /// two do not differ by more than this" (an equivalence bound at 95%, as the two
    /// one-sided tests at 2.5% each). None for one value.
    pub fn equivalence_bound(&self) -> Option<f64> {
        self.ci.map(|(lo, hi)| lo.abs().max(hi.abs()))
    }
}

/// Holm's step-down adjustment of `p_values` (one family of tests), in their order:
/// the k-th smallest is multiplied by (m - k + 1), made monotone and capped at 1. It
/// controls the family-wise error rate under any dependence between the tests.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (k, &i) in order.iter().enumerate() {
        running = running.max(((m - k) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// P(|T| > |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2).
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return if t.is_nan() { f64::NAN } else { 0.0 };
    }
    regularized_beta(df / (df + t * t), df / 2.0, 0.5)
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction
/// (Lentz's method), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where it
/// converges faster.
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let log_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        log_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - log_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |acc, (i, g)| acc + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (two-sided 95%).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        // Beyond the table: the normal quantile plus the first-order correction.
        _ => 1.959_964 + 2.4 / df as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_interval() {
        // 1, 2, 3: mean 2, sd 1, half-width t(2) * 1 / sqrt(3) = 4.303 / 1.732 = 2.4843.
        let e = Estimate::of(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((e.mean, e.sd, e.n), (2.0, 1.0, 3));
        let (lo, hi) = e.ci.unwrap();
        assert!(
            (hi - 2.0 - 4.303 / 3f64.sqrt()).abs() < 1e-9 && (2.0 - lo - (hi - 2.0)).abs() < 1e-12
        );
        assert_eq!(e.display(2), "2.00 ± 2.48");
        // [-0.48, 4.48] holds zero; 10, 11, 12 gives [8.52, 13.48], which does not.
        assert!(!e.excludes_zero());
        assert!(Estimate::of(&[10.0, 11.0, 12.0]).unwrap().excludes_zero());
        assert!(Estimate::of(&[-10.0, -11.0, -12.0])
            .unwrap()
            .excludes_zero());
    }

    #[test]
    fn one_value_has_no_interval_and_non_finite_values_are_left_out() {
        let e = Estimate::of(&[4.5, f64::INFINITY, f64::NAN]).unwrap();
        assert_eq!((e.mean, e.n, e.ci), (4.5, 1, None));
        assert!(!e.excludes_zero());
        assert_eq!(e.display(3), "4.500");
        assert!(Estimate::of(&[]).is_none());
    }

    #[test]
    fn t_test_p_values_match_the_tables() {
        // At the 97.5% quantile the two-sided p is 0.05, for every df in the table.
        for df in [1usize, 2, 4, 10, 30] {
            let p = t_two_sided_p(t_975(df), df as f64);
            assert!((p - 0.05).abs() < 2e-4, "df {df}: p {p}");
        }
        // df 1 is Cauchy: P(|T| > 1) = 1/2 exactly.
        assert!((t_two_sided_p(1.0, 1.0) - 0.5).abs() < 1e-12);
        assert!((t_two_sided_p(0.0, 5.0) - 1.0).abs() < 1e-12);
        // 1, 2, 3: t = 2 / (1 / sqrt 3) = 3.464, df 2: p = 0.0742 (scipy: 0.07418).
        let p = Estimate::of(&[1.0, 2.0, 3.0]).unwrap().p_value().unwrap();
        assert!((p - 0.07418).abs() < 1e-4, "{p}");
        assert_eq!(Estimate::of(&[1.0]).unwrap().p_value(), None);
    }

    #[test]
    fn holm_multiplies_by_rank_and_stays_monotone() {
        // m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone), 0.5.
        let adjusted = holm(&[0.03, 0.01, 0.5, 0.02]);
        let want = [0.06, 0.04, 0.5, 0.06];
        for (got, want) in adjusted.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.6, 0.7]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn paired_differences_remove_what_the_seeds_share() {
        // Seeds move both conditions together; the difference is always 1.
        let pairs = [(5.0, 4.0), (7.0, 6.0), (3.5, 2.5)];
        let d = paired_difference(&pairs).unwrap();
        assert_eq!((d.mean, d.sd), (1.0, 0.0));
        assert_eq!(d.ci, Some((1.0, 1.0)));
        assert!(d.excludes_zero());
        assert_eq!(d.signed(2), "+1.00 [+1.00, +1.00]");
        assert_eq!(Estimate::of(&[-0.5]).unwrap().signed(1), "-0.5");
        assert!((t_975(1000) - 1.962).abs() < 1e-3);
    }
}
