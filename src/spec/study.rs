//! A study file: name, execution settings, the base run config and the sweep axes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::run_config::{ProbeMetric, RunConfig, Site, Stage, Tensor};

/// The top level of a `.ron` study file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    /// Names the results directory `results/<name>/`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub execution: Execution,
    /// The configuration every run starts from.
    pub base: RunConfig,
    /// Axes whose cartesian product (in order) is the run matrix. Empty: one run.
    #[serde(default)]
    pub sweep: Vec<Axis>,
    /// What the comparison report shows. Not part of run ids.
    #[serde(default)]
    pub report: ReportSpec,
}

/// The comparison report's choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// Token points of the side-by-side table; empty: the last probe and the probe
    /// nearest 2/3 of the budget.
    #[serde(default)]
    pub at_tokens: Vec<u64>,
    /// The probe site the tables and figures show.
    #[serde(default = "default_site")]
    pub site: Site,
    /// The rank metric they show.
    #[serde(default = "default_metric")]
    pub metric: ProbeMetric,
    /// Layers whose value is below this count as collapsed.
    #[serde(default = "default_threshold")]
    pub layer_threshold: f64,
    /// Pairs of conditions (a, b) whose paired differences a - b the report shows, e.g.
    /// [("A1", "A2")]; empty: every pair, in matrix order.
    #[serde(default)]
    pub differences: Vec<(String, String)>,
    /// The comparisons the study was designed to test (pairs as in `differences`):
    /// the Holm correction runs over these alone, and every other difference is
    /// marked exploratory. Empty: every difference shown is one family.
    #[serde(default)]
    pub primary: Vec<(String, String)>,
}

fn default_site() -> Site {
    Site {
        tensor: Tensor::K,
        after: Stage::Rope,
    }
}

fn default_metric() -> ProbeMetric {
    ProbeMetric::StudyPr
}

fn default_threshold() -> f64 {
    10.0
}

impl Default for ReportSpec {
    fn default() -> Self {
        ReportSpec {
            at_tokens: Vec::new(),
            site: default_site(),
            metric: default_metric(),
            layer_threshold: default_threshold(),
            differences: Vec::new(),
            primary: Vec::new(),
        }
    }
}

/// How and where runs execute. Not part of the run id: the same study on another
/// machine keeps its run ids, so results can be resumed and merged across machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    #[serde(default)]
    pub device: Device,
    /// f32 matrix products on TF32 tensor cores (10-bit mantissa operands, f32
    /// accumulation) on CUDA: several times faster on Ampere and later GPUs, and a
    /// different rounding than f32, so off unless asked for. The CPU has no TF32.
    #[serde(default)]
    pub tf32: bool,
    /// Checkpoint every this many training tokens (in addition to the time rule).
    #[serde(default)]
    pub checkpoint_every_tokens: Option<u64>,
    /// Checkpoint when this many minutes have passed since the last one; 0 turns the
    /// time rule off. A run also checkpoints when it is interrupted.
    #[serde(default = "default_checkpoint_minutes")]
    pub checkpoint_every_minutes: f64,
    /// Keep a finished run's whole final state (optimizer state too, as a checkpoint:
    /// `runs/<name>/final_state.bin`), not only its final weights. Not part of run ids.
    #[serde(default)]
    pub keep_final_state: bool,
    /// Diverged runs are results, not failures: a learning-rate sweep expects its
    /// highest rates to diverge. `sweep` then exits 0 when every run is done or
    /// diverged, and the report counts them. Not part of run ids.
    #[serde(default)]
    pub divergence_expected: bool,
}

fn default_checkpoint_minutes() -> f64 {
    10.0
}

impl Default for Execution {
    fn default() -> Self {
        Execution {
            device: Device::default(),
            tf32: false,
            checkpoint_every_tokens: None,
            checkpoint_every_minutes: default_checkpoint_minutes(),
            keep_final_state: false,
            divergence_expected: false,
        }
    }
}

/// Compute device for training and probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Device {
    /// CUDA device 0 when the binary has CUDA support and a GPU is present, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    /// Parses the command-line spelling: `auto`, `cpu`, `cuda` or `cuda:N`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{text}`; use auto, cpu, cuda or cuda:N")),
        }
    }
}

/// One dimension of the run matrix. Each axis is a list of points; a point sets fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Axis {
    /// Named conditions, each a set of overrides (`A1`, `A2`, ...).
    Conditions(Vec<Condition>),
    /// One field path over a list of values.
    Grid(GridAxis),
    /// Several grid axes advanced together (equal lengths); labels are joined.
    Zip(Vec<GridAxis>),
    /// Sugar for a grid over `seed`, labelled `s<seed>`.
    Seeds(Vec<u64>),
    /// `points` log-spaced numbers from `from` to `to` (both included) at one path,
    /// each rounded to 3 significant digits, labelled `<prefix><value>` (`lr3e-3`;
    /// the prefix defaults to the path's last field). The report draws results
    /// against it as an x-axis.
    LogGrid(LogGridAxis),
}

/// A log-spaced numeric axis: see `Axis::LogGrid`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogGridAxis {
    pub path: String,
    pub from: f64,
    pub to: f64,
    pub points: usize,
    #[serde(default)]
    pub prefix: Option<String>,
}

impl Axis {
    pub fn kind(&self) -> &'static str {
        match self {
            Axis::Conditions(_) => "Conditions",
            Axis::Grid(_) => "Grid",
            Axis::Zip(_) => "Zip",
            Axis::Seeds(_) => "Seeds",
            Axis::LogGrid(_) => "LogGrid",
        }
    }
}

/// A named set of overrides: field path -> RON value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, deserialize_with = "overrides_given_once")]
    pub set: BTreeMap<String, RonValue>,
}

/// Message prefix of a path given twice in one `set` (`load` adds the fix).
pub const OVERRIDE_TWICE: &str = "override path given twice in one condition";

/// A condition's overrides, refusing a path given twice (a map would keep the last one
/// without a word).
fn overrides_given_once<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, RonValue>, D::Error> {
    struct Overrides;
    impl<'de> serde::de::Visitor<'de> for Overrides {
        type Value = BTreeMap<String, RonValue>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of \"field.path\": value")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut set = BTreeMap::new();
            while let Some((path, value)) = map.next_entry::<String, RonValue>()? {
                if set.contains_key(&path) {
                    return Err(serde::de::Error::custom(format!(
                        "{OVERRIDE_TWICE}: `{path}`"
                    )));
                }
                set.insert(path, value);
            }
            Ok(set)
        }
    }
    deserializer.deserialize_map(Overrides)
}

/// A field path and the values it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridAxis {
    pub path: String,
    pub values: Vec<RonValue>,
    /// One label per value; generated from the path and value when absent.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

/// A RON value kept as text until the path it is applied to gives it a type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RonValue(pub String);

impl RonValue {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<ron::value::RawValue>::deserialize(deserializer)?;
        Ok(RonValue(raw.trim().get_ron().to_owned()))
    }
}

impl Serialize for RonValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = ron::value::RawValue::from_ron(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parses_command_line_spellings() {
        assert_eq!("auto".parse(), Ok(Device::Auto));
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert!("gpu".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }
}
