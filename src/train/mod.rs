//! Training one run: model, optimizer, schedule, loss, evaluation; observations go to a
//! `TrainObserver` (the store and the progress display live downstream).

pub mod checkpoint;
mod checkpoint_decode;
mod checkpoint_v1;
#[cfg(feature = "cuda")]
pub mod cublas_math;
#[cfg(feature = "cuda")]
pub mod cuda_memory;
pub mod device;
mod evaluation;
pub mod interrupt;
pub mod observer;
pub mod options;
pub mod outcome;
pub mod run;
mod run_loop;
pub mod schedule;
pub mod subnormals;

pub use observer::{MetricRow, Split, TrainObserver};
pub use options::{CheckpointPolicy, TrainOptions};
pub use outcome::{Outcome, TrainError};
pub use run::{check_trainable, train_run};
