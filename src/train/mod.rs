//! Training one run: model, optimizer, schedule, loss, evaluation; observations go to a
//! `TrainObserver` (the store and the progress display live downstream).

pub mod interrupt;
pub mod observer;
pub mod run;
pub mod schedule;

pub use observer::{MetricRow, Split, TrainObserver};
pub use run::{train_run, Outcome, TrainError};
