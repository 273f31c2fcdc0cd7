//! The file's syntax: a document starting with `{` is JSON, anything else
//! HCL v1. Both readers build the same [`Document`] tree.

use super::tree::{Document, Format, SyntaxError};
use super::{hcl1, json};

/// Parses HCL or JSON text. A leading byte order mark is skipped (HCL v1
/// would call it an illegal character).
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        let (entries, warnings) = json::parse(text)?;
        Ok(Document {
            format: Format::Json,
            entries,
            warnings,
        })
    } else {
        let parsed = hcl1::parse(text)?;
        Ok(Document {
            format: Format::Hcl,
            entries: parsed.entries,
            warnings: parsed.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_hcl_are_told_apart_by_the_first_character() {
        assert_eq!(parse(" \n{\"a\": 1}").unwrap().format, Format::Json);
        assert_eq!(parse("a = 1").unwrap().format, Format::Hcl);
        assert_eq!(parse("").unwrap().format, Format::Hcl);
        // A byte order mark is skipped, before either syntax.
        assert_eq!(parse("\u{feff}{\"a\": 1}").unwrap().format, Format::Json);
        assert_eq!(parse("\u{feff}a = 1").unwrap().entries.len(), 1);
    }
}
