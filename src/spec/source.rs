//! The text of a study file, and where things are in it.
//!
//! Serde errors carry positions, but semantic errors found after parsing (an impossible
//! shape, a bad override) do not. This finds the `key:` or `"string"` they refer to, so
//! every message can still point at file:line:col.

use std::path::{Path, PathBuf};

/// A point in a source file, ready to be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// Characters to underline (at least 1).
    pub len: usize,
    /// The whole source line, for the snippet.
    pub line_text: String,
}

/// A study file's path and text.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Ident(String),
    Str(String),
    Colon,
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// Byte offsets in the text.
    start: usize,
    end: usize,
}

impl SourceText {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let tokens = tokenize(&text);
        SourceText {
            path: path.into(),
            text,
            tokens,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The location at a 1-based line and column, underlining `len` characters.
    pub fn location(&self, line: usize, col: usize, len: usize) -> Location {
        let line_text = self.text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        Location {
            file: self.path.clone(),
            line,
            col,
            len: len.max(1),
            line_text: line_text.to_owned(),
        }
    }

    fn location_of_bytes(&self, start: usize, end: usize) -> Location {
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..start].chars().count() + 1;
        let len = self.text[start..end]
            .chars()
            .take_while(|&c| c != '\n')
            .count();
        self.location(line, col, len)
    }

    /// Finds nested `key:` entries in order, e.g. `["base", "model", "d_model"]`, and
    /// returns the last key's location. Keys are matched in textual order, which is
    /// exact for a path that is written once (as every field of the base config is).
    pub fn find_key_path(&self, path: &[&str]) -> Option<Location> {
        let mut from = 0;
        let mut found = None;
        for segment in path {
            let index = (from..self.tokens.len().saturating_sub(1)).find(|&i| {
                self.tokens[i].kind == TokenKind::Ident((*segment).to_owned())
                    && self.tokens[i + 1].kind == TokenKind::Colon
            })?;
            found = Some(index);
            from = index + 1;
        }
        let token = &self.tokens[found?];
        Some(self.location_of_bytes(token.start, token.end))
    }

    /// The first string literal equal to `content` at or after `after`'s position
    /// (the start of the file when `after` is `None`).
    pub fn find_string(&self, content: &str, after: Option<&Location>) -> Option<Location> {
        let min_offset = after.map_or(0, |loc| self.offset_of(loc));
        self.tokens
            .iter()
            .filter(|t| t.start >= min_offset)
            .find(|t| t.kind == TokenKind::Str(content.to_owned()))
            .map(|t| self.location_of_bytes(t.start, t.end))
    }

    /// The `n`-th (0-based) occurrence of identifier `name`, at or after `after`.
    pub fn find_ident(&self, name: &str, n: usize, after: Option<&Location>) -> Option<Location> {
        let min_offset = after.map_or(0, |loc| self.offset_of(loc));
        self.tokens
            .iter()
            .filter(|t| t.start >= min_offset)
            .filter(|t| t.kind == TokenKind::Ident(name.to_owned()))
            .nth(n)
            .map(|t| self.location_of_bytes(t.start, t.end))
    }

    /// The opening quote of the last string literal before `location` that runs over
    /// more than one line up to it, and how many lines it spans: after a syntax error,
    /// most likely a string whose closing quote is missing.
    pub fn open_string_before(&self, location: &Location) -> Option<(Location, usize)> {
        let offset = self.offset_of(location);
        let token = self
            .tokens
            .iter()
            .take_while(|t| t.start < offset)
            .filter(|t| matches!(t.kind, TokenKind::Str(_)))
            .last()?;
        let spanned = &self.text[token.start..token.end.min(offset).max(token.start)];
        let lines = spanned.matches('\n').count() + 1;
        (lines > 1).then(|| {
            let mut opening = self.location_of_bytes(token.start, token.start + 1);
            opening.len = 1;
            (opening, lines)
        })
    }

    fn offset_of(&self, location: &Location) -> usize {
        let line_start: usize = self
            .text
            .split_inclusive('\n')
            .take(location.line.saturating_sub(1))
            .map(str::len)
            .sum();
        let line = &self.text[line_start..];
        line_start
            + line
                .char_indices()
                .nth(location.col.saturating_sub(1))
                .map_or(line.len(), |(i, _)| i)
    }
}

/// A deliberately small RON lexer: identifiers, strings and colons, comments skipped.
fn tokenize(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if text[i..].starts_with("//") {
            i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
        } else if text[i..].starts_with("/*") {
            i = text[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |n| i + 2 + n + 2);
        } else if c == b'"' {
            // Characters, not bytes: a string may hold any UTF-8, escaped or not.
            let mut content = String::new();
            let mut chars = text[i + 1..].char_indices();
            i = bytes.len();
            while let Some((offset, ch)) = chars.next() {
                if ch == '"' {
                    i = start + 1 + offset + 1;
                    break;
                }
                content.push(ch);
                if ch == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        content.push(escaped);
                    }
                }
            }
            tokens.push(Token {
                kind: TokenKind::Str(content),
                start,
                end: i,
            });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let name = text[start..i].to_owned();
            tokens.push(Token {
                kind: TokenKind::Ident(name),
                start,
                end: i,
            });
        } else {
            let kind = if c == b':' {
                TokenKind::Colon
            } else {
                TokenKind::Other
            };
            // Step over a whole UTF-8 character.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            tokens.push(Token {
                kind,
                start,
                end: i,
            });
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Study(\n  // model: not this one\n  base: (\n    model: (d_model: 512, \"x\": 1),\n  ),\n  sweep: [\"model.d_model\"],\n)";

    #[test]
    fn finds_nested_keys_skipping_comments() {
        let source = SourceText::new("s.ron", TEXT.to_owned());
        let loc = source.find_key_path(&["base", "model", "d_model"]).unwrap();
        assert_eq!((loc.line, loc.col, loc.len), (4, 13, 7));
        assert_eq!(loc.line_text, "    model: (d_model: 512, \"x\": 1),");
        assert!(source.find_key_path(&["base", "optimizer"]).is_none());
    }

    #[test]
    fn finds_strings_after_a_location() {
        let source = SourceText::new("s.ron", TEXT.to_owned());
        let loc = source.find_string("model.d_model", None).unwrap();
        assert_eq!((loc.line, loc.col, loc.len), (6, 11, 15));
        let later = source.find_string("x", Some(&loc));
        assert!(later.is_none());
        let first = source.find_ident("model", 0, None).unwrap();
        assert_eq!(first.line, 4);
    }

    #[test]
    fn any_utf8_in_strings_and_comments_is_safe() {
        let text = "(\n  description: \"Café 🦀 \\u{e9} \\\" é\",\n  // naïve\n  name: \"ü\",\n  label: \"\\é";
        let source = SourceText::new("s.ron", text.to_owned());
        let loc = source.find_string("ü", None).unwrap();
        assert_eq!((loc.line, loc.col, loc.len), (4, 9, 3));
        let after = source.find_key_path(&["name"]).unwrap();
        assert_eq!((after.line, after.col), (4, 3));
        assert!(source.find_key_path(&["label"]).is_some());
        // Every prefix of the text (an unterminated string anywhere) tokenizes.
        for (end, _) in text.char_indices() {
            let _ = SourceText::new("s.ron", text[..end].to_owned());
        }
    }
}
