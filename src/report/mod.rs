//! The comparison report of a study: the seed study's side-by-side table, layer-wise and
//! trajectory tables, as markdown (printed at the end of a sweep) and CSV files, PNG
//! figures, and one interactive page (`report.html`) with the same figures and tables.

mod collect;
mod comparisons;
pub mod conditions;
mod context;
pub mod figure_data;
mod findings;
pub mod html;
pub mod load;
pub mod lr_sweep;
mod lr_tables;
pub mod plots;
pub mod settings;
pub mod stats;
pub mod table_text;
pub mod tables;
pub mod write;

pub use settings::ReportSettings;
pub use tables::{build_report, Report};
