//! The tables every run writes one file of.

/// A table every run writes one file of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Metrics,
    Probes,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Metrics, Table::Probes];

    /// The table's directory in the study directory.
    pub fn dir_name(self) -> &'static str {
        match self {
            Table::Metrics => "metrics",
            Table::Probes => "probes",
        }
    }

    /// The name the manifest's checksums and messages use (`metrics.parquet`).
    pub fn file_name(self) -> &'static str {
        match self {
            Table::Metrics => super::metrics::METRICS_FILE,
            Table::Probes => super::probes::PROBES_FILE,
        }
    }
}
