//! A JSON configuration (RFC 8259), read into the same tree as HCL: keys in
//! file order with repeats kept (HCL v1 decodes a repeated JSON key like a
//! repeated HCL one), every key with its line, numbers with their literal
//! text. One pass over the text, nesting bounded by [`MAX_DEPTH`].

use super::tree::{floor_char_boundary, Entry, Node, SyntaxError, Value, MAX_DEPTH, NOT_UTF8};
use super::{escape, hcl1};

/// Warnings with their lines.
pub type Warnings = Vec<(usize, String)>;

/// The entries, and warnings (with their lines) for what the Go helper's
/// reader accepts beyond RFC 8259 and is read here as it reads it (see
/// docs/migrating.md): a comma before a closing `}` or `]`, text after the
/// document (ignored), objects cut short by the end of the file, a `}` or
/// a missing comma, its way with lists (see [`Json::array`]), and its
/// strings and numbers (see [`Json::string`] and [`Json::number`]).
pub fn parse(text: &str) -> Result<(Vec<Entry>, Warnings), SyntaxError> {
    let mut p = Json {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
        line_start: 0,
        depth: 0,
        warnings: Vec::new(),
        stopped: false,
        ended: false,
        cut: false,
        warned: Vec::new(),
    };
    p.blank();
    let top = if p.byte() == Some(b'{') {
        let line = p.line;
        Node {
            line,
            value: Value::Object(p.object(true)?),
        }
    } else {
        p.value()?
    };
    p.blank();
    if p.pos < text.len() && !p.stopped {
        p.warnings.push((
            p.line,
            "the text after the end of the JSON document is ignored, as the Go helper ignores it"
                .to_owned(),
        ));
    }
    match top.value {
        Value::Object(entries) => Ok((entries, p.warnings)),
        _ => Err(SyntaxError {
            line: 1,
            column: 1,
            message: "a JSON configuration must be an object".to_owned(),
        }),
    }
}

/// What reading an object member gave.
enum Member {
    Whole(Entry),
    /// The object ended before the member was whole (it is dropped).
    Ended,
}

struct Json<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
    depth: usize,
    warnings: Warnings,
    /// The top-level object ended early, as the Go helper's reader ends
    /// it: what follows is ignored.
    stopped: bool,
    /// The end of the file closed the open objects (warned once).
    ended: bool,
    /// A `}` ended a list: the member holding the list is dropped and the
    /// object it is in ends there (set by [`Json::array`], taken by
    /// [`Json::member`]).
    cut: bool,
    /// The liberties already warned about (once each per document: a
    /// file could repeat them a million times).
    warned: Vec<Liberty>,
}

/// What a list reader read last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Open,
    Element,
    Comma,
}

/// What the Go helper's reader accepts beyond RFC 8259 in a list, an
/// inner object, a string or a number (or refuses, for `\/`), warned
/// about once per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liberty {
    NoComma,
    EmptyElement,
    Bool,
    Nested,
    MissingCommaInObject,
    Escape,
    Control,
    Number,
    Solidus,
}

