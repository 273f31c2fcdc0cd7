//! A JSON configuration (RFC 8259), read into the same tree as HCL: keys in
//! file order with repeats kept (HCL v1 decodes a repeated JSON key like a
//! repeated HCL one), every key with its line, numbers with their literal
//! text. One pass over the text, nesting bounded by [`MAX_DEPTH`].

use super::tree::{floor_char_boundary, Entry, Node, SyntaxError, Value, MAX_DEPTH};

/// Warnings with their lines.
pub type Warnings = Vec<(usize, String)>;

/// The entries, and warnings (with their lines) for what the Go helper's
/// reader accepts beyond RFC 8259 and is read here as it reads it (see
/// docs/migrating.md): a comma before a closing `}` or `]`, text after the
/// document (ignored), objects cut short by the end of the file, a `}` or
/// a missing comma, and its way with lists (see [`Json::array`]).
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

/// What the Go helper's reader accepts beyond RFC 8259 in a list, or in
/// an inner object, warned about once per document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liberty {
    NoComma,
    EmptyElement,
    Bool,
    Nested,
    MissingCommaInObject,
}

impl Json<'_> {
    fn error(&self, message: String) -> SyntaxError {
        let offset = floor_char_boundary(self.text, self.pos);
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
            Some(b'"') => Value::Str(self.string()?),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            _ => return Err(self.error(format!("expected a JSON value, found {}", self.found()))),
        };
        Ok(Node { line, value })
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
        let key = self.string()?;
        let mut labels = Vec::new();
        loop {
            self.blank();
            if self.ends_here() {
                return Ok(Member::Ended);
            }
            if self.byte() != Some(b'"') {
                break;
            }
            labels.push(self.string()?);
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
            Some(b'-' | b'0'..=b'9') => self.number().is_ok(),
            Some(b'{' | b'}' | b'[' | b']' | b':' | b',') => {
                self.pos += 1;
                true
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
                let word = self.bytes[self.pos..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
                    .count();
                self.pos += word;
                matches!(&self.text[saved.0..self.pos], "true" | "false" | "null")
            }
            _ => false,
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
                Some(b'{' | b'"' | b'-' | b'0'..=b'9') => {
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

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(digits) = digits else {
            return Err(self.error("\\u needs four hexadecimal digits".to_owned()));
        };
        let v = u32::from_str_radix(digits, 16).map_err(|e| self.error(e.to_string()))?;
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            // Copy the plain run up to the next quote, backslash or control character.
            let run = self.bytes[self.pos..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .map_or(self.bytes.len(), |i| self.pos + i);
            out.push_str(&self.text[self.pos..run]);
            self.pos = run;
            match self.byte() {
                None => {
                    // Reported where it starts: a JSON string holds no newline.
                    self.pos = start;
                    return Err(self.error("string not terminated".to_owned()));
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.byte() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let hi = self.hex4()?;
                            let c = if (0xd800..0xdc00).contains(&hi) {
                                if !self.text[self.pos..].starts_with("\\u") {
                                    return Err(self.error(
                                        "a \\u escape of a high surrogate must be followed by one of a low surrogate".to_owned(),
                                    ));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.error(
                                        "a \\u escape of a high surrogate must be followed by one of a low surrogate".to_owned(),
                                    ));
                                }
                                char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                            } else {
                                char::from_u32(hi)
                            };
                            let Some(c) = c else {
                                return Err(self.error(
                                    "a \\u escape of a lone low surrogate is not a character"
                                        .to_owned(),
                                ));
                            };
                            out.push(c);
                            continue;
                        }
                        _ => {
                            return Err(self.error(format!(
                                "invalid escape \\{} in a JSON string",
                                self.found().trim_matches('\'')
                            )))
                        }
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.error(
                    "a control character (such as a newline) inside a JSON string must be escaped"
                        .to_owned(),
                )),
            }
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.byte().is_some_and(|b| b.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.byte() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        if digits(self) == 0 {
            return Err(self.error(format!("expected a digit, found {}", self.found())));
        }
        if self.bytes[int_start] == b'0' && self.pos - int_start > 1 {
            self.pos = int_start;
            return Err(self.error(
                "a JSON number cannot start with 0 (for an octal file mode write it as a string, \"0644\")".to_owned(),
            ));
        }
        let mut float = false;
        if self.byte() == Some(b'.') {
            self.pos += 1;
            float = true;
            if digits(self) == 0 {
                return Err(self.error(format!(
                    "expected a digit after '.', found {}",
                    self.found()
                )));
            }
        }
        if matches!(self.byte(), Some(b'e' | b'E')) {
            self.pos += 1;
            float = true;
            if matches!(self.byte(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.error(format!(
                    "expected a digit in the exponent, found {}",
                    self.found()
                )));
            }
        }
        let text = self.text[start..self.pos].to_owned();
        Ok(if float {
            Value::Float(text)
        } else {
            Value::Int(text)
        })
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
    fn errors_have_positions() {
        for (text, line, column, part) in [
            ("{\n \"a\": ,\n}", 2, 7, "expected a JSON value, found ','"),
            ("{\"a\": 1,,}", 1, 9, "expected a key in double quotes"),
            ("{\"a\": 0644}", 1, 7, "cannot start with 0"),
            ("{\"a\": \"x\ny\"}", 1, 9, "control character"),
            ("{\"a\": \"x", 1, 7, "string not terminated"),
            ("{\"a\" 1}", 1, 6, "expected ':' after the key"),
            ("{\"a\": \"\\q\"}", 1, 9, "invalid escape \\q"),
            ("{\"a\": \"\\ud800\"}", 1, 14, "low surrogate"),
            ("{\"a\": tru}", 1, 7, "expected a JSON value"),
            ("{\"a\": 1.}", 1, 9, "after '.'"),
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
        // What Go's scanner cannot read there is an error.
        for bad in [
            "{\"h\": {\"a\": 1 # x}}",
            "{\"h\": {\"a\": 1 nope}}",
            "{\"h\": {\"a\": 1 01}}",
        ] {
            assert!(super::parse(bad).is_err(), "{bad:?}");
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
