//! What the report shows: the study's `report` section, resolved.

use crate::probe::site_name;
use crate::spec::study::ReportSpec;

/// What the report shows, from the study's `report` section.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Probe site (`k_rope` for the seed study).
    pub site: String,
    /// Probe metric (`study_pr`: the seed study's participation ratio).
    pub metric: String,
    /// Layers below this value are counted as collapsed.
    pub threshold: f64,
    /// Token points of the side-by-side table (empty: the defaults).
    pub at_tokens: Vec<u64>,
    /// Pairs of conditions whose paired differences are shown (empty: every pair).
    pub differences: Vec<(String, String)>,
    /// The comparisons the study was designed to test: the corrected family (empty:
    /// every difference shown).
    pub primary: Vec<(String, String)>,
}

impl ReportSettings {
    pub fn from_spec(spec: &ReportSpec) -> Self {
        ReportSettings {
            site: site_name(spec.site).to_owned(),
            metric: spec.metric.name().to_owned(),
            threshold: spec.layer_threshold,
            at_tokens: spec.at_tokens.clone(),
            differences: spec.differences.clone(),
            primary: spec.primary.clone(),
        }
    }
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings::from_spec(&ReportSpec::default())
    }
}
