//! HCL v1, read the way the Go helper's library (hashicorp/hcl v1) reads
//! it, into the [`tree`](super::tree) of entries.
//!
//! What HCL v1 is, as this reader implements it:
//! - A file is a list of items: `key = value`, `key { ... }`, or a block
//!   with labels `key "a" "b" { ... }`. A key is a bare word (letters,
//!   digits, `_`, `-`, `.`) or a quoted string. Items may be separated by
//!   one comma; no newline is needed between them.
//! - Values: strings, heredocs, numbers, `true`/`false`, lists `[...]`
//!   (commas between elements, trailing comma allowed) and objects `{...}`.
//!   There are no expressions, variables or templates: a bare word is not
//!   a value.
//! - Strings end on the line they start on. They hold the escapes `\a \b
//!   \f \n \r \t \v \\ \"`, octal `\NNN`, `\xNN`, `\uNNNN` and
//!   `\UNNNNNNNN`; any other backslash is an error. `${` opens a section
//!   that is kept exactly as written up to its matching `}`: a `"` or a
//!   newline inside it does not end the string, and escapes inside it must
//!   be valid but are not applied (so `$${x}` is kept as written too).
//!   `%{x}` and `%%{x}` are plain text.
//! - Numbers keep their text: a leading `0` is octal, `0x` hexadecimal. A
//!   `0`-led integer with an 8 or 9 anywhere after the digit that follows
//!   the `0` is an error (`0189`); v1 lets `08` through to the decoder,
//!   which then refuses it where an integer is expected.
//! - Comments: `#` and `//` to the end of the line, `/* ... */`.
//! - Heredocs: `<<EOF` ... a line holding only `EOF` (leading blanks
//!   allowed); `<<-EOF` also removes the closing line's indentation from
//!   every line when all of them have it.
//! - `\r\n` counts as `\n`.
//!
//! Two things v1 rejects are accepted here, as a convenience: a heredoc
//! whose closing line ends the file without a newline, and an indented
//! heredoc closed by its bare anchor at the start of a line. A `key =`
//! with nothing after it at the very end of the file is dropped silently
//! by v1; here it is dropped with a warning.
//!
//! The reader is a single pass over the text with one token of lookahead:
//! time and memory are linear in the size of the file, and nesting is
//! bounded by [`MAX_DEPTH`].

use std::borrow::Cow;

use super::escape;
use super::tree::{
    floor_char_boundary, quote, shorten, Entry, Node, SyntaxError, Value, MAX_DEPTH, NOT_UTF8,
};

/// The entries of a file and the warnings about its syntax.
#[derive(Debug)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub warnings: Vec<(usize, String)>,
}

pub fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    let text: Cow<'_, str> = if text.contains("\r\n") {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };
    let lexer = Lexer::new(&text);
    if let Some(at) = text.find('\0') {
        let pos = lexer.pos_at(at);
        return Err(lexer.error(pos, "the file holds a NUL character (0x00)".to_owned()));
    }
    let mut parser = Parser {
        lexer,
        peeked: None,
        depth: 0,
        warnings: Vec::new(),
    };
    let entries = parser.items(None)?;
    Ok(Parsed {
        entries,
        warnings: parser.warnings,
    })
}

/// Where a token starts.
#[derive(Debug, Clone, Copy)]
struct Pos {
    offset: usize,
    line: usize,
    line_start: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Ident(String),
    Str(String),
    /// A string only the Go helper's scanner accepts (see
    /// [`Value::Undecodable`]): where and why.
    Undecodable(SyntaxError),
    Heredoc(String),
    Number(String),
    Float(String),
    Bool(bool),
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Comma,
    Assign,
    /// `+`, or a `-` or `.` not starting a number: never valid.
    Punct(char),
    Eof,
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Ident(w) => format!("the word {}", quote(w)),
            Kind::Str(s) => format!("the string {}", quote(s)),
            Kind::Undecodable(_) => "a string".to_owned(),
            Kind::Heredoc(_) => "a heredoc".to_owned(),
            Kind::Number(n) | Kind::Float(n) => format!("the number {}", shorten(n)),
            Kind::Bool(b) => format!("{b}"),
            Kind::LBrace => "'{'".to_owned(),
            Kind::RBrace => "'}'".to_owned(),
            Kind::LBrack => "'['".to_owned(),
            Kind::RBrack => "']'".to_owned(),
            Kind::Comma => "','".to_owned(),
            Kind::Assign => "'='".to_owned(),
            Kind::Punct(c) => format!("'{c}'"),
            Kind::Eof => "the end of the file".to_owned(),
        }
    }
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    at: Pos,
}

struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

pub(super) fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!c.is_ascii() && c.is_alphabetic())
}

