//! `report.html`: the report as one self-contained page that works offline. The figures
//! are interactive charts drawn by Chart.js (compiled into the binary from
//! `assets/chart.umd.min.js`, MIT, nothing fetched at view time): hover for values,
//! click a legend entry to hide or show a condition, seeds as 95% bands. The tables are
//! sortable by any column. The page marks on `<body>` when it has rendered, how many
//! charts, and any script error, so that a browser test can check it.

use serde_json::{json, Value};

use super::figure_data::{Figures, LayerFigure, LineFigure, PALETTE};

const CHART_JS: &str = include_str!("../../assets/chart.umd.min.js");

/// The page: `title`, the report's markdown summary (shown as text), the figures and the
/// CSV tables.
pub fn page(title: &str, summary: &str, figures: &Figures, tables: &[(String, String)]) -> String {
    let data = json!({
        "colors": PALETTE
            .iter()
            .map(|(r, g, b)| format!("#{r:02x}{g:02x}{b:02x}"))
            .collect::<Vec<_>>(),
        "lines": figures
            .trajectories
            .iter()
            .chain(&figures.probes)
            .chain(&figures.sweep)
            .map(line_json)
            .collect::<Vec<_>>(),
        "layers": layers_json(&figures.layers),
        "tables": tables
            .iter()
            .map(|(name, csv)| json!({ "name": name, "rows": csv_rows(csv) }))
            .collect::<Vec<_>>(),
    });
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body data-status="loading" data-errors="0">
<h1>{title}</h1>
<p class="hint">Hover a chart for values; click a legend entry to hide or show a condition;
click a table header to sort. Shaded bands: 95% confidence intervals over seeds.</p>
<ul id="errors"></ul>
<div id="charts"></div>
<div id="tables"></div>
<details><summary>Summary (as in summary.md)</summary><pre id="summary">{summary}</pre></details>
<script>{CHART_JS}</script>
<script type="application/json" id="data">{data}</script>
<script>{SCRIPT}</script>
</body>
</html>
"#,
        title = escape_html(title),
        summary = escape_html(summary),
        data = script_safe(&data.to_string()),
    )
}

