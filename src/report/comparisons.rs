//! The paired differences the report tests, as one family: each (pair of conditions,
//! quantity) gets its paired-t p-value, and Holm's correction runs over the family (the
//! study's `primary` comparisons when it names them, else every difference shown). A
//! difference counts as shown only when its Holm-adjusted p is below 0.05; a difference
//! outside the primary family is exploratory and never counted.

use super::conditions::{difference, Condition, Quantity};
use super::context::{compared, Context};
use super::stats::{holm, Estimate};

/// The level the family is tested at.
pub const ALPHA: f64 = 0.05;

/// One tested difference a − b of one quantity.
#[derive(Debug, Clone, Copy)]
pub struct Tested {
    pub estimate: Estimate,
    /// The paired t-test's two-sided p (None for one seed).
    pub p: Option<f64>,
    /// Holm-adjusted over the family; None for an exploratory difference or one seed.
    pub p_holm: Option<f64>,
}

impl Tested {
    /// Whether the family-wise test rejects "no difference".
    pub fn shown(&self) -> bool {
        self.p_holm.is_some_and(|p| p < ALPHA)
    }

    /// A table cell: "+0.525 [+0.250, +0.801] p=0.012 p_Holm=0.048 *".
    pub fn cell(&self, digits: usize) -> String {
        let mut cell = self.estimate.signed(digits);
        if let Some(p) = self.p {
            cell += &format!(" p={}", p_text(p));
        }
        match self.p_holm {
            Some(p) => {
                cell += &format!(
                    " p_Holm={}{}",
                    p_text(p),
                    if self.shown() { " *" } else { "" }
                )
            }
            None if self.p.is_some() => cell += " (exploratory)",
            None => {}
        }
        cell
    }
}

/// "0.012", "<0.001".
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        "<0.001".to_owned()
    } else {
        format!("{p:.3}")
    }
}

/// The tested differences of one pair of conditions, one per compared quantity.
pub struct PairTests<'c, 'a> {
    pub a: &'c Condition<'a>,
    pub b: &'c Condition<'a>,
    /// Whether the pair is in the corrected family.
    pub primary: bool,
    pub cells: Vec<(&'c Quantity, Option<Tested>)>,
}

impl PairTests<'_, '_> {
    /// The number of seeds paired.
    pub fn n(&self) -> usize {
        (self.cells.iter())
            .filter_map(|(_, t)| t.map(|t| t.estimate.n))
            .max()
            .unwrap_or(0)
    }
}

/// Every pair of `context.pairs` tested, with Holm's correction over the family.
pub fn tested_pairs<'c, 'a>(context: &'c Context<'a>) -> Vec<PairTests<'c, 'a>> {
    let quantities = compared(context);
    let named = |(a, b): (usize, usize)| {
        let (a, b) = (&context.conditions[a], &context.conditions[b]);
        (a.name.clone(), b.name.clone())
    };
    let primary = &context.settings.primary;
    let mut pairs: Vec<PairTests> = (context.pairs.iter())
        .map(|&(a, b)| PairTests {
            a: &context.conditions[a],
            b: &context.conditions[b],
            primary: primary.is_empty() || primary.contains(&named((a, b))),
            cells: (quantities.iter())
                .map(|q| {
                    let d = difference(&context.conditions[a], &context.conditions[b], &*q.value);
                    let tested = d.map(|estimate| Tested {
                        estimate,
                        p: estimate.p_value(),
                        p_holm: None,
                    });
                    (*q, tested)
                })
                .collect(),
        })
        .collect();
    let family: Vec<(usize, usize, f64)> = (pairs.iter().enumerate())
        .filter(|(_, pair)| pair.primary)
        .flat_map(|(i, pair)| {
            (pair.cells.iter().enumerate())
                .filter_map(move |(j, (_, t))| Some((i, j, t.as_ref()?.p?)))
        })
        .collect();
    let adjusted = holm(&family.iter().map(|&(_, _, p)| p).collect::<Vec<_>>());
    for (&(i, j, _), p) in family.iter().zip(adjusted) {
        if let Some(tested) = pairs[i].cells[j].1.as_mut() {
            tested.p_holm = Some(p);
        }
    }
    pairs
}

/// How many tests the corrected family holds.
pub fn family_size(pairs: &[PairTests]) -> usize {
    (pairs.iter())
        .flat_map(|p| &p.cells)
        .filter(|(_, t)| t.is_some_and(|t| t.p_holm.is_some()))
        .count()
}
