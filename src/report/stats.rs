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
