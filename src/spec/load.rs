//! Reading a study file: RON text -> `Study`, or diagnostics with file:line:col.

use std::path::Path;

use ron::error::{Error as RonError, SpannedError};

use super::diagnostic::{Diagnostic, Diagnostics};
use super::source::SourceText;
use super::study::Study;
use super::suggest::{help_for, quoted_list};

/// A parsed study with the text it came from (for locating later errors).
#[derive(Debug, Clone)]
pub struct LoadedStudy {
    pub study: Study,
    pub source: SourceText,
}

/// Reads and parses a study file. Syntax and schema errors stop here, with a position.
pub fn load_study(path: &Path) -> Result<LoadedStudy, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Diagnostics(vec![Diagnostic::new(format!(
            "cannot read study file: {err}"
        ))
        .in_file(path)
        .help("pass the path of a .ron study, e.g. experiments/quickstart.ron")])
    })?;
    parse_study(SourceText::new(path, text))
}

/// Parses study text that was read already.
pub fn parse_study(source: SourceText) -> Result<LoadedStudy, Diagnostics> {
    match super::ron_options().from_str::<Study>(&source.text) {
        Ok(study) => Ok(LoadedStudy { study, source }),
        Err(err) => Err(Diagnostics(vec![ron_diagnostic(&source, &err)])),
    }
}

/// Turns a RON error into a diagnostic pointing at the offending text.
pub fn ron_diagnostic(source: &SourceText, err: &SpannedError) -> Diagnostic {
    let (start, end) = (err.span.start, err.span.end);
    let same_line_len = if start.line == end.line {
        end.col.saturating_sub(start.col)
    } else {
        1
    };
    let location = Some(source.location(start.line, start.col, same_line_len));
    let (message, help) = describe(&err.code);
    let diagnostic = Diagnostic::new(message).at(location);
    match help {
        Some(help) => diagnostic.help(help),
        None => diagnostic,
    }
}

/// A message and a fix for each RON error that a person is likely to make.
fn describe(code: &RonError) -> (String, Option<String>) {
    let inside = |outer: &Option<String>| {
        outer
            .as_ref()
            .map(|name| format!(" in `{name}`"))
            .unwrap_or_default()
    };
    match code {
        RonError::NoSuchStructField {
            expected,
            found,
            outer,
        } => (
            format!("unknown field `{found}`{}", inside(outer)),
            Some(help_for(found, expected, "field")),
        ),
        RonError::NoSuchEnumVariant {
            expected,
            found,
            outer,
        } => (
            format!("unknown variant `{found}`{}", inside(outer)),
            Some(help_for(found, expected, "variant")),
        ),
        RonError::MissingStructField { field, outer } => (
            format!("missing field `{field}`{}", inside(outer)),
            Some(format!(
                "add `{field}: ...` here; README.md (\"The study file\") shows every field with an example"
            )),
        ),
        RonError::DuplicateStructField { field, outer } => (
            format!("field `{field}` is given twice{}", inside(outer)),
            Some("keep one of them".to_owned()),
        ),
        RonError::ExpectedComma => (
            "expected `,` before this".to_owned(),
            Some("separate fields and list items with `,` (look at the end of the line above)".to_owned()),
        ),
        RonError::ExpectedMapColon => (
            code.to_string(),
            Some("write map entries as `\"key\": value`".to_owned()),
        ),
        RonError::Eof => (
            code.to_string(),
            Some("a bracket or parenthesis is not closed".to_owned()),
        ),
        RonError::ExpectedDifferentStructName { expected, found } => (
            format!("expected `{expected}` here, found `{found}`"),
            Some(format!("write `{expected}(...)` or just `(...)`")),
        ),
        RonError::InvalidValueForType { expected, found } => (
            format!("expected {expected}, found {found}"),
            None,
        ),
        RonError::ExpectedStructLike | RonError::ExpectedNamedStructLike(_) => (
            code.to_string(),
            Some("a struct is written `(field: value, ...)`".to_owned()),
        ),
        RonError::TrailingCharacters => (
            code.to_string(),
            Some("the study must be a single `(...)` value; remove what follows it".to_owned()),
        ),
        RonError::ExpectedOption => (
            code.to_string(),
            Some(format!("write {} for an optional value", quoted_list(&["None", "Some(...)", "the value"]))),
        ),
        other => (other.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> Diagnostic {
        let err = parse_study(SourceText::new("t.ron", text.to_owned())).unwrap_err();
        err.0.into_iter().next().unwrap()
    }

    #[test]
    fn unknown_top_level_field_points_at_it_with_suggestion() {
        let d = error_of("(\n  name: \"x\",\n  descripton: \"y\",\n)");
        assert_eq!(d.message, "unknown field `descripton` in `Study`");
        assert_eq!(d.help.as_deref(), Some("did you mean `description`?"));
        let loc = d.location.unwrap();
        assert_eq!((loc.line, loc.col), (3, 3));
    }

    #[test]
    fn syntax_error_has_position() {
        let d = error_of("(\n  name: \"x\"\n  base: ()\n)");
        let loc = d.location.clone().unwrap();
        assert_eq!(loc.line, 3, "{}", d);
    }
}