impl Json<'_> {
    fn error(&self, message: String) -> SyntaxError {
        self.error_at(self.pos, message)
    }

    /// An error at `offset`, on the current line (a string's start or one
    /// of its escapes: a string holds no line break).
    fn error_at(&self, offset: usize, message: String) -> SyntaxError {
        let offset = floor_char_boundary(self.text, offset);
        SyntaxError {
            line: self.line,
            column: self.text[self.line_start..offset].chars().count() + 1,
            message,
        }
    }

    fn byte(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn blank(&mut self) {
        while let Some(b) = self.byte() {
            match b {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                }
                _ => break,
            }
        }
    }

    fn found(&self) -> String {
        match self.text[self.pos..].chars().next() {
            None => "the end of the file".to_owned(),
            Some(c) => format!("{c:?}"),
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), SyntaxError> {
        if self.byte() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.found())))
        }
    }

    /// A value, after any blanks.
    fn value(&mut self) -> Result<Node, SyntaxError> {
        let line = self.line;
        let value = match self.byte() {
            Some(b'{') => Value::Object(self.object(false)?),
            Some(b'[') => Value::List(self.array()?),
            Some(b'"') => match self.string()? {
                Ok(s) => Value::Str(s),
                Err(e) => Value::Undecodable(e.message),
            },
            _ if self.at_number() => self.number()?,
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            _ => return Err(self.error(format!("expected a JSON value, found {}", self.found()))),
        };
        Ok(Node { line, value })
    }

    /// Whether a number starts here: a '-' or a digit, or a '.' before a
    /// digit (a float to the Go helper's reader).
    fn at_number(&self) -> bool {
        match self.byte() {
            Some(b'-' | b'0'..=b'9') => true,
            Some(b'.') => self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit),
            _ => false,
        }
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, SyntaxError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error(format!("expected a JSON value, found {}", self.found())))
        }
    }

    fn deeper(&mut self) -> Result<(), SyntaxError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!(
                "arrays and objects nest more than {MAX_DEPTH} levels deep"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    /// After a comma: whether `close` follows, which ends the object or
    /// list (with a warning, as JSON has no trailing comma).
    fn trailing_comma(&mut self, close: u8) -> bool {
        let comma_line = self.line;
        self.blank();
        if self.byte() != Some(close) {
            return false;
        }
        self.pos += 1;
        self.depth -= 1;
        self.warn_trailing_comma(comma_line, close);
        true
    }

    fn warn_trailing_comma(&mut self, line: usize, close: u8) {
        self.warnings.push((
            line,
            format!(
                "a comma before '{}' is not JSON; it is accepted, as the Go helper accepts it",
                char::from(close)
            ),
        ));
    }

    /// An object. It ends where the Go helper's reader ends it, with a
    /// warning: at the end of the file without its closing `}` (this one
    /// and every one it is in; a member the end of the file cuts short is
    /// dropped), at a `}` that cuts a member short (dropped too, also when
    /// the `}` is inside its list), or at a member not followed by a comma:
    /// for the top-level one (`top`) the rest of the document is then
    /// ignored, for an inner one the token after the member is skipped.
    fn object(&mut self, top: bool) -> Result<Vec<Entry>, SyntaxError> {
        self.deeper()?;
        self.pos += 1;
        let mut entries = Vec::new();
        self.blank();
        if self.byte() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(entries);
        }
        loop {
            self.blank();
            if self.byte().is_none() {
                self.unclosed();
                return Ok(entries);
            }
            if self.byte() != Some(b'"') {
                return Err(self.error(format!(
                    "expected a key in double quotes, found {}",
                    self.found()
                )));
            }
            match self.member()? {
                Member::Whole(entry) => entries.push(entry),
                Member::Ended => return Ok(entries),
            }
            self.blank();
            match self.byte() {
                Some(b',') => {
                    self.pos += 1;
                    if self.trailing_comma(b'}') {
                        return Ok(entries);
                    }
                }
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(entries);
                }
                None => {
                    self.unclosed();
                    return Ok(entries);
                }
                Some(_) if top && self.next_token_scans() => {
                    self.stopped = true;
                    self.warnings.push((
                        self.line,
                        "a ',' is missing here: the Go helper stops reading the document at this point, and so does this one; the rest of the file is ignored".to_owned(),
                    ));
                    return Ok(entries);
                }
                Some(_) if !top && self.skip_token() => {
                    self.warn_once(
                        Liberty::MissingCommaInObject,
                        "a ',' is missing here: the Go helper ends the inner object at this point and skips the token that follows, and so does this one",
                    );
                    self.depth -= 1;
                    return Ok(entries);
                }
                _ => {
                    return Err(self.error(format!(
                        "expected ',' or '}}' after an object member, found {}",
                        self.found()
                    )))
                }
            }
        }
    }

    /// A member, from its key: every string before the `:` is a key, as
    /// in the Go helper's reader (`"a" "b": {...}` is `a` with the label
    /// `b`, like HCL's `a "b" { ... }`). The end of the file or a `}`
    /// before its value ends the object instead.
    fn member(&mut self) -> Result<Member, SyntaxError> {
        let line = self.line;
        let key = self.key()?;
        let mut labels = Vec::new();
        loop {
            self.blank();
            if self.ends_here() {
                return Ok(Member::Ended);
            }
            if self.byte() != Some(b'"') {
                break;
            }
            labels.push(self.key()?);
        }
        self.expect(b':', "':' after the key")?;
        self.blank();
        if self.ends_here() {
            return Ok(Member::Ended);
        }
        let node = self.value()?;
        if std::mem::take(&mut self.cut) {
            self.end_at_brace(
                "a list cut short by '}' is dropped with its key, and the '}' ends the object it is in, as the Go helper reads it",
            );
            return Ok(Member::Ended);
        }
        Ok(Member::Whole(Entry {
            key,
            quoted: false,
            labels,
            line,
            node,
        }))
    }

    /// Whether the text here starts a token the Go helper's JSON scanner
    /// reads without error (it reads one token past the last member before
    /// it stops; an illegal one is an error there).
    fn next_token_scans(&mut self) -> bool {
        let saved = (self.pos, self.line, self.line_start);
        let ok = self.skip_token();
        (self.pos, self.line, self.line_start) = saved;
        ok
    }

    /// Moves past one token as the Go helper's JSON scanner reads it; where
    /// that scanner would report an error, stays and says false.
    fn skip_token(&mut self) -> bool {
        let saved = (self.pos, self.line, self.line_start);
        let ok = match self.byte() {
            Some(b'"') => self.string().is_ok(),
            _ if self.at_number() => self.number().is_ok(),
            // A '.' is a token there (PERIOD), whatever follows.
            Some(b'{' | b'}' | b'[' | b']' | b':' | b',' | b'.') => {
                self.pos += 1;
                true
            }
            Some(_) => {
                // Anything else is a word (empty where it starts with no
                // letter or digit); only true, false and null are tokens. Go's
                // identifiers go on through letters, digits of any script
                // and '-': `trueé` is one (illegal) word there.
                let word: usize = self.text[self.pos..]
                    .chars()
                    .take_while(|&c| hcl1::is_letter(c) || hcl1::is_digit(c) || c == '-')
                    .map(char::len_utf8)
                    .sum();
                self.pos += word;
                matches!(&self.text[saved.0..self.pos], "true" | "false" | "null")
            }
            None => false,
        };
        if !ok {
            (self.pos, self.line, self.line_start) = saved;
        }
        ok
    }

    /// Whether the object ends here, in the middle of a member: at the
    /// end of the file, or at a `}` where the member's `:` or value should
    /// be (the member is dropped), as the Go helper's reader ends it.
    fn ends_here(&mut self) -> bool {
        match self.byte() {
            None => self.unclosed(),
            Some(b'}') => self.end_at_brace(
                "a member without its ':' or its value before '}' is dropped, as the Go helper drops it",
            ),
            Some(_) => return false,
        }
        true
    }

    /// The object ends at this `}`, which cut a member short (`why`).
    fn end_at_brace(&mut self, why: &str) {
        self.warnings.push((self.line, why.to_owned()));
        self.pos += 1;
        self.depth -= 1;
    }

    /// An object reached the end of the file unclosed.
    fn unclosed(&mut self) {
        self.depth -= 1;
        if !self.ended {
            self.ended = true;
            self.warnings.push((
                self.line,
                "the JSON document ends without its closing '}': what was read is used, as the Go helper uses it".to_owned(),
            ));
        }
    }

    /// Warns of `liberty` at this line, the first time only.
    fn warn_once(&mut self, liberty: Liberty, message: &str) {
        if !self.warned.contains(&liberty) {
            self.warned.push(liberty);
            self.warnings.push((self.line, message.to_owned()));
        }
    }

    /// A list, read as the Go helper's reader reads one, with a warning for
    /// each liberty taken: elements need no ',' between them and a ','
    /// more is skipped; `true` and `false` are dropped; a '[' is skipped
    /// (lists do not nest there, so the first ']' ends the list). A '}'
    /// ends the object the list is in (see [`Json::cut`]); the end of the
    /// file and `null` are errors, as they are there.
    fn array(&mut self) -> Result<Vec<Node>, SyntaxError> {
        self.deeper()?;
        self.pos += 1;
        let mut items = Vec::new();
        let mut last = Last::Open;
        loop {
            self.blank();
            match self.byte() {
                Some(b']') => {
                    if last == Last::Comma {
                        self.warn_trailing_comma(self.line, b']');
                    }
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(items);
                }
                Some(b'}') => {
                    self.depth -= 1;
                    self.cut = true;
                    return Ok(items);
                }
                Some(b',') => {
                    if last != Last::Element {
                        self.warn_once(
                            Liberty::EmptyElement,
                            "a ',' with no list element before it is skipped, as the Go helper skips it",
                        );
                    }
                    self.pos += 1;
                    last = Last::Comma;
                    continue;
                }
                Some(b'[') => {
                    self.warn_once(
                        Liberty::Nested,
                        "a '[' inside a list is skipped, as the Go helper skips it: lists do not nest there, and the first ']' ends the list",
                    );
                    self.pos += 1;
                    continue;
                }
                None => {
                    return Err(self.error(
                        "expected a list element or ']', found the end of the file".to_owned(),
                    ))
                }
                Some(b'n') => {
                    return Err(self.error(
                        "null cannot be a list element (the Go helper refuses it too)".to_owned(),
                    ))
                }
                Some(b't' | b'f') => {
                    self.value()?;
                    self.warn_once(
                        Liberty::Bool,
                        "true and false in a list are dropped, as the Go helper drops them",
                    );
                }
                _ if self.byte().is_some_and(|b| b == b'{' || b == b'"') || self.at_number() => {
                    if last == Last::Element {
                        self.warn_once(
                            Liberty::NoComma,
                            "list elements without a ',' between them are read, as the Go helper reads them",
                        );
                    }
                    items.push(self.value()?);
                }
                Some(_) => {
                    return Err(self.error(format!(
                        "expected a list element, ',' or ']', found {}",
                        self.found()
                    )))
                }
            }
            last = Last::Element;
        }
    }

    /// A key or a label: a string that must decode (the Go helper stops
    /// on one that does not, decoding its keys).
    fn key(&mut self) -> Result<String, SyntaxError> {
        self.string()?
    }

    /// A string, from its opening quote, read as the Go helper's reader
    /// reads one: RFC 8259's escapes, and with a warning Go's others
    /// (`\a \v \NNN \xNN \UNNNNNNNN`, see the escape module) and control
    /// characters other than a newline written as they are. `\/` (with a
    /// warning) and a `\u` pair for a character beyond U+FFFF are read as
    /// JSON has them (the Go helper refuses both). Its value, or where and why it cannot
    /// be decoded (see [`Value::Undecodable`]).
    fn string(&mut self) -> Result<Result<String, SyntaxError>, SyntaxError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        let mut problem = None;
        loop {
            // Copy the plain run up to the next quote, backslash or newline.
            let run = self.bytes[self.pos..]
                .iter()
                .position(|&b| matches!(b, b'"' | b'\\' | b'\n'))
                .map_or(self.bytes.len(), |i| self.pos + i);
            let plain = &self.bytes[self.pos..run];
            if plain.iter().any(|&b| b < 0x20) {
                self.warn_once(
                    Liberty::Control,
                    "a control character (such as a tab) is written as it is inside a string: JSON wants it escaped; read as the Go helper reads it",
                );
            }
            out.extend_from_slice(plain);
            self.pos = run;
            match self.byte() {
                None | Some(b'\n') => {
                    // Reported where it starts: a string holds no newline.
                    self.pos = start;
                    return Err(self.error("string not terminated".to_owned()));
                }
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                _ => self.escape(&mut out, &mut problem)?,
            }
        }
        if let Some(problem) = problem {
            return Ok(Err(problem));
        }
        Ok(String::from_utf8(out).map_err(|_| self.error_at(start, NOT_UTF8.to_owned())))
    }

    /// One escape, from its backslash: its bytes go to `out`. What the Go
    /// helper's scanner refuses is an error; what only its decoder refuses
    /// goes to `problem` (the first one is kept).
    fn escape(
        &mut self,
        out: &mut Vec<u8>,
        problem: &mut Option<SyntaxError>,
    ) -> Result<(), SyntaxError> {
        let at = self.pos;
        let e = match self.bytes.get(at + 1) {
            Some(b'/') => {
                self.warn_once(
                    Liberty::Solidus,
                    "the escape \\/ is JSON, but the Go helper refuses it (\"illegal char escape\"): write / alone for a file both read",
                );
                self.pos += 2;
                out.push(b'/');
                return Ok(());
            }
            _ => escape::read(&self.text[at + 1..]).map_err(|e| self.error(e.to_string()))?,
        };
        self.pos = at + 1 + e.len;
        if !matches!(e.letter, 'u' | '"' | '\\' | 'b' | 'f' | 'n' | 'r' | 't') {
            self.warn_once(
                Liberty::Escape,
                &format!(
                    "the escape \\{}{} is not JSON: it is read as the Go helper reads it",
                    e.letter, e.digits
                ),
            );
        }
        let why = if e.letter == 'u' && (0xd800..0xdc00).contains(&e.value) {
            match self.text[self.pos..].strip_prefix('\\').map(escape::read) {
                Some(Ok(low)) if low.letter == 'u' && (0xdc00..0xe000).contains(&low.value) => {
                    self.pos += 1 + low.len;
                    let c = 0x10000 + ((e.value - 0xd800) << 10) + (low.value - 0xdc00);
                    escape::push_char(char::from_u32(c).unwrap_or('\u{fffd}'), out);
                    return Ok(());
                }
                _ => "a \\u escape of a high surrogate must be followed by one of a low surrogate"
                    .to_owned(),
            }
        } else {
            match e.push(out) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => format!(
                    "the escape \\{}{} is not a Unicode character",
                    e.letter, e.digits
                ),
                Err(why) => why,
            }
        };
        problem.get_or_insert_with(|| self.error_at(at, why));
        Ok(())
    }

    /// A number, read as the Go helper's JSON scanner reads one (see
    /// docs/migrating.md): beyond RFC 8259, with a warning, a float may
    /// start or end with '.' or start with zeros (`.5`, `1.`, `00.5`),
    /// and an exponent without digits takes the character after its `e`
    /// (`1e}` is one token there). A leading '.' takes no exponent: its
    /// `e` ends the token. Only an integer's leading zero is an error.
    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.byte().is_some_and(|b| b.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.byte() == Some(b'.') {
            self.pos += 1;
            digits(self);
            if matches!(self.byte(), Some(b'e' | b'E')) {
                self.pos += 1;
            }
            return Ok(self.float(start, false));
        }
        if self.byte() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = digits(self);
        if int_digits == 0 {
            return Err(self.error(format!("expected a digit, found {}", self.found())));
        }
        // Written as RFC 8259 writes a number (for the warning).
        let mut standard = self.bytes[int_start] != b'0' || int_digits == 1;
        let mut float = false;
        if self.byte() == Some(b'.') {
            self.pos += 1;
            float = true;
            standard &= digits(self) > 0;
        }
        if matches!(self.byte(), Some(b'e' | b'E')) {
            self.pos += 1;
            float = true;
            if matches!(self.byte(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                standard = false;
                // Go's scanner takes the next character whatever it is,
                // and nothing after it (`1ex5` is `1ex`, then `5`).
                if let Some(c) = self.text[self.pos..].chars().next() {
                    self.pos += c.len_utf8();
                    if c == '\n' {
                        self.line += 1;
                        self.line_start = self.pos;
                    }
                }
            }
        }
        if float {
            return Ok(self.float(start, standard));
        }
        if !standard {
            self.pos = int_start;
            return Err(self.error(
                "a JSON number cannot start with 0 (for an octal file mode write it as a string, \"0644\")".to_owned(),
            ));
        }
        Ok(Value::Int(self.text[start..self.pos].to_owned()))
    }

    /// The float from `start` to here, warned about where it is not
    /// written as JSON writes one.
    fn float(&mut self, start: usize, standard: bool) -> Value {
        let text = &self.text[start..self.pos];
        if !standard {
            self.warn_once(
                Liberty::Number,
                &format!(
                    "the number {} is not JSON: it is read as the Go helper reads it (a float, which no key takes)",
                    super::tree::shorten(text)
                ),
            );
        }
        Value::Float(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
        super::parse(text).map(|(e, _)| e)
    }

    fn error(text: &str) -> SyntaxError {
        match parse(text) {
            Ok(e) => panic!("{text:?} parsed: {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn keys_keep_order_repeats_and_lines() {
        let e = parse("{\n  \"b\": 1,\n  \"a\": [ { \"c\": \"d\" } ],\n  \"b\": 2\n}\n").unwrap();
        let keys: Vec<(&str, usize)> = e.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(keys, [("b", 2), ("a", 3), ("b", 4)]);
        let Value::List(items) = &e[1].node.value else {
            panic!()
        };
        let Value::Object(inner) = &items[0].value else {
            panic!()
        };
        assert_eq!((inner[0].key.as_str(), inner[0].line), ("c", 3));
    }

    #[test]
    fn strings_before_the_colon_are_labels() {
        let e =
            parse(r#"{"health_checks" "x": {"bind_port": 1}, "a" "b" "c": 2, "d": 3}"#).unwrap();
        let labels: Vec<(&str, &[String])> = e
            .iter()
            .map(|e| (e.key.as_str(), e.labels.as_slice()))
            .collect();
        assert_eq!(
            labels,
            [
                ("health_checks", &["x".to_owned()][..]),
                ("a", &["b".to_owned(), "c".to_owned()][..]),
                ("d", &[][..])
            ]
        );
    }

    #[test]
    fn values() {
        let e = parse(
            r#"{"s": "a\"\\\/\b\f\n\r\tz\u00e9\ud83d\ude00", "i": -12, "f": 1.5e3, "t": true, "n": null, "o": {}, "l": []}"#,
        )
        .unwrap();
        assert!(matches!(&e[0].node.value, Value::Str(s) if s == "a\"\\/\u{8}\u{c}\n\r\tzé😀"));
        assert!(matches!(&e[1].node.value, Value::Int(t) if t == "-12"));
        assert!(matches!(&e[2].node.value, Value::Float(t) if t == "1.5e3"));
        assert!(matches!(&e[3].node.value, Value::Bool(true)));
        assert!(matches!(&e[4].node.value, Value::Null));
        assert!(matches!(&e[5].node.value, Value::Object(o) if o.is_empty()));
        assert!(matches!(&e[6].node.value, Value::List(l) if l.is_empty()));
    }

    #[test]
    fn strings_and_numbers_beyond_the_standard_are_read_as_the_go_helper_reads_them() {
        let text = "{\"s\": \"\\a\\v\\101\\x41\\U0001F600\\303\\251\\a\", \"t\": \"a\tb\\tc\", \"u\": .5,\n\"v\": 1., \"w\": [00.5 1.e5], \"x\": -1.5e-3}";
        let (e, warnings) = super::parse(text).unwrap();
        assert!(matches!(&e[0].node.value, Value::Str(s) if s == "\u{7}\u{b}AA😀é\u{7}"));
        assert!(matches!(&e[1].node.value, Value::Str(s) if s == "a\tb\tc"));
        assert!(matches!(&e[2].node.value, Value::Float(t) if t == ".5"));
        assert!(matches!(&e[3].node.value, Value::Float(t) if t == "1."));
        assert!(
            matches!(&e[4].node.value, Value::List(l) if matches!(&l[..], [a, b] if matches!(&a.value, Value::Float(t) if t == "00.5") && matches!(&b.value, Value::Float(t) if t == "1.e5")))
        );
        assert!(matches!(&e[5].node.value, Value::Float(t) if t == "-1.5e-3"));
        // Once each: the escape, the tab, the number; then the list's
        // missing comma.
        let lines: Vec<_> = warnings
            .iter()
            .map(|(l, w)| (*l, w.split(':').next().unwrap_or("")))
            .collect();
        assert_eq!(
            lines,
            [
                (1, "the escape \\a is not JSON"),
                (1, "a control character (such as a tab) is written as it is inside a string"),
                (1, "the number .5 is not JSON"),
                (2, "list elements without a ',' between them are read, as the Go helper reads them"),
            ]
        );

        // `\/` is JSON, which the Go helper refuses: read, warned once.
        let (e, warnings) = super::parse(r#"{"a": "\/tmp\/x"}"#).unwrap();
        assert!(matches!(&e[0].node.value, Value::Str(s) if s == "/tmp/x"));
        assert!(
            matches!(&warnings[..], [(1, w)] if w.contains("the Go helper refuses it")),
            "{warnings:?}"
        );

        // An exponent without digits takes the next character, a newline
        // too; a leading '.' takes no exponent: its 'e' ends the number
        // and what follows is a token of its own (here the document stops).
        let (e, warnings) =
            super::parse("{\"a\": 1e\n, \"b\": 2e+ , \"c\": .5e3, \"d\": 4}").unwrap();
        let values: Vec<_> = e
            .iter()
            .map(|e| (e.key.as_str(), e.line, &e.node.value))
            .collect();
        assert!(
            matches!(&values[..], [("a", 1, Value::Float(a)), ("b", 2, Value::Float(b)), ("c", 2, Value::Float(c))] if a == "1e\n" && b == "2e+ " && c == ".5e"),
            "{values:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|(_, w)| w.contains("a ',' is missing here")),
            "{warnings:?}"
        );
        let (e, _) = super::parse("{\"a\": 1ex5, \"b\": 2}").unwrap();
        assert!(
            matches!(&e[..], [a] if matches!(&a.node.value, Value::Float(t) if t == "1ex")),
            "{e:?}"
        );
        // A '.' before the value is a token to Go's scanner: the document
        // ends there without an error.
        let (e, _) = super::parse("{\"a\": 1 . \"b\": 2}").unwrap();
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn a_value_only_go_s_decoder_refuses_is_read_past() {
        // Go's scanner reads these; its decoder fails only on a key it
        // decodes (checked in the reader), so the document goes on.
        let (e, _) = super::parse(
            r#"{"a": "\400", "b": "\ud800x", "c": "\U0000dfff", "d": "\xff", "e": "\xc3\xa9", "f": 1}"#,
        )
        .unwrap();
        let whys: Vec<_> = e
            .iter()
            .map(|e| match &e.node.value {
                Value::Undecodable(why) => why.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            whys,
            [
                "octal escape \\400 is above \\377",
                "a \\u escape of a high surrogate must be followed by one of a low surrogate",
                "the escape \\U0000dfff is not a Unicode character",
                NOT_UTF8,
                "Str(\"é\")",
                "Int(\"1\")",
            ]
        );
    }

    #[test]
    fn errors_have_positions() {
        for (text, line, column, part) in [
            ("{\n \"a\": ,\n}", 2, 7, "expected a JSON value, found ','"),
            ("{\"a\": 1,,}", 1, 9, "expected a key in double quotes"),
            ("{\"a\": 0644}", 1, 7, "cannot start with 0"),
            ("{\"a\": \"x\ny\"}", 1, 7, "string not terminated"),
            ("{\"a\": \"x", 1, 7, "string not terminated"),
            ("{\"a\" 1}", 1, 6, "expected ':' after the key"),
            ("{\"a\": \"\\q\"}", 1, 8, "invalid escape \\q"),
            ("{\"a\": \"\\x4\"}", 1, 8, "it needs 2 hexadecimal digits"),
            // In a key, what only Go's decoder refuses is an error too.
            ("{\"a\\400\": 1}", 1, 4, "above \\377"),
            (
                "{\"a\": 1, \"\\U0000d800\": 1}",
                1,
                11,
                "not a Unicode character",
            ),
            ("{\"a\" \"\\xff\": {}}", 1, 6, "not UTF-8 text"),
            ("{\"\\ud800\": 1}", 1, 3, "low surrogate"),
            ("{\"\\ud800\\ud800\": 1}", 1, 3, "low surrogate"),
            ("{\"\\ud800\\n\": 1}", 1, 3, "low surrogate"),
            ("{\"\\ud800\\U0000dc00\": 1}", 1, 3, "low surrogate"),
            ("{\"a\": tru}", 1, 7, "expected a JSON value"),
            ("{\"a\": -}", 1, 8, "expected a digit"),
            ("{\"a\": -.5}", 1, 8, "expected a digit"),
            ("{\"a\": .}", 1, 7, "expected a JSON value, found '.'"),
            ("{\"a\": [1", 1, 9, "expected a list element or ']'"),
            (
                "{\"a\": [{\"b\": 1",
                1,
                15,
                "expected a list element or ']'",
            ),
            ("{\"a\": [1, null]}", 1, 11, "null cannot be a list element"),
            (
                "{\"a\": [1, :]}",
                1,
                11,
                "expected a list element, ',' or ']'",
            ),
            ("{\"a\": {\"b\": 1 = 2}}", 1, 15, "expected ',' or '}'"),
            ("{\"a\" \"b\" 1}", 1, 10, "expected ':' after the key"),
        ] {
            let e = error(text);
            assert_eq!((e.line, e.column), (line, column), "{text:?}: {e:?}");
            assert!(e.message.contains(part), "{text:?}: {e:?}");
        }
        assert_eq!(
            error("[1]").message,
            "a JSON configuration must be an object"
        );
    }

    #[test]
    fn trailing_commas_and_text_after_the_document_are_accepted_with_warnings() {
        let (e, w) = super::parse("{\n\"a\": [1, 2,],\n\"b\": {\"c\": 1,},\n}\nnot json").unwrap();
        assert_eq!(e.len(), 2);
        assert!(matches!(&e[0].node.value, Value::List(l) if l.len() == 2));
        let lines: Vec<usize> = w.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 3, 5], "{w:?}");
        assert!(w[0].1.contains("comma before ']'"), "{w:?}");
        assert!(
            w[3].1
                .contains("text after the end of the JSON document is ignored"),
            "{w:?}"
        );
    }

    #[test]
    fn the_top_level_object_ends_where_the_go_helper_ends_it() {
        let (e, w) = super::parse("{\n\"a\": 1,\n\"b\": 2\n").unwrap();
        assert_eq!(e.len(), 2);
        assert!(w[0].1.contains("ends without its closing '}'"), "{w:?}");
        let (e, _) = super::parse("{\"a\": 1,\n\"b\"").unwrap();
        assert_eq!(e.len(), 1);
        // Nested objects end there too, warned once; a member cut short
        // (its keys, or its ':' without a value) by the end of the file or
        // by a '}' is dropped.
        for (cut, warned) in [
            ("{\"a\": 1,\n\"b\" \"c\"", "ends without its closing '}'"),
            ("{\"a\": 1,\n\"b\": ", "ends without its closing '}'"),
            ("{\"a\": 1,\n\"b\" \"c\": ", "ends without its closing '}'"),
            ("{\"a\": 1, \"b\" }", "is dropped"),
            ("{\"a\": 1, \"b\": }", "is dropped"),
            ("{\"a\": 1, \"b\" \"c\"\n}", "is dropped"),
        ] {
            let (e, w) = super::parse(cut).unwrap();
            assert_eq!(e.len(), 1, "{cut:?}");
            assert_eq!(w.len(), 1, "{cut:?}: {w:?}");
            assert!(w[0].1.contains(warned), "{cut:?}: {w:?}");
        }
        let (e, _) = super::parse("{\"a\": {\"b\" }, \"c\": 2}").unwrap();
        assert!(
            matches!(&e[0].node.value, Value::Object(b) if b.is_empty()),
            "{e:?}"
        );
        assert_eq!(e[1].key, "c");
        let (e, w) = super::parse("{\"a\": {\"b\": {\"c\": 1").unwrap();
        let Value::Object(b) = &e[0].node.value else {
            panic!()
        };
        assert!(
            matches!(&b[0].node.value, Value::Object(c) if c.len() == 1),
            "{e:?}"
        );
        assert_eq!(w.len(), 1, "{w:?}");
        let (e, w) = super::parse("{\"a\": 1\n\"b\": 2}\n").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].0, 2);
        assert!(w[0].1.contains("a ',' is missing here"), "{w:?}");
        // What Go's scanner cannot read there is an error, as in Go.
        for bad in [
            "{\"a\": 1\n= 2}",
            "{\"a\": 1\n# c\n",
            "{\"a\": \"x\"on\"}",
            "{\"a\": 1 \"b",
            "{\"a\": 1 trueé}",
            "{\"a\": 1 null٣}",
        ] {
            assert!(super::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_are_read_as_the_go_helper_reads_them() {
        let ints = |n: &Node| -> Vec<String> {
            let Value::List(items) = &n.value else {
                panic!("{n:?}")
            };
            items
                .iter()
                .map(|i| match &i.value {
                    Value::Int(t) => t.clone(),
                    Value::Object(o) => format!("{{{}}}", o.len()),
                    v => panic!("{v:?}"),
                })
                .collect()
        };
        // Commas are optional and repeatable, true and false dropped, a '['
        // skipped (the first ']' ends the list); each warned once.
        for (text, read, warnings) in [
            ("{\"a\": [1 2 3]}", &["1", "2", "3"][..], 1),
            ("{\"a\": [,1,,2,]}", &["1", "2"][..], 2),
            ("{\"a\": [1, true, false, 2]}", &["1", "2"][..], 1),
            ("{\"a\": [[1, [2]}", &["1", "2"][..], 1),
            ("{\"a\": [{} {\"b\": 1}]}", &["{0}", "{1}"][..], 1),
        ] {
            let (e, w) = super::parse(text).unwrap();
            assert_eq!(ints(&e[0].node), read, "{text:?}");
            assert_eq!(w.len(), warnings, "{text:?}: {w:?}");
        }
        // '[[1], [2]]': the first ']' ends the list, and ', [' is no member.
        assert!(super::parse("{\"a\": [[1], [2]]}").is_err());
        // A '}' in a list ends the object the list is in; the list and its
        // key are dropped and reading goes on after the '}'.
        let (e, w) = super::parse("{\"h\": {\"x\": 1, \"a\": [1, }, \"b\": 2}").unwrap();
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["h", "b"]);
        assert!(matches!(&e[0].node.value, Value::Object(o) if o.len() == 1 && o[0].key == "x"));
        assert!(w[0].1.contains("list cut short by '}'"), "{w:?}");
        let (e, _) = super::parse("{\"a\": 1, \"b\": [2\n}").unwrap();
        assert_eq!(e.len(), 1);
        // In an object in a list, that object ends and the list goes on.
        let (e, _) = super::parse("{\"a\": [{\"b\": [1 }, 2], \"c\": 3}").unwrap();
        assert_eq!(ints(&e[0].node), ["{0}", "2"]);
        assert_eq!(e[1].key, "c");
    }

    #[test]
    fn an_inner_object_missing_a_comma_ends_where_the_go_helper_ends_it() {
        // The token after the member is skipped and the object ends; the
        // object around it goes on from there (and the '}' written for the
        // inner one closes it).
        let (e, w) = super::parse("{\"h\": {\"a\": 1 ] , \"b\": 2}, \"c\": 3}").unwrap();
        let Value::Object(h) = &e[0].node.value else {
            panic!("{e:?}")
        };
        assert_eq!(h.len(), 1);
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["h", "b"]);
        assert!(w[0].1.contains("ends the inner object"), "{w:?}");
        // Here the skipped token is "b", so the top level then meets ':'
        // and stops there.
        let (e, w) = super::parse("{\"h\": {\"a\": 1 \"b\": 2}, \"c\": 3}").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(w.len(), 2, "{w:?}");
        // Each object that ends so skips one token (warned once).
        let (e, w) = super::parse("{\"h\": {\"i\": {\"a\": 1 ] ] , \"c\": 3}").unwrap();
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["h", "c"]);
        assert_eq!(w.len(), 1, "{w:?}");
        // true, false and null are tokens there, skipped like ']'.
        let (e, _) = super::parse("{\"h\": {\"a\": 1 true , \"b\": 2}, \"c\": 3}").unwrap();
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["h", "b"]);
        // What Go's scanner cannot read there is an error.
        for bad in [
            "{\"h\": {\"a\": 1 # x}}",
            "{\"h\": {\"a\": 1 nope}}",
            // A word runs on through '-', as Go's identifiers do.
            "{\"h\": {\"a\": 1 true-x}}",
            "{\"h\": {\"a\": 1 01}}",
        ] {
            assert!(super::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_way_an_object_or_list_ends_gives_its_level_back() {
        // A hundred siblings of each form, more than MAX_DEPTH (64): each
        // must close the levels it opened, whichever way it ends.
        for (form, warned) in [
            ("{}", 0),
            ("{\"x\": 1}", 0),
            ("{\"x\": 1,}", 1),
            ("[1]", 0),
            ("{\"x\" }", 1),
            ("{\"x\": [1 }", 1),
        ] {
            let body: Vec<String> = (0..100).map(|i| format!("\"k{i}\": {form}")).collect();
            let text = format!("{{{}}}", body.join(", "));
            let (e, w) = super::parse(&text).unwrap_or_else(|e| panic!("{form}: {e:?}"));
            assert_eq!(e.len(), 100, "{form}");
            assert_eq!(w.len(), 100 * warned, "{form}: {w:?}");
        }
        // An inner object missing a comma ends at the token it skips.
        let body: Vec<String> = (0..100)
            .map(|i| format!("\"k{i}\": {{\"a\": 1 ]"))
            .collect();
        let (e, w) = super::parse(&format!("{{{}}}", body.join(", "))).unwrap();
        assert_eq!(e.len(), 100);
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn standard_text_is_read_without_a_warning() {
        for text in [
            "{\"a\": \"x y\"}",
            "{\"a\": 1.5}",
            "{\"a\": 1.5e3}",
            "{\"a\": 0.5}",
        ] {
            let (_, w) = super::parse(text).unwrap();
            assert!(w.is_empty(), "{text}: {w:?}");
        }
        for text in ["{\"a\": 1.}", "{\"a\": 1.e3}", "{\"a\": \"x\ty\"}"] {
            let (_, w) = super::parse(text).unwrap();
            assert_eq!(w.len(), 1, "{text}: {w:?}");
        }
    }

    #[test]
    fn nesting_is_bounded_and_large_documents_are_linear() {
        let deep = format!("{{\"a\": {}", "{\"a\": ".repeat(100_000));
        assert!(error(&deep).message.contains("more than 64 levels"));
        // Lists do not nest: a million '[' are skipped, warned once.
        let flat = format!("{{\"a\": {}1]}}", "[".repeat(1_000_000));
        let (e, w) = super::parse(&flat).unwrap();
        assert!(matches!(&e[0].node.value, Value::List(l) if l.len() == 1));
        assert_eq!(w.len(), 1, "{w:?}");
        // 80,000 keys: each line found in passing, not by a search.
        let body: Vec<String> = (0..80_000).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{\n{}\n}}", body.join(",\n"));
        let e = parse(&text).unwrap();
        assert_eq!(e.len(), 80_000);
        assert_eq!(e[79_999].line, 80_001);
        let long = format!("{{\"a\": \"{}\"}}", "\\n".repeat(1 << 19));
        assert!(parse(&long).is_ok());
    }
}