pub(super) fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn here(&self) -> Pos {
        Pos {
            offset: self.pos,
            line: self.line,
            line_start: self.line_start,
        }
    }

    /// The position of a byte offset, counting lines from the start.
    fn pos_at(&self, offset: usize) -> Pos {
        let before = &self.text[..offset];
        Pos {
            offset,
            line: before.bytes().filter(|&b| b == b'\n').count() + 1,
            line_start: before.rfind('\n').map_or(0, |i| i + 1),
        }
    }

    fn error(&self, at: Pos, message: String) -> SyntaxError {
        let offset = floor_char_boundary(self.text, at.offset);
        SyntaxError {
            line: at.line,
            column: self.text[at.line_start..offset].chars().count() + 1,
            message,
        }
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn peek_char(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    /// Moves to `end`, counting the newlines passed.
    fn advance_to(&mut self, end: usize) {
        let passed = &self.text[self.pos..end];
        if let Some(last) = passed.rfind('\n') {
            self.line += passed.bytes().filter(|&b| b == b'\n').count();
            self.line_start = self.pos + last + 1;
        }
        self.pos = end;
    }

    fn skip_digits(&mut self) -> usize {
        let start = self.pos;
        while self.byte(self.pos).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Blanks and comments.
    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.byte(self.pos) {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                Some(b'#') => self.skip_line(),
                Some(b'/') => match self.byte(self.pos + 1) {
                    Some(b'/') => self.skip_line(),
                    Some(b'*') => {
                        let at = self.here();
                        match self.text[self.pos + 2..].find("*/") {
                            Some(i) => self.advance_to(self.pos + 2 + i + 2),
                            None => {
                                return Err(self.error(
                                    at,
                                    "comment not terminated: this /* has no */".to_owned(),
                                ))
                            }
                        }
                    }
                    _ => {
                        return Err(self.error(
                            self.here(),
                            "unexpected '/' (comments start with #, // or /*)".to_owned(),
                        ))
                    }
                },
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        self.pos = self.text[self.pos..]
            .find('\n')
            .map_or(self.text.len(), |i| self.pos + i);
    }

    fn next(&mut self) -> Result<Token, SyntaxError> {
        self.skip_trivia()?;
        let at = self.here();
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                kind: Kind::Eof,
                at,
            });
        };
        let next_is_digit = self.byte(self.pos + 1).is_some_and(|b| b.is_ascii_digit());
        let kind = match c {
            '{' | '}' | '[' | ']' | ',' | '=' => {
                self.pos += 1;
                match c {
                    '{' => Kind::LBrace,
                    '}' => Kind::RBrace,
                    '[' => Kind::LBrack,
                    ']' => Kind::RBrack,
                    ',' => Kind::Comma,
                    _ => Kind::Assign,
                }
            }
            '"' => self.string(at)?,
            '<' => Kind::Heredoc(self.heredoc(at)?),
            '0'..='9' => self.number(at)?,
            '-' | '.' if next_is_digit => self.number(at)?,
            '+' | '-' | '.' => {
                self.pos += 1;
                Kind::Punct(c)
            }
            c if is_letter(c) => {
                let start = self.pos;
                while let Some(c) = self.peek_char() {
                    if is_letter(c) || is_digit(c) || c == '-' || c == '.' {
                        self.pos += c.len_utf8();
                    } else {
                        break;
                    }
                }
                match &self.text[start..self.pos] {
                    "true" => Kind::Bool(true),
                    "false" => Kind::Bool(false),
                    word => Kind::Ident(word.to_owned()),
                }
            }
            c => return Err(self.error(at, format!("unexpected character {c:?}"))),
        };
        Ok(Token { kind, at })
    }

    /// A number: its text, as an integer or a float literal.
    fn number(&mut self, at: Pos) -> Result<Kind, SyntaxError> {
        let start = self.pos;
        if self.byte(self.pos) == Some(b'-') {
            self.pos += 1;
        }
        // As v1's scanner: an exponent without digits takes the character
        // after its `e` or sign, whatever it is (`1e}` is one token).
        let float = |l: &mut Self| -> Kind {
            if l.byte(l.pos) == Some(b'.') {
                l.pos += 1;
                l.skip_digits();
            }
            if matches!(l.byte(l.pos), Some(b'e' | b'E')) {
                l.pos += 1;
                if matches!(l.byte(l.pos), Some(b'+' | b'-')) {
                    l.pos += 1;
                }
                if l.skip_digits() == 0 {
                    if let Some(c) = l.peek_char() {
                        l.advance_to(l.pos + c.len_utf8());
                    }
                }
            }
            Kind::Float(l.text[start..l.pos].to_owned())
        };
        let is_float_next = |l: &Self| matches!(l.byte(l.pos), Some(b'.' | b'e' | b'E'));
        match self.byte(self.pos) {
            // A leading '.' takes no exponent there: its `e` ends the token.
            Some(b'.') => {
                self.pos += 1;
                self.skip_digits();
                if matches!(self.byte(self.pos), Some(b'e' | b'E')) {
                    self.pos += 1;
                }
                Ok(Kind::Float(self.text[start..self.pos].to_owned()))
            }
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.byte(self.pos), Some(b'x' | b'X')) {
                    self.pos += 1;
                    let digits = self.pos;
                    while self.byte(self.pos).is_some_and(|b| b.is_ascii_hexdigit()) {
                        self.pos += 1;
                    }
                    if self.pos == digits {
                        return Err(self.error(
                            at,
                            "illegal hexadecimal number: no digits after 0x".to_owned(),
                        ));
                    }
                    return Ok(Kind::Number(self.text[start..self.pos].to_owned()));
                }
                // As v1: an 8 or 9 after the first digit that follows the 0.
                let run = self.pos;
                let mut illegal_octal = false;
                while let Some(b) = self.byte(self.pos).filter(u8::is_ascii_digit) {
                    illegal_octal |= self.pos > run && b >= b'8';
                    self.pos += 1;
                }
                if is_float_next(self) {
                    return Ok(float(self));
                }
                let text = &self.text[start..self.pos];
                if illegal_octal {
                    return Err(self.error(
                        at,
                        format!("illegal octal number {text}: a number with a leading 0 is octal, so its digits are 0 to 7"),
                    ));
                }
                Ok(Kind::Number(text.to_owned()))
            }
            _ => {
                self.skip_digits();
                if is_float_next(self) {
                    return Ok(float(self));
                }
                Ok(Kind::Number(self.text[start..self.pos].to_owned()))
            }
        }
    }

    /// A quoted string, from its opening quote: its value, or why it
    /// cannot be decoded (see [`Value::Undecodable`]).
    fn string(&mut self, at: Pos) -> Result<Kind, SyntaxError> {
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        let mut problem = None;
        // Depth inside a `${ }` section, copied as written.
        let mut braces = 0usize;
        loop {
            let Some(c) = self.peek_char() else {
                let why = if braces > 0 {
                    " (a ${ in it is never closed by })"
                } else {
                    ""
                };
                return Err(self.error(at, format!("string not terminated{why}")));
            };
            match c {
                '\n' if braces == 0 => {
                    return Err(self.error(
                        at,
                        "string not terminated: a string must end on the line it starts on (use a heredoc for several lines)".to_owned(),
                    ))
                }
                '"' if braces == 0 => {
                    self.pos += 1;
                    break;
                }
                '$' if braces == 0 && self.byte(self.pos + 1) == Some(b'{') => {
                    out.extend_from_slice(b"${");
                    self.pos += 2;
                    braces = 1;
                    continue;
                }
                '\\' => {
                    self.escape(&mut out, braces > 0, &mut problem)?;
                    continue;
                }
                '{' if braces > 0 => braces += 1,
                '}' if braces > 0 => braces -= 1,
                '\n' => {
                    self.line += 1;
                    self.line_start = self.pos + 1;
                }
                _ => {}
            }
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            self.pos += c.len_utf8();
        }
        if let Some(problem) = problem {
            return Ok(Kind::Undecodable(problem));
        }
        Ok(match String::from_utf8(out) {
            Ok(s) => Kind::Str(s),
            Err(_) => Kind::Undecodable(self.error(at, NOT_UTF8.to_owned())),
        })
    }

    /// One escape, from its backslash: its bytes go to `out`, decoded, or
    /// as written when `raw` (inside `${ }`). What the Go helper's scanner
    /// refuses is an error; what only its decoder refuses goes to
    /// `problem` (the first one is kept).
    fn escape(
        &mut self,
        out: &mut Vec<u8>,
        raw: bool,
        problem: &mut Option<SyntaxError>,
    ) -> Result<(), SyntaxError> {
        let at = self.here();
        let start = self.pos;
        let e = escape::read(&self.text[start + 1..]).map_err(|e| self.error(at, e.to_string()))?;
        self.pos = start + 1 + e.len;
        if raw {
            out.extend_from_slice(&self.bytes[start..self.pos]);
            return Ok(());
        }
        let why = match e.push(out) {
            Ok(Some(())) => return Ok(()),
            Err(why) => why,
            Ok(None) if e.value > 0x10_ffff => format!(
                "the escape \\U{} is beyond the last Unicode character",
                e.digits
            ),
            // A surrogate becomes U+FFFD, as Go's encoder makes it.
            Ok(None) => {
                escape::push_char('\u{fffd}', out);
                return Ok(());
            }
        };
        problem.get_or_insert_with(|| self.error(at, why));
        Ok(())
    }

    /// A heredoc, from its `<<`: its value.
    fn heredoc(&mut self, at: Pos) -> Result<String, SyntaxError> {
        if self.byte(self.pos + 1) != Some(b'<') {
            return Err(self.error(at, "unexpected '<' (a heredoc starts with <<)".to_owned()));
        }
        self.pos += 2;
        let indented = self.byte(self.pos) == Some(b'-');
        if indented {
            self.pos += 1;
        }
        let anchor_start = self.pos;
        while let Some(c) = self.peek_char().filter(|&c| is_letter(c) || is_digit(c)) {
            self.pos += c.len_utf8();
        }
        let anchor = &self.text[anchor_start..self.pos];
        match self.byte(self.pos) {
            None => return Err(self.error(at, "heredoc not terminated".to_owned())),
            Some(b'\n') => {}
            Some(_) => {
                return Err(self.error(
                    self.here(),
                    format!("invalid characters after the heredoc anchor <<{}{anchor}: it must end its line", if indented { "-" } else { "" }),
                ))
            }
        }
        if anchor.is_empty() {
            return Err(self.error(
                at,
                "a heredoc needs an anchor word after <<, as in <<EOF".to_owned(),
            ));
        }
        self.advance_to(self.pos + 1);
        let body_start = self.pos;
        // The end of the closing line (its newline, or the end of the file).
        let close_end = loop {
            let line_end = self.text[self.pos..]
                .find('\n')
                .map_or(self.text.len(), |i| self.pos + i);
            let line = &self.text[self.pos..line_end];
            let bare = line
                .trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r'])
                .trim_end_matches('\r');
            if bare == anchor {
                self.advance_to((line_end + 1).min(self.text.len()));
                break line_end;
            }
            if line_end == self.text.len() {
                return Err(self.error(
                    at,
                    format!("heredoc not terminated: no line holds only {anchor} to close it"),
                ));
            }
            self.advance_to(line_end + 1);
        };
        // v1 cuts the value out of the token's text by the anchor's length:
        // what remains of the closing line is its indentation.
        let text = self.text;
        let cut = |n: usize| {
            let end = close_end.saturating_sub(n).max(body_start);
            &text[body_start..floor_char_boundary(text, end)]
        };
        if !indented {
            return Ok(cut(anchor.len()).to_owned());
        }
        let region = cut(anchor.len());
        let lines: Vec<&str> = region.split('\n').collect();
        let (indent, body) = lines.split_last().unwrap_or((&"", &[]));
        if body.iter().all(|l| l.starts_with(indent)) {
            Ok(body
                .iter()
                .map(|l| format!("{}\n", &l[indent.len()..]))
                .collect())
        } else {
            Ok(cut(anchor.len() + 1)
                .trim_end_matches([' ', '\t'])
                .to_owned())
        }
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    depth: usize,
    warnings: Vec<(usize, String)>,
}

