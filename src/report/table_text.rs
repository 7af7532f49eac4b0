//! Tables as text: one table as markdown and as CSV, and the cells in them.

/// A table cell: "-" when missing or NaN, "inf" for a value beyond what the data
/// resolves (a condition number past float32 precision).
pub fn fmt(value: Option<f64>, digits: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        Some(v) if v.is_infinite() => if v > 0.0 { "inf" } else { "-inf" }.to_owned(),
        _ => "-".to_owned(),
    }
}

/// A markdown table and the same table as CSV.
pub fn table(header: &[String], rows: &[Vec<String>]) -> (String, String) {
    let mut md = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    let mut csv = header.join(",") + "\n";
    for row in rows {
        md += &format!("| {} |\n", row.join(" | "));
        csv += &(row
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",")
            + "\n");
    }
    (md, csv)
}

/// A CSV field, quoted when it holds a comma or a quote.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
