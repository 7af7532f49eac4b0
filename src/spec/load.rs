//! Reading a study file: RON text -> `Study`, or diagnostics with file:line:col.

use std::path::Path;

use ron::error::{Error as RonError, SpannedError};

use super::diagnostic::{Diagnostic, Diagnostics};
use super::source::{Location, SourceText};
use super::study::{Study, OVERRIDE_TWICE};
use super::suggest::{help_for, quoted_list};

/// A parsed study with the text it came from (for locating later errors).
#[derive(Debug, Clone)]
pub struct LoadedStudy {
    pub study: Study,
    pub source: SourceText,
}

/// A study is a few kilobytes of text; reading stops past this, so that a wrong path
/// (a data file, `/dev/zero`) is refused instead of read until memory runs out.
pub const MAX_STUDY_BYTES: u64 = 4 << 20;

/// Reads and parses a study file. Syntax and schema errors stop here, with a position.
pub fn load_study(path: &Path) -> Result<LoadedStudy, Diagnostics> {
    let text = read_study_text(path)?;
    parse_study(SourceText::new(path, text))
}

/// The study file's text: a regular file (or a pipe) of at most `MAX_STUDY_BYTES` UTF-8
/// bytes. A leading byte-order mark becomes a space, so columns stay right.
fn read_study_text(path: &Path) -> Result<String, Diagnostics> {
    use std::io::Read;
    let fail = |message: String, help: &str| {
        Diagnostics(vec![Diagnostic::new(message).in_file(path).help(help)])
    };
    let usage = "pass the path of a .ron study, e.g. experiments/quickstart.ron";
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(fail("the study path is a directory".to_owned(), usage));
    }
    let mut bytes = Vec::new();
    crate::regular_file::open(path)
        .and_then(|file| file.take(MAX_STUDY_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|err| fail(format!("cannot read study file: {err}"), usage))?;
    if bytes.len() as u64 > MAX_STUDY_BYTES {
        return Err(fail(
            format!(
                "the study file is larger than {} MiB",
                MAX_STUDY_BYTES >> 20
            ),
            "a study is a small RON text file; check the path",
        ));
    }
    let mut text = String::from_utf8(bytes).map_err(|err| {
        let bytes = err.as_bytes();
        let valid = &bytes[..err.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).expect("valid up to here");
        let line = valid.matches('\n').count() + 1;
        let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let byte = bytes[valid.len()];
        fail(
            format!("the study file is not UTF-8 text: byte 0x{byte:02x} at {line}:{col}"),
            "save the file as UTF-8",
        )
    })?;
    if text.starts_with('\u{feff}') {
        text.replace_range(..'\u{feff}'.len_utf8(), " ");
    }
    Ok(text)
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
    let location = source.location(start.line, start.col, same_line_len);
    let (message, help) = match fraction_at(&location) {
        Some(number) => (
            format!("`{number}` is not a whole number"),
            Some(format!(
                "this field takes an integer (a count or a size): write e.g. `{}`",
                number.split(['.', 'e', 'E']).next().unwrap_or("1")
            )),
        ),
        None => describe(&err.code),
    };
    // A string left open swallows the text after it; the parser fails far below. Point
    // at the opening quote of a string that spans lines up to the failure.
    if let Some((opening, lines)) = source.open_string_before(&location) {
        return Diagnostic::new(format!("{message} (at {}:{})", location.line, location.col))
            .at(Some(opening))
            .help(format!(
                "the string that opens here runs over {lines} lines to where parsing failed: \
                 is its closing `\"` missing?"
            ));
    }
    let diagnostic = Diagnostic::new(message).at(Some(location));
    match help {
        Some(help) => diagnostic.help(help),
        None => diagnostic,
    }
}

