//! Values put into generated shell scripts: quoted so that the shell reads them back as
//! exactly one word, whatever bytes they hold, or refused where no quoting can help.
//! (Text in a `#` comment goes through `spec::diagnostic::one_line`: a newline would end
//! the comment and make the rest shell code.)

use std::path::Path;

/// `value` as one shell word for bash (and any POSIX shell): single quotes keep every
/// byte literal (spaces, `$`, backticks, `\`, newlines, non-ASCII); a single quote
/// inside is written as `'\''` (close, escaped quote, reopen).
pub fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// `path` as one shell word; a path that is not UTF-8 cannot be written into a text
/// script and is refused, naming it.
pub fn quote_path(path: &Path, what: &str) -> Result<String, String> {
    path.to_str().map(quote).ok_or_else(|| {
        format!(
            "the {what} {} is not valid UTF-8 and cannot be written into a script: \
             use a path of UTF-8 characters",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_character_and_escapes_single_quotes() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(x) `y`\n"), "'$(x) `y`\n'");
        assert_eq!(quote(""), "''");
    }
}
