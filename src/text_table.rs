//! Plain-text tables with aligned columns, for the terminal.

/// A table: a header row and data rows of the same width.
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn new(header: Vec<String>) -> Self {
        TextTable {
            header,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(
            row.len(),
            self.header.len(),
            "row width must match the header"
        );
        self.rows.push(row);
    }

    /// Columns padded to their widest cell, separated by two spaces, a rule under the header.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|col| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|row| row[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |row: &[String]| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, &width)| format!("{cell:<width$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        };
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        let mut out = vec![line(&self.header), rule.join("  ")];
        out.extend(self.rows.iter().map(|row| line(row)));
        out.join("\n") + "\n"
    }
}

/// 25000000 -> "25M", 500000 -> "500K", 1500 -> "1.5K", 88634368 -> "88.6M".
pub fn human_count(n: u64) -> String {
    let (value, unit) = match n {
        n if n >= 1_000_000_000 => (n as f64 / 1e9, "G"),
        n if n >= 1_000_000 => (n as f64 / 1e6, "M"),
        n if n >= 1_000 => (n as f64 / 1e3, "K"),
        n => return n.to_string(),
    };
    let text = format!("{value:.1}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut table = TextTable::new(vec!["a".into(), "long".into()]);
        table.push(vec!["xyz".into(), "1".into()]);
        assert_eq!(table.render(), "a    long\n---  ----\nxyz  1\n");
    }

    #[test]
    fn human_counts() {
        assert_eq!(human_count(25_000_000), "25M");
        assert_eq!(human_count(88_634_368), "88.6M");
        assert_eq!(human_count(1_500), "1.5K");
        assert_eq!(human_count(999), "999");
    }
}