/// The number written at `location` when the parser stopped inside it at a fraction or
/// an exponent (`16.5` where an integer belongs: RON reports "expected `,`" at the `.`).
fn fraction_at(location: &Location) -> Option<String> {
    let line: Vec<char> = location.line_text.chars().collect();
    let at = location.col.checked_sub(1)?;
    let next = *line.get(at)?;
    let digit_follows = line
        .get(at + 1)
        .is_some_and(|c| c.is_ascii_digit() || *c == '-');
    if !matches!(next, '.' | 'e' | 'E') || !digit_follows {
        return None;
    }
    let start = line[..at]
        .iter()
        .rposition(|c| !(c.is_ascii_digit() || *c == '_'))
        .map_or(0, |i| i + 1);
    let end = line[at + 1..]
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
        .map_or(line.len(), |i| at + 1 + i);
    (start < at).then(|| line[start..end].iter().collect())
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
            Some(format!("write {expected} here; README.md (\"The study file\") shows every field")),
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
        RonError::Message(message) if message.starts_with(OVERRIDE_TWICE) => (
            message.clone(),
            Some("keep one of them: a map would silently keep the last".to_owned()),
        ),
        RonError::ExpectedFloat | RonError::ExpectedInteger | RonError::IntegerOutOfBounds
        | RonError::InvalidIntegerDigit { .. } | RonError::FloatUnderscore => (
            code.to_string(),
            Some("write a plain number here, e.g. `16` or `0.02`".to_owned()),
        ),
        RonError::ExpectedString | RonError::ExpectedStringEnd | RonError::InvalidEscape(_) => (
            code.to_string(),
            Some("write text in double quotes, e.g. `\"A1\"`; escapes are \\\" \\\\ \\n \\t \\u{..}".to_owned()),
        ),
        RonError::ExpectedIdentifier => (
            "expected a field name here".to_owned(),
            Some(
                "a struct is written `(field: value, ...)`; an optional struct is written \
                 without `Some`, e.g. `qk_clip: (tau: 15.0)`"
                    .to_owned(),
            ),
        ),
        RonError::ExpectedBoolean => (code.to_string(), Some("write `true` or `false`".to_owned())),
        RonError::ExpectedArray | RonError::ExpectedArrayEnd => (
            code.to_string(),
            Some("a list is written `[a, b, c]`".to_owned()),
        ),
        RonError::ExpectedMap | RonError::ExpectedMapEnd => (
            code.to_string(),
            Some("a map is written `{\"key\": value, ...}`".to_owned()),
        ),
        RonError::UnclosedBlockComment | RonError::UnclosedLineComment => (
            code.to_string(),
            Some("close the comment with `*/`".to_owned()),
        ),
        other => (
            other.to_string(),
            Some("README.md (\"The study file\") shows the form of every field".to_owned()),
        ),
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
    fn an_optional_struct_written_with_some_is_told_to_drop_it() {
        let text = include_str!("../../tests/studies/tiny.ron").replace(
            "qk_norm: RmsNorm(gain: Learnable),",
            "qk_norm: None, qk_clip: Some((tau: 4.0)),",
        );
        assert!(text.contains("qk_clip: Some"), "the tiny study changed");
        let shown = error_of(&text).to_string();
        assert!(shown.contains("expected a field name here"), "{shown}");
        assert!(
            shown.contains("without `Some`, e.g. `qk_clip: (tau: 15.0)`"),
            "{shown}"
        );
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

    #[test]
    fn study_files_are_read_within_bounds_as_utf8_with_or_without_a_bom() {
        let dir = std::env::temp_dir().join(format!("rankprobe-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string("tests/studies/tiny.ron").unwrap();
        let read = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            load_study(&path).map(|_| ()).map_err(|d| d.to_string())
        };
        assert_eq!(read("plain.ron", text.as_bytes()), Ok(()));
        let bom = [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat();
        assert_eq!(read("bom.ron", &bom), Ok(()));
        let cafe = text.replace("test fixture", "Café 🦀 ✓");
        assert_eq!(read("cafe.ron", cafe.as_bytes()), Ok(()));
        let latin1 = [b"(\n  name: \"caf".as_slice(), b"\xe9\"", b")"].concat();
        let err = read("latin1.ron", &latin1).unwrap_err();
        assert!(err.contains("not UTF-8 text: byte 0xe9 at 2:13"), "{err}");
        let huge = vec![b' '; MAX_STUDY_BYTES as usize + 1];
        let err = read("huge.ron", &huge).unwrap_err();
        assert!(err.contains("larger than 4 MiB"), "{err}");
        let err = load_study(&dir).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