/// One item of an object list.
enum Item {
    Entry(Entry),
    /// `key =` and then the end of the file.
    NoValue(String, usize),
}

impl Parser<'_> {
    fn next(&mut self) -> Result<Token, SyntaxError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next(),
        }
    }

    fn peek(&mut self) -> Result<&Token, SyntaxError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn error(&self, at: Pos, message: String) -> SyntaxError {
        self.lexer.error(at, message)
    }

    fn deeper(&mut self, at: Pos) -> Result<(), SyntaxError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(
                at,
                format!("lists and objects nest more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// Items up to the `}` closing the object opened at `open`, or up to the
    /// end of the file at the top level.
    fn items(&mut self, open: Option<Pos>) -> Result<Vec<Entry>, SyntaxError> {
        let mut entries = Vec::new();
        loop {
            let t = self.next()?;
            match (&t.kind, open) {
                (Kind::RBrace, Some(_)) | (Kind::Eof, None) => return Ok(entries),
                (Kind::Eof, Some(o)) => return Err(self.unclosed(t.at, o, '{')),
                _ => {}
            }
            match self.item(t)? {
                Item::Entry(e) => entries.push(e),
                Item::NoValue(key, line) => match open {
                    None => {
                        self.warnings.push((
                            line,
                            format!("{} = has no value before the end of the file: it is ignored, as the Go helper ignores it", quote(&key)),
                        ));
                        return Ok(entries);
                    }
                    Some(o) => {
                        let at = self.lexer.here();
                        return Err(self.unclosed(at, o, '{'));
                    }
                },
            }
            if self.peek()?.kind == Kind::Comma {
                self.next()?;
            }
        }
    }

    fn unclosed(&self, at: Pos, open: Pos, what: char) -> SyntaxError {
        let (noun, close) = if what == '{' {
            ("object", '}')
        } else {
            ("list", ']')
        };
        self.error(
            at,
            format!(
                "the {noun} opened with '{what}' on line {} is not closed: expected '{close}' before the end of the file",
                open.line
            ),
        )
    }

    fn item(&mut self, first: Token) -> Result<Item, SyntaxError> {
        let mut keys: Vec<(String, bool, Pos)> = Vec::new();
        let mut t = first;
        loop {
            match t.kind {
                Kind::Ident(k) => keys.push((k, false, t.at)),
                Kind::Str(k) => keys.push((k, true, t.at)),
                // The Go helper stops on it too (decoding its keys).
                Kind::Undecodable(e) => return Err(e),
                Kind::Assign => {
                    if keys.is_empty() {
                        return Err(self.error(t.at, "expected a key before '='".to_owned()));
                    }
                    if keys.len() > 1 {
                        return Err(self.error(
                            t.at,
                            format!(
                                "{} {} = ...: only a block, {} {} {{ ... }}, takes labels after its key",
                                keys[0].0, quote(&keys[1].0), keys[0].0, quote(&keys[1].0)
                            ),
                        ));
                    }
                    let (key, quoted, at) = keys.swap_remove(0);
                    let v = self.next()?;
                    if v.kind == Kind::Eof {
                        return Ok(Item::NoValue(key, at.line));
                    }
                    let node = self.value(v)?;
                    return Ok(Item::Entry(Entry {
                        key,
                        quoted,
                        labels: Vec::new(),
                        line: at.line,
                        node,
                    }));
                }
                Kind::LBrace => {
                    if keys.is_empty() {
                        return Err(self.error(t.at, "expected a key before '{'".to_owned()));
                    }
                    let body = self.object(t.at)?;
                    let mut keys = keys.into_iter();
                    let (key, quoted, at) = keys.next().expect("not empty");
                    return Ok(Item::Entry(Entry {
                        key,
                        quoted,
                        labels: keys.map(|(k, _, _)| k).collect(),
                        line: at.line,
                        node: Node {
                            line: t.at.line,
                            value: Value::Object(body),
                        },
                    }));
                }
                other => {
                    let message = match keys.last() {
                        None => format!("expected a key, found {}", other.describe()),
                        Some((k, _, _)) => format!(
                            "expected '=' or '{{' after the key {}, found {}",
                            quote(k),
                            other.describe()
                        ),
                    };
                    return Err(self.error(t.at, message));
                }
            }
            t = self.next()?;
        }
    }

    fn value(&mut self, t: Token) -> Result<Node, SyntaxError> {
        let line = t.at.line;
        let value = match t.kind {
            Kind::Str(s) | Kind::Heredoc(s) => Value::Str(s),
            Kind::Undecodable(e) => Value::Undecodable(e.message),
            Kind::Number(n) => Value::Int(n),
            Kind::Float(f) => Value::Float(f),
            Kind::Bool(b) => Value::Bool(b),
            Kind::LBrace => Value::Object(self.object(t.at)?),
            Kind::LBrack => Value::List(self.list(t.at)?),
            Kind::Ident(w) => {
                return Err(self.error(
                    t.at,
                    format!(
                        "{} is a bare word: a string value needs quotes, as in {}",
                        quote(&w),
                        quote(&format!("\"{w}\""))
                    ),
                ))
            }
            other => {
                return Err(self.error(
                    t.at,
                    format!(
                        "expected a value (a string, a number, true, false, a [list] or an {{ object }}), found {}",
                        other.describe()
                    ),
                ))
            }
        };
        Ok(Node { line, value })
    }

    fn object(&mut self, open: Pos) -> Result<Vec<Entry>, SyntaxError> {
        self.deeper(open)?;
        let entries = self.items(Some(open))?;
        self.depth -= 1;
        Ok(entries)
    }

    fn list(&mut self, open: Pos) -> Result<Vec<Node>, SyntaxError> {
        self.deeper(open)?;
        let mut items = Vec::new();
        let mut need_comma = false;
        loop {
            let t = self.next()?;
            if need_comma && !matches!(t.kind, Kind::Comma | Kind::RBrack | Kind::Eof) {
                return Err(self.error(
                    t.at,
                    format!(
                        "expected ',' or ']' after a list element, found {}",
                        t.kind.describe()
                    ),
                ));
            }
            match t.kind {
                Kind::RBrack => break,
                Kind::Comma => need_comma = false,
                Kind::Eof => return Err(self.unclosed(t.at, open, '[')),
                // As v1: no comma is needed after a nested list.
                Kind::LBrack => items.push(self.value(t)?),
                _ => {
                    items.push(self.value(t)?);
                    need_comma = true;
                }
            }
        }
        self.depth -= 1;
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<Entry> {
        match parse(text) {
            Ok(p) => p.entries,
            Err(e) => panic!("{text:?}: {e:?}"),
        }
    }

    fn only(text: &str) -> Entry {
        let mut e = entries(text);
        assert_eq!(e.len(), 1, "{e:?}");
        e.remove(0)
    }

    fn string(text: &str) -> String {
        match only(text).node.value {
            Value::Str(s) => s,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn error(text: &str) -> SyntaxError {
        match parse(text) {
            Ok(p) => panic!("{text:?} parsed: {:?}", p.entries),
            Err(e) => e,
        }
    }

    fn int(text: &str) -> String {
        match only(text).node.value {
            Value::Int(t) => t,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn strings_are_literal_apart_from_their_escapes() {
        for (conf, want) in [
            (r#"a = "-c ${HOME} x""#, "-c ${HOME} x"),
            (r#"a = "$${HOME}""#, "$${HOME}"),
            (r#"a = "%{if x}y%{endif}""#, "%{if x}y%{endif}"),
            (r#"a = "%%{x}""#, "%%{x}"),
            (r#"a = "a%{b=c/""#, "a%{b=c/"),
            (r#"a = "tab\there""#, "tab\there"),
            (r#"a = "q\"q\\b""#, "q\"q\\b"),
            (r#"a = "\x41\u00e9\U0001F600""#, "Aé😀"),
            (r#"a = "\101\a\b\f\v\r\n""#, "A\x07\x08\x0c\x0b\r\n"),
            // Bytes from \x that together make one UTF-8 character.
            (r#"a = "\xc3\xa9""#, "é"),
            // A surrogate becomes U+FFFD, as Go encodes it.
            (r#"a = "\ud800""#, "\u{fffd}"),
            (r#"a = """#, ""),
            (r#"a = "é ${x} $ { }""#, "é ${x} $ { }"),
        ] {
            assert_eq!(string(conf), want, "{conf}");
        }
    }

    #[test]
    fn an_interpolation_section_is_kept_as_written() {
        // A quote inside ${ } does not end the string, escapes are not
        // applied there, and a newline may appear inside it.
        assert_eq!(string(r#"a = "${"x"}""#), r#"${"x"}"#);
        assert_eq!(string(r#"a = "${a\"}" "#), r#"${a\"}"#);
        assert_eq!(string("a = \"${f(\n1)} \\t\""), "${f(\n1)} \t");
        assert_eq!(string(r#"a = "${{}}}""#), "${{}}}");
        assert_eq!(string(r#"a = "${\777}""#), r"${\777}");
        // The line count goes on inside it.
        let e = entries("a = \"${\n}\"\nb = 1\n");
        assert_eq!(e[1].line, 3);
        let e = error("a = \"${x\"\n");
        assert_eq!((e.line, e.column), (1, 5));
        assert!(e.message.contains("${ in it is never closed"), "{e:?}");
        assert_eq!(error("a = \"x").message, "string not terminated");
        // Braces nest inside it: the quote after an inner pair is still
        // inside the section.
        assert_eq!(string(r#"a = "${ {x} "y" }""#), r#"${ {x} "y" }"#);
        // A column after a newline inside it counts from that line.
        let e = error("a = \"${\n}\" @");
        assert_eq!((e.line, e.column), (2, 4));
    }

    #[test]
    fn bad_escapes_are_rejected() {
        for (conf, part) in [
            (r#"a = "\q""#, "invalid escape \\q"),
            (r#"a = "\'""#, "invalid escape \\'"),
            (r#"a = "\x4""#, "needs 2 hexadecimal digits"),
            (r#"a = "\u12""#, "needs 4 hexadecimal digits"),
            (r#"a = "\12""#, "needs 3 octal digits"),
            ("a = \"\\\n\"", "a backslash at the end of a line"),
            // In a key, what only Go's decoder refuses is an error too.
            (r#""\400" = 1"#, "above \\377"),
            (r#"a "b\U00110000" {}"#, "beyond the last Unicode character"),
            (r#""\xff" = 1"#, "not UTF-8"),
        ] {
            let e = error(conf);
            assert!(e.message.contains(part), "{conf}: {e:?}");
            assert_eq!(e.line, 1, "{conf}");
        }
        assert_eq!(error(r#"a = "x\q""#).column, 7);
        assert_eq!(error(r#""x\400" = 1"#).column, 3);
    }

    #[test]
    fn a_value_only_go_s_decoder_refuses_is_read_past() {
        // Go's scanner reads these; its decoder fails only on a key it
        // decodes (checked in the reader), so the file goes on.
        for (conf, part) in [
            (r#"a = "\400""#, "octal escape \\400 is above \\377"),
            (r#"a = "x\U00110000\400""#, "\\U00110000 is beyond"),
            (r#"a = "\xff""#, "not UTF-8"),
            (r#"a = "\xc3\xa9\xff\x41""#, "not UTF-8"),
        ] {
            let e = entries(&format!("{conf}\nb = 1")).swap_remove(0).node.value;
            assert!(
                matches!(&e, Value::Undecodable(why) if why.contains(part)),
                "{conf}: {e:?}"
            );
        }
        assert_eq!(string(r#"a = "\xc3\xa9\101""#), "éA");
    }

    #[test]
    fn an_unterminated_string_is_reported_where_it_starts() {
        let e = error("a = \"x\"\nb = 2\nc = \"oops\nd = 4\n");
        assert_eq!((e.line, e.column), (3, 5));
        assert!(e.message.starts_with("string not terminated"), "{e:?}");
        let e = error("a = \"x");
        assert_eq!((e.line, e.column), (1, 5));
    }

    #[test]
    fn numbers_keep_their_literal_text() {
        assert_eq!(int("m = 0644"), "0644");
        assert_eq!(int("m = -1"), "-1");
        assert_eq!(int("m = 0x1F"), "0x1F");
        assert_eq!(int("m = 0"), "0");
        assert_eq!(int("m = -0644"), "-0644");
        // v1 only objects to an 8 or 9 after the first digit.
        assert_eq!(int("m = 08"), "08");
        for f in [
            "1.5", "-1.5", "1e5", "1E+5", "0.5", "08.5", "09e1", ".5", "1.", "1e", "0e-",
        ] {
            match only(&format!("m = {f}")).node.value {
                Value::Float(t) => assert_eq!(t, f),
                other => panic!("{f}: {other:?}"),
            }
        }
        // An exponent without digits takes the next character, whatever
        // it is, and no more; a leading '.' takes no exponent (its `e`
        // ends the token), as in v1's scanner.
        // Here the '}' after `1e` is in the number: the block goes on.
        let outer = entries("a { m = 1e}\nb = 0e\n\nc = 1ex\nd = .5e\n}");
        let [Entry {
            key,
            node:
                Node {
                    value: Value::Object(inner),
                    ..
                },
            ..
        }] = &outer[..]
        else {
            panic!("{outer:?}")
        };
        let values: Vec<_> = inner
            .iter()
            .map(|e| (e.key.as_str(), e.line, &e.node.value))
            .collect();
        assert!(
            key == "a"
                && matches!(&values[..], [("m", 1, Value::Float(t1)), ("b", 2, Value::Float(t2)), ("c", 4, Value::Float(t3)), ("d", 5, Value::Float(t4))]
                if t1 == "1e}" && t2 == "0e\n" && t3 == "1ex" && t4 == ".5e"),
            "{values:?}"
        );
        assert!(error("m = 1ex5").message.contains("found the number 5"));
        assert!(error("m = .5e3").message.contains("found the number 3"));
        for (conf, part) in [
            ("m = 0999", "illegal octal number 0999"),
            ("m = 0x", "no digits after 0x"),
            ("m = +1", "found '+'"),
            ("m = -x", "found '-'"),
        ] {
            let e = error(conf);
            assert!(e.message.contains(part), "{conf}: {e:?}");
            assert_eq!((e.line, e.column), (1, 5), "{conf}");
        }
    }

    #[test]
    fn booleans_lists_and_objects() {
        assert!(matches!(only("b = true").node.value, Value::Bool(true)));
        assert!(matches!(only("b = false").node.value, Value::Bool(false)));
        let Value::List(items) = only("l = [1, \"a\", [2] [3], { k = 1 },]").node.value else {
            panic!()
        };
        assert_eq!(items.len(), 5);
        assert!(matches!(&items[3].value, Value::List(_)));
        let Value::Object(o) = &items[4].value else {
            panic!()
        };
        assert_eq!(o[0].key, "k");
        assert!(matches!(only("l = []").node.value, Value::List(v) if v.is_empty()));
        assert!(matches!(only("l = [,1,,]").node.value, Value::List(v) if v.len() == 1));
        let e = error("l = [1 2]");
        assert!(e.message.contains("expected ',' or ']'"), "{e:?}");
        assert_eq!(e.column, 8);
    }

    #[test]
    fn blocks_attributes_labels_and_quoted_keys() {
        let e = entries(
            "h {\n  a = 1\n}\nh = { b = 2, c = 3 }\n\"Quoted\" = \"q\"\nj \"x\" y { }\nk.l-m = 1, n = 2 o = 3\n",
        );
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["h", "h", "Quoted", "j", "k.l-m", "n", "o"]);
        assert!(e[2].quoted && !e[0].quoted);
        assert_eq!(e[3].labels, ["x", "y"]);
        let Value::Object(inner) = &e[1].node.value else {
            panic!()
        };
        assert_eq!(inner.len(), 2);
        assert_eq!((e[0].line, e[1].line, e[2].line), (1, 4, 5));
        let e = error("a b = 1");
        assert!(e.message.contains("takes labels"), "{e:?}");
        let e = error("= 1");
        assert!(e.message.contains("expected a key before '='"), "{e:?}");
        let e = error("a");
        assert!(e.message.contains("found the end of the file"), "{e:?}");
        let e = error("h {\n a = 1\n");
        assert!(
            e.message.contains("the object opened with '{' on line 1"),
            "{e:?}"
        );
        assert_eq!(e.line, 3);
        for conf in ["a = [", "a = [1", "a = [1,", "a = [[1]"] {
            let e = error(conf);
            assert!(
                e.message
                    .contains("the list opened with '[' on line 1 is not closed"),
                "{conf}: {e:?}"
            );
        }
        let e = error("a = 1,, b = 2");
        assert!(e.message.contains("expected a key, found ','"), "{e:?}");
    }

    #[test]
    fn a_bare_word_is_not_a_value() {
        let e = error("cert_dir = certs\n");
        assert_eq!((e.line, e.column), (1, 12));
        assert_eq!(
            e.message,
            r#""certs" is a bare word: a string value needs quotes, as in "\"certs\"""#
        );
        assert!(error("a = null").message.contains("bare word"));
    }

    #[test]
    fn a_key_without_a_value_at_the_end_is_dropped_with_a_warning() {
        let p = parse("a = 1\nb =").unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(p.warnings[0].0, 2);
        assert!(
            p.warnings[0].1.contains("\"b\" = has no value"),
            "{:?}",
            p.warnings
        );
        // Inside an object it is an error.
        assert!(error("h { a =").message.contains("not closed"));
    }

    #[test]
    fn comments() {
        let e = entries("# one\na = 1 // two\n/* three\n four */ b = 2 /**/\n// end");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].line, 4);
        let e = error("a = 1\n/* open\n\n");
        assert_eq!((e.line, e.column), (2, 1));
        assert!(e.message.contains("comment not terminated"));
        let e = error("a = 1 / 2");
        assert_eq!((e.line, e.column), (1, 7));
        // A column after a comment that spans lines counts from the
        // comment's last line.
        let e = error("a = 1 /*\nxy */ @");
        assert_eq!((e.line, e.column), (2, 7));
        let e = error("a = 1 /* x\n\n  yz */ @");
        assert_eq!((e.line, e.column), (3, 9));
    }

    #[test]
    fn heredocs() {
        assert_eq!(
            string("a = <<EOF\nline 1\n  line 2\nEOF\n"),
            "line 1\n  line 2\n"
        );
        assert_eq!(string("a = <<EOF\nEOF\n"), "");
        // v1 keeps the closing line's indentation at the end.
        assert_eq!(string("a = <<EOF\nx\n  EOF\n"), "x\n  ");
        // No newline after the closing line: accepted here.
        assert_eq!(string("a = <<EOF\nx\nEOF"), "x\n");
        // Indented: the closing line's indentation comes off every line.
        assert_eq!(string("a = <<-EOT\n    x\n      y\n    EOT\n"), "x\n  y\n");
        // Unless some line has less of it: then the text stays as it is.
        assert_eq!(string("a = <<-EOT\n  x\n y\n  EOT\n"), "  x\n y\n");
        assert_eq!(string("a = <<-EOT\nx\nEOT\n"), "x\n");
        // When a line is less indented, only the closing line's last
        // character of indentation is cut, then its spaces and tabs: a
        // vertical tab goes only as that last character.
        assert_eq!(string("a = <<-EOT\nx\n\u{b}EOT\n"), "x\n");
        assert_eq!(string("a = <<-EOT\nx\n\u{b}\u{b}EOT\n"), "x\n\u{b}");
        // The text is literal: no escapes, quotes are plain.
        assert_eq!(string("a = <<EOF\n\"${x}\" \\n\nEOF\n"), "\"${x}\" \\n\n");
        // CRLF line ends count as LF.
        assert_eq!(string("a = <<EOF\r\nx\r\nEOF\r\n"), "x\n");
        let e = entries("a = <<EOF\n1\n2\nEOF\nb = 3\n");
        assert_eq!(e[1].line, 5);
        let e = error("a = <<EOF\nx\n");
        assert!(e.message.contains("heredoc not terminated"), "{e:?}");
        assert_eq!((e.line, e.column), (1, 5));
        assert!(error("a = <<\nx\n").message.contains("anchor word"));
        assert!(error("a = <<EOF x\nEOF\n")
            .message
            .contains("must end its line"));
        assert!(error("a = <x").message.contains("unexpected '<'"));
    }

    #[test]
    fn a_key_is_made_of_letters_and_digits_of_any_script() {
        let keys: Vec<String> = entries("é = 1\nключ٣ = 2\n_a9 = 3\n")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["é", "ключ٣", "_a9"]);
        // Other characters outside ASCII are neither.
        let e = error("€ = 1");
        assert_eq!((e.line, e.column), (1, 1));
        assert_eq!(e.message, "unexpected character '€'");
        let e = error("a€ = 1");
        assert_eq!((e.line, e.column), (1, 2));
        // A digit does not start a key.
        assert!(error("٣ = 1").message.contains("unexpected character"));
    }

    #[test]
    fn nul_and_stray_characters() {
        let e = error("a = 1\nb = \"x\0\"\n");
        assert_eq!((e.line, e.column), (2, 7));
        assert!(e.message.contains("NUL"));
        let e = error("a = 1\n  @\n");
        assert_eq!((e.line, e.column), (2, 3));
        assert_eq!(e.message, "unexpected character '@'");
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("a = {}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        entries(&ok);
        let deep = format!(
            "a = {}{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(error(&deep).message.contains("more than 64 levels"));
        let deep = format!("{}{}", "a {".repeat(100_000), "}".repeat(100_000));
        let e = error(&deep);
        assert!(e.message.contains("more than 64 levels"), "{e:?}");
        assert_eq!(e.column, 1 + 3 * MAX_DEPTH + 2);
        let deep = format!("a = {}", "[{b = ".repeat(50_000));
        assert!(error(&deep).message.contains("more than 64 levels"));
        // Siblings are not nesting: each closed object or list gives its
        // level back.
        let siblings = "a = { b = [[], {}] }\n".repeat(3 * MAX_DEPTH);
        assert_eq!(entries(&siblings).len(), 3 * MAX_DEPTH);
    }

    /// Inputs that were slow or deep for other parsers: each must finish,
    /// in time linear in its size.
    #[test]
    fn hostile_inputs_finish() {
        // 172 bytes that took an HCL 2 parser 13.9 s.
        let t = format!("x = {}", "a%{b=c/".repeat(24));
        assert_eq!(t.len(), 172);
        assert!(error(&t).message.contains("bare word"));
        let t = format!("x = \"{}\"", "a%{b=c/".repeat(24));
        assert_eq!(string(&t), "a%{b=c/".repeat(24));
        // 1.5 KB of template-like sequences inside strings.
        let t: String = (0..60)
            .map(|i| format!("k{i} = \"%{{${{%{{x}} ${{${{}}}}}}\"\n"))
            .collect();
        assert!(t.len() > 1400, "{}", t.len());
        assert_eq!(entries(&t).len(), 60);
        // An unclosed ${ runs to the end of the file, once.
        let t = format!("x = \"{}", "${".repeat(20_000));
        assert!(error(&t).message.contains("never closed"));
        // About 1 MB of each shape.
        let mb = 1 << 20;
        let t = format!("x = \"{}\"", "%{${".repeat(mb / 4));
        assert!(error(&t).message.contains("never closed"));
        let t = "a = 1\n".repeat(mb / 6);
        assert_eq!(entries(&t).len(), mb / 6);
        let t = format!("l = [{}]", "\"x\",".repeat(mb / 4));
        assert!(matches!(only(&t).node.value, Value::List(v) if v.len() == mb / 4));
        let t = format!("a = <<EOF\n{}EOF\n", "EOFx\n".repeat(mb / 5));
        assert_eq!(string(&t).len(), mb / 5 * 5);
        let t = format!("/*{}", "*".repeat(mb));
        assert!(error(&t).message.contains("comment not terminated"));
        let t = format!("a = \"{}", "\\\"".repeat(mb / 2));
        assert!(error(&t).message.contains("not terminated"));
        let t = format!("{} = 1", "k".repeat(mb));
        assert_eq!(only(&t).key.len(), mb);
        let t = "{".repeat(mb);
        assert!(error(&t).message.contains("expected a key"));
        let t = "[".repeat(mb);
        assert!(parse(&t).is_err());
        let t = format!("a = {}", "[".repeat(mb));
        assert!(error(&t).message.contains("more than 64 levels"));
    }
}
