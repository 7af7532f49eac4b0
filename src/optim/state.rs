//! An optimizer's state on the host, by name: what a checkpoint saves and restores
//! without knowing which optimizer wrote it. Restoring takes each item by name and
//! length and refuses a state holding anything the optimizer did not ask for.

use std::collections::BTreeMap;

/// Named step counters and f32 buffers, in the order the optimizer wrote them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState {
    pub counters: Vec<(String, i64)>,
    pub buffers: Vec<(String, Vec<f32>)>,
}

/// Why an optimizer could not continue from a saved state.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreError {
    /// The state is not one this optimizer of this model could have written.
    Misfit(String),
    /// The device failed while taking the state.
    Device(String),
}

impl OptimizerState {
    pub fn counter(&mut self, name: impl Into<String>, value: i64) {
        self.counters.push((name.into(), value));
    }

    pub fn buffer(&mut self, name: impl Into<String>, values: Vec<f32>) {
        self.buffers.push((name.into(), values));
    }

    /// Moves the items whose names start with `prefix` into a state of their own (what
    /// a part of the training step other than the optimizer saved beside it).
    pub fn split_off(&mut self, prefix: &str) -> OptimizerState {
        let (counters, kept) = std::mem::take(&mut self.counters)
            .into_iter()
            .partition(|(name, _)| name.starts_with(prefix));
        self.counters = kept;
        let (buffers, kept) = std::mem::take(&mut self.buffers)
            .into_iter()
            .partition(|(name, _)| name.starts_with(prefix));
        self.buffers = kept;
        OptimizerState { counters, buffers }
    }

    /// The state, to be taken item by item; a name held twice is a misfit.
    pub fn restoring(self) -> Result<Restoring, RestoreError> {
        let mut counters = BTreeMap::new();
        for (name, value) in self.counters {
            if counters.insert(name.clone(), value).is_some() {
                return Err(misfit(format!("it holds the counter `{name}` twice")));
            }
        }
        let mut buffers = BTreeMap::new();
        for (name, values) in self.buffers {
            if buffers.insert(name.clone(), values).is_some() {
                return Err(misfit(format!("it holds the buffer `{name}` twice")));
            }
        }
        Ok(Restoring { counters, buffers })
    }
}

fn misfit(why: String) -> RestoreError {
    RestoreError::Misfit(why)
}

/// A saved state being taken apart by the optimizer that restores it.
#[derive(Debug)]
pub struct Restoring {
    counters: BTreeMap<String, i64>,
    buffers: BTreeMap<String, Vec<f32>>,
}

impl Restoring {
    /// The counter `name`, which must be there.
    pub fn counter(&mut self, name: &str) -> Result<i64, RestoreError> {
        self.counters
            .remove(name)
            .ok_or_else(|| misfit(format!("it has no counter `{name}`")))
    }

    /// The buffer `name` if it is there, which must then hold `len` values.
    pub fn optional_buffer(
        &mut self,
        name: &str,
        len: usize,
    ) -> Result<Option<Vec<f32>>, RestoreError> {
        match self.buffers.remove(name) {
            Some(values) if values.len() != len => Err(misfit(format!(
                "its buffer `{name}` holds {} values, the run's holds {len}",
                values.len()
            ))),
            found => Ok(found),
        }
    }

    /// The buffer `name`, which must be there and hold `len` values.
    pub fn buffer(&mut self, name: &str, len: usize) -> Result<Vec<f32>, RestoreError> {
        self.optional_buffer(name, len)?
            .ok_or_else(|| misfit(format!("it has no buffer `{name}`")))
    }

    /// Done: anything not taken is state of another optimizer or model.
    pub fn finish(self) -> Result<(), RestoreError> {
        let left: Vec<&str> = (self.counters.keys())
            .chain(self.buffers.keys())
            .map(String::as_str)
            .collect();
        match left.as_slice() {
            [] => Ok(()),
            [first, ..] => Err(misfit(format!(
                "it holds {} item(s) this run's optimizer does not have (`{first}` first)",
                left.len()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> OptimizerState {
        let mut state = OptimizerState::default();
        state.counter("a.step", 3);
        state.buffer("a.m.0", vec![1.0, 2.0]);
        state.buffer("a.m.2", vec![3.0]);
        state
    }

    #[test]
    fn items_are_taken_by_name_and_length_and_nothing_may_be_left() {
        let mut r = state().restoring().unwrap();
        assert_eq!(r.counter("a.step"), Ok(3));
        assert_eq!(r.optional_buffer("a.m.1", 5), Ok(None));
        assert_eq!(r.buffer("a.m.0", 2), Ok(vec![1.0, 2.0]));
        assert_eq!(
            r.finish().unwrap_err(),
            misfit("it holds 1 item(s) this run's optimizer does not have (`a.m.2` first)".into())
        );
    }

    #[test]
    fn split_off_moves_the_items_under_a_prefix_and_keeps_the_rest_in_order() {
        let mut all = state();
        all.counter("b.count.0", 7);
        all.buffer("b.min", vec![0.5]);
        let part = all.split_off("b.");
        assert_eq!(part.counters, vec![("b.count.0".to_owned(), 7)]);
        assert_eq!(part.buffers, vec![("b.min".to_owned(), vec![0.5])]);
        assert_eq!(all, state());
        assert_eq!(all.split_off("c."), OptimizerState::default());
    }

    #[test]
    fn each_misfit_is_named() {
        let says = |result: Result<(), RestoreError>, text: &str| match result {
            Err(RestoreError::Misfit(why)) => assert!(why.contains(text), "{text}: {why}"),
            other => panic!("{text}: {other:?}"),
        };
        let mut r = state().restoring().unwrap();
        says(r.counter("b.step").map(drop), "no counter `b.step`");
        says(
            r.buffer("a.m.0", 3).map(drop),
            "holds 2 values, the run's holds 3",
        );
        says(r.buffer("a.m.9", 3).map(drop), "no buffer `a.m.9`");
        let mut twice = state();
        twice.buffer("a.m.0", vec![]);
        says(twice.restoring().map(drop), "`a.m.0` twice");
    }
}
