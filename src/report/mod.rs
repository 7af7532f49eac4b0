//! The comparison report of a study: the seed study's side-by-side table, layer-wise and
//! trajectory tables, as markdown (printed at the end of a sweep) and CSV files.

pub mod load;
pub mod tables;

pub use tables::{build_report, Report, ReportSettings};
