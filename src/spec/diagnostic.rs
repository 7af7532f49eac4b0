//! Errors in a study, shown the way a compiler shows them: what, where, how to fix.

use std::fmt;
use std::path::Path;

use super::source::Location;

/// One problem with a study file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub location: Option<Location>,
    /// Which runs the problem applies to, when it is not the base config's.
    pub runs: Vec<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// The file, when no position inside it is known.
    pub file: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            location: None,
            runs: Vec::new(),
            help: None,
            file: None,
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub fn in_file(mut self, path: &Path) -> Self {
        self.file = Some(path.display().to_string());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn for_runs(mut self, runs: Vec<String>) -> Self {
        self.runs = runs;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", printable(&self.message))?;
        match &self.location {
            Some(loc) => {
                let number = loc.line.to_string();
                let gutter = " ".repeat(number.len());
                writeln!(
                    f,
                    "{gutter}--> {}:{}:{}",
                    loc.file.display(),
                    loc.line,
                    loc.col
                )?;
                writeln!(f, "{gutter} |")?;
                writeln!(f, "{number} | {}", printable(&loc.line_text))?;
                let pad: String = loc
                    .line_text
                    .chars()
                    .take(loc.col.saturating_sub(1))
                    .map(|c| printable(&c.to_string()))
                    .map(|shown| {
                        if shown == "\t" {
                            shown
                        } else {
                            " ".repeat(shown.chars().count())
                        }
                    })
                    .collect();
                writeln!(f, "{gutter} | {pad}{}", "^".repeat(loc.len))?;
            }
            None => {
                if let Some(file) = &self.file {
                    writeln!(f, " --> {file}")?;
                }
            }
        }
        if !self.runs.is_empty() {
            writeln!(
                f,
                "  = in run{}: {}",
                plural(self.runs.len()),
                self.runs.join(", ")
            )?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {}", printable(help))?;
        }
        Ok(())
    }
}

/// `text` safe for a terminal: control characters other than tab and newline (an
/// escape sequence in a study could clear the screen) are shown as `\u{1b}`.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' && c != '\n' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `text` from a file (a label, a condition, a run directory's name) as one line safe for
/// a terminal: every control character, newlines and tabs included, shown escaped.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// All the problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.0 {
            writeln!(f, "{diagnostic}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{} found", plural(n))
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::source::SourceText;

    #[test]
    fn renders_location_snippet_and_help() {
        let source = SourceText::new("e.ron", "(\n    d_modle: 512,\n)".to_owned());
        let diagnostic = Diagnostic::new("unknown field `d_modle`")
            .at(Some(source.location(2, 5, 7)))
            .help("did you mean `d_model`?");
        let shown = diagnostic.to_string();
        assert_eq!(
            shown,
            "error: unknown field `d_modle`\n --> e.ron:2:5\n  |\n2 |     d_modle: 512,\n  |     ^^^^^^^\n  = help: did you mean `d_model`?\n"
        );
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\tc"), "a\\u{1b}[2Jb\tc");
        let source = SourceText::new("e.ron", "(x: \"\u{1b}[2J\", y: 1)".to_owned());
        let shown = Diagnostic::new("bad \u{7}")
            .at(Some(source.location(1, 17, 1)))
            .help("fix")
            .to_string();
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{shown:?}"
        );
        assert!(shown.contains("(x: \"\\u{1b}[2J\", y: 1)"), "{shown}");
    }
}