fn line_json(figure: &LineFigure) -> Value {
    json!({
        "title": figure.title,
        "y": figure.y_label,
        "x_axis": figure.x_axis,
        "log_y": figure.log_y,
        "series": figure.series.iter().map(|s| json!({
            "title": s.title,
            "markers": s.markers.iter().map(|&(x, y)| json!({ "x": finite(x), "y": finite(y) })).collect::<Vec<_>>(),
            "points": s.points.iter().map(|&(x, y, ci)| json!({
                "x": finite(x),
                "y": finite(y),
                "lo": ci.map(|c| finite(c.0)),
                "hi": ci.map(|c| finite(c.1)),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn layers_json(figure: &LayerFigure) -> Value {
    json!({
        "title": figure.title,
        "y": figure.y_label,
        "threshold": finite(figure.threshold),
        "threshold_label": figure.threshold_label,
        "bars": figure.bars.iter().map(|(title, layers)| json!({
            "title": title,
            "values": layers.iter().map(|e| e.as_ref().map(|e| json!({
                "mean": finite(e.mean),
                "lo": e.ci.map(|c| finite(c.0)),
                "hi": e.ci.map(|c| finite(c.1)),
            }))).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A value for JSON: an infinite or NaN one (a condition number past float32) has no
/// place on a chart and becomes null.
fn finite(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

/// The rows of a CSV table as written by `report::tables` (quoted fields allowed).
fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut fields = Vec::new();
            let mut field = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' if quoted && chars.peek() == Some(&'"') => {
                        field.push('"');
                        chars.next();
                    }
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut field)),
                    c => field.push(c),
                }
            }
            fields.push(field);
            fields
        })
        .collect()
}

/// Text inside HTML elements.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JSON inside a `<script>` element, made inert there and still valid JSON: every `<`,
/// `>` and `&` (which can only occur inside JSON strings) is written as its `\u` escape,
/// so no `</script>`, `<!--` or `<script` sequence can end or change the element, and
/// U+2028 and U+2029 (line terminators to older JavaScript parsers) as theirs.
fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
.hint { color: #555; font-size: 0.9em; }
#charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1.2em; }
.chart { position: relative; height: 380px; border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
table { border-collapse: collapse; margin: 0.6em 0 1.6em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[data-sorted="asc"]::after { content: " \25B2"; }
th[data-sorted="desc"]::after { content: " \25BC"; }
td:first-child, th:first-child { text-align: left; }
#errors { color: #b00; }
pre { white-space: pre-wrap; }
"#;

const SCRIPT: &str = r##"
"use strict";
const errors = [];
function fail(message) {
  errors.push(String(message));
  document.body.dataset.errors = String(errors.length);
  const li = document.createElement("li");
  li.textContent = "script error: " + message;
  document.getElementById("errors").appendChild(li);
}
window.addEventListener("error", (e) => fail(e.message));
function tokens(x) {
  if (x >= 1e9) return (x / 1e9).toFixed(x % 1e9 ? 1 : 0) + "G";
  if (x >= 1e6) return (x / 1e6).toFixed(x % 1e6 ? 1 : 0) + "M";
  if (x >= 1e3) return (x / 1e3).toFixed(x % 1e3 ? 1 : 0) + "K";
  return String(x);
}
function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}
function box(title) {
  const div = document.createElement("div");
  div.className = "chart";
  const canvas = document.createElement("canvas");
  canvas.setAttribute("aria-label", title);
  div.appendChild(canvas);
  document.getElementById("charts").appendChild(div);
  return canvas;
}
// Clicking a condition in the legend hides or shows its line and its band together.
function toggleGroup(e, item, legend) {
  const chart = legend.chart;
  const group = chart.data.datasets[item.datasetIndex].group;
  const hide = chart.isDatasetVisible(item.datasetIndex);
  chart.data.datasets.forEach((d, i) => { if (d.group === group) chart.setDatasetVisibility(i, !hide); });
  chart.update();
}
const charts = [];
function lineChart(figure) {
  const datasets = [];
  figure.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const banded = s.points.filter((p) => p.lo !== null && p.hi !== null && p.y !== null);
    datasets.push({ label: s.title, group: i, data: s.points.map((p) => ({ x: p.x, y: p.y, lo: p.lo, hi: p.hi })),
      borderColor: color, backgroundColor: color, pointRadius: 3, borderWidth: 2, order: 0 });
    if (s.markers.length) {
      datasets.push({ label: s.title + " (diverged)", group: i, type: "scatter", showLine: false,
        data: s.markers.map((p) => ({ x: p.x, y: p.y })), pointStyle: "crossRot", pointRadius: 7,
        borderColor: color, borderWidth: 2, order: 0 });
    }
    if (banded.length > 1) {
      datasets.push({ label: s.title + " (95% low)", band: true, group: i, data: banded.map((p) => ({ x: p.x, y: p.lo })),
        borderWidth: 0, pointRadius: 0, fill: false, order: 1 });
      datasets.push({ label: s.title + " (95% high)", band: true, group: i, data: banded.map((p) => ({ x: p.x, y: p.hi })),
        borderWidth: 0, pointRadius: 0, fill: "-1", backgroundColor: alpha(color, 0.18), order: 1 });
    }
  });
  return new Chart(box(figure.title), {
    type: "line",
    data: { datasets },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false, parsing: true,
      interaction: { mode: "nearest", intersect: false },
      plugins: {
        title: { display: true, text: figure.title },
        legend: { onClick: toggleGroup, labels: { filter: (item, data) => !data.datasets[item.datasetIndex].band } },
        tooltip: { filter: (item) => !item.dataset.band, callbacks: {
          title: (items) => !items.length ? "" : figure.x_axis ? `${figure.x_axis} = ${items[0].parsed.x}` : tokens(items[0].parsed.x) + " tokens",
          label: (item) => {
            const p = item.raw;
            const ci = p.lo !== null && p.lo !== undefined ? ` (95% CI ${p.lo.toPrecision(4)} to ${p.hi.toPrecision(4)})` : "";
            return `${item.dataset.label}: ${p.y === null ? "-" : p.y.toPrecision(4)}${ci}`;
          } } },
      },
      scales: {
        x: figure.x_axis
          ? { type: "logarithmic", title: { display: true, text: figure.x_axis + " (log scale)" } }
          : { type: "linear", title: { display: true, text: "training tokens" }, ticks: { callback: (v) => tokens(v) } },
        y: { type: figure.log_y ? "logarithmic" : "linear", title: { display: true, text: figure.y } },
      },
    },
  });
}
function layerChart(figure) {
  const n = figure.bars.length ? figure.bars[0].values.length : 0;
  const labels = Array.from({ length: n }, (_, l) => String(l));
  const datasets = figure.bars.map((b, i) => ({
    label: b.title, group: i, type: "bar", backgroundColor: COLORS[i % COLORS.length],
    data: b.values.map((v) => (v ? v.mean : null)), ci: b.values.map((v) => (v && v.lo !== null ? [v.lo, v.hi] : null)),
  }));
  datasets.push({ label: figure.threshold_label, group: -1, type: "line", data: labels.map(() => figure.threshold),
    borderColor: "#000", borderDash: [6, 4], borderWidth: 2, pointRadius: 0 });
  return new Chart(box(figure.title), {
    type: "bar",
    data: { labels, datasets },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: {
        title: { display: true, text: figure.title },
        legend: { onClick: toggleGroup },
        tooltip: { callbacks: { label: (item) => {
          const ci = item.dataset.ci ? item.dataset.ci[item.dataIndex] : null;
          const y = item.parsed.y;
          return `${item.dataset.label}: ${y === null ? "-" : y.toPrecision(4)}` +
            (ci ? ` (95% CI ${ci[0].toPrecision(4)} to ${ci[1].toPrecision(4)})` : "");
        } } },
      },
      scales: { x: { title: { display: true, text: "layer" } }, y: { beginAtZero: true, title: { display: true, text: figure.y } } },
    },
  });
}
function sortable(table) {
  const heads = table.querySelectorAll("th");
  heads.forEach((th, column) => th.addEventListener("click", () => {
    const order = th.dataset.sorted === "asc" ? "desc" : "asc";
    heads.forEach((h) => delete h.dataset.sorted);
    th.dataset.sorted = order;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const key = (row) => row.cells[column].textContent.trim();
    rows.sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      const [nx, ny] = [parseFloat(x), parseFloat(y)];
      const c = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
      return order === "asc" ? c : -c;
    });
    rows.forEach((r) => body.appendChild(r));
  }));
}
function tables(list) {
  const root = document.getElementById("tables");
  for (const t of list) {
    if (!t.rows.length) continue;
    const h = document.createElement("h2");
    h.textContent = t.name;
    root.appendChild(h);
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    t.rows[0].forEach((cell) => { const th = document.createElement("th"); th.textContent = cell; head.appendChild(th); });
    const body = table.createTBody();
    t.rows.slice(1).forEach((r) => { const tr = body.insertRow(); r.forEach((cell) => { tr.insertCell().textContent = cell; }); });
    root.appendChild(table);
    sortable(table);
  }
}
// The same colours as the PNG figures (from the data).
let COLORS = [];
try {
  const data = JSON.parse(document.getElementById("data").textContent);
  COLORS = data.colors;
  for (const figure of data.lines) charts.push(lineChart(figure));
  charts.push(layerChart(data.layers));
  tables(data.tables);
  // What the charts drew, for a browser test: each chart's legend entries.
  document.body.dataset.charts = String(charts.length);
  document.body.dataset.bands = String(charts.reduce((n, c) =>
    n + c.data.datasets.filter((d, i) => d.band && c.isDatasetVisible(i)).length, 0));
  document.body.dataset.legends = JSON.stringify(charts.map((c) =>
    (c.legend && c.legend.legendItems ? c.legend.legendItems : []).map((i) => i.text)));
  document.body.dataset.status = "rendered";
} catch (e) {
  fail(e && e.stack ? e.stack : e);
  document.body.dataset.status = "failed";
}
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes_and_commas_are_read_back() {
        let rows = csv_rows("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n");
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x, y", "say \"hi\""]]);
    }

    #[test]
    fn text_and_data_cannot_end_their_elements() {
        assert_eq!(escape_html("<b>&\""), "&lt;b&gt;&amp;&quot;");
        let hostile = "</script><!-- <script> --> ]]> & &amp; \u{2028}\u{2029} \\ \" '";
        let json = serde_json::json!({ hostile: [hostile], "n": 1.5 }).to_string();
        let safe = script_safe(&json);
        for bad in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
            assert!(!safe.contains(bad), "{bad} in {safe}");
        }
        // Still JSON, and the same value.
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        );
        assert!(!CHART_JS.contains("</script"));
    }
}
