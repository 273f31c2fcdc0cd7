//! The configuration file as a small tree of values, each with the line it
//! came from. HCL text goes through [`super::hcl1`], a reader of HCL v1 as
//! the Go helper's library reads it; a document whose first non-blank
//! character is `{` is JSON, as in HCL v1, and goes through [`super::json`].
//! Both keep every number's literal text, so `0644` can be read as Go
//! reads it, and both keep repeated keys in file order for the reader to
//! resolve.

/// How deep lists and objects may nest. The configuration needs three
/// levels; the bound keeps a hostile file from exhausting the stack.
pub const MAX_DEPTH: usize = 64;

/// A value and the (one-based) line it starts on.
#[derive(Debug, Clone)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    /// A string the Go helper's scanner reads but its decoder refuses (an
    /// octal escape above `\377`, an escape of a code point that is no
    /// character) or that is not UTF-8 once decoded: why. The Go helper
    /// reads past it and stops only where a key it reads holds it, and so
    /// does this reader.
    Undecodable(String),
    /// An integer literal exactly as written (sign included), e.g. `0644`.
    Int(String),
    /// A number with a fraction or exponent, as written.
    Float(String),
    Bool(bool),
    /// JSON `null`.
    Null,
    List(Vec<Node>),
    /// Attributes, blocks or object entries, in file order, repeats kept.
    Object(Vec<Entry>),
}

/// `key = value`, `key { ... }` or, in JSON, `"key": value`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// The key was written in quotes in an HCL file (`"key" = ...`).
    pub quoted: bool,
    /// Block labels: `key "a" "b" { ... }` has the labels `a` and `b`.
    pub labels: Vec<String>,
    /// The line of the key.
    pub line: usize,
    pub node: Node,
}

/// Which syntax the file is written in: advice quotes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hcl,
    Json,
}

/// A parsed file.
#[derive(Debug)]
pub struct Document {
    pub format: Format,
    pub entries: Vec<Entry>,
    /// Things the syntax allows but that are likely mistakes, by line.
    pub warnings: Vec<(usize, String)>,
}

impl Value {
    /// How the value is described in a type error.
    pub fn describe(&self) -> String {
        match self {
            Value::Str(s) => format!("the string {}", quote(s)),
            Value::Undecodable(why) => format!("a string that cannot be decoded ({why})"),
            Value::Int(t) | Value::Float(t) => format!("the number {}", shorten(t)),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Null => "null".to_owned(),
            Value::List(_) => "a list".to_owned(),
            Value::Object(_) => "an object".to_owned(),
        }
    }
}

/// A syntax error with its position (one-based line and column, the
/// column counted in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a string whose escapes make bytes that are not UTF-8 is refused
/// (the Go helper would take the bytes as they are).
pub const NOT_UTF8: &str = "the string is not UTF-8 text once its \\x or octal escapes are applied";

/// The one-based line and column (in characters) of a byte offset, for
/// errors. Linear in the offset; called once per error.
pub fn position(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset);
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The largest char boundary at or before `i` (`str::floor_char_boundary`
/// is newer than the minimum Rust version).
pub fn floor_char_boundary(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// How many characters of a value a message shows.
const SHOWN: usize = 60;

/// A value for a message: at most 60 characters, the rest summarised.
pub fn shorten(s: &str) -> String {
    match s.char_indices().nth(SHOWN) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &s[..cut], s.len()),
    }
}

/// A value for a message, quoted and escaped: at most 60 characters.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(SHOWN) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes in all)", &s[..cut], s.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\ncé d", 7), (2, 4));
        assert_eq!(position("abc", 0), (1, 1));
        // An offset inside a character is taken back to its start.
        assert_eq!(position("é", 1), (1, 1));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(quote("a\"b"), r#""a\"b""#);
        let long = "x".repeat(100);
        assert_eq!(
            quote(&long),
            format!("{:?}… (100 bytes in all)", "x".repeat(60))
        );
        assert_eq!(
            shorten(&"é".repeat(61)),
            format!("{}… (122 bytes in all)", "é".repeat(60))
        );
        assert_eq!(shorten("short"), "short");
    }
}
