//! Backslash escapes in quoted strings, as the Go helper's readers decode
//! them (Go's `strconv` for both HCL v1 and JSON strings): `\a \b \f \n \r
//! \t \v \\ \"`, `\NNN` (octal) and `\xNN`, one byte each (several may
//! make up one UTF-8 character), and `\uNNNN` and `\UNNNNNNNN`, one
//! character each. Each syntax reports errors at its own positions and
//! decides what a surrogate code point becomes.

use std::fmt;

/// One escape, read from the text after its backslash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escape<'a> {
    /// The bytes it takes after the backslash.
    pub len: usize,
    /// The letter after the backslash (the first digit of an octal one).
    pub letter: char,
    /// Its digits as written (empty for a one-letter escape).
    pub digits: &'a str,
    /// Its value: a byte for the one-letter, octal and `\x` escapes (an
    /// octal one may be above 255: [`Escape::push`] refuses it), a code
    /// point for `\u` and `\U`.
    pub value: u32,
}

/// Why the text after a backslash is no escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The text ends after the backslash.
    End,
    /// An unknown letter (or a newline) follows the backslash.
    Letter(char),
    /// Fewer digits than the escape needs.
    Digits {
        letter: char,
        count: usize,
        radix: u32,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Invalid::End => f.write_str("string not terminated after a backslash"),
            Invalid::Letter('\n') => f.write_str(
                "a backslash at the end of a line: a string must end on the line it starts on",
            ),
            Invalid::Letter(c) => write!(
                f,
                "invalid escape \\{} in a string: the escapes are \\n \\t \\r \\\" \\\\ \\a \\b \\f \\v, \\NNN (octal), \\xNN, \\uNNNN and \\UNNNNNNNN",
                if c.is_control() {
                    format!("{c:?}")
                } else {
                    c.to_string()
                }
            ),
            Invalid::Digits {
                letter,
                count,
                radix,
            } => write!(
                f,
                "invalid escape \\{letter}: it needs {count} {} digits",
                if radix == 8 { "octal" } else { "hexadecimal" }
            ),
        }
    }
}

/// Reads the escape at the start of `rest`, the text after a backslash.
pub fn read(rest: &str) -> Result<Escape<'_>, Invalid> {
    let letter = rest.chars().next().ok_or(Invalid::End)?;
    if let Some(b) = one_letter(letter) {
        return Ok(Escape {
            len: 1,
            letter,
            digits: "",
            value: u32::from(b),
        });
    }
    // (letters before the digits, digits, radix)
    let (skip, count, radix) = match letter {
        '0'..='7' => (0, 3, 8),
        'x' => (1, 2, 16),
        'u' => (1, 4, 16),
        'U' => (1, 8, 16),
        _ => return Err(Invalid::Letter(letter)),
    };
    let digits = rest
        .get(skip..skip + count)
        .filter(|d| d.chars().all(|c| c.is_digit(radix)))
        .ok_or(Invalid::Digits {
            letter,
            count,
            radix,
        })?;
    let value = digits
        .chars()
        .fold(0, |v, c| v * radix + c.to_digit(radix).unwrap_or(0));
    Ok(Escape {
        len: skip + count,
        letter,
        digits,
        value,
    })
}

impl Escape<'_> {
    /// Whether it stands for a character (`\u`, `\U`) rather than a byte.
    pub fn is_char(&self) -> bool {
        matches!(self.letter, 'u' | 'U')
    }

    /// Appends its byte, or its character's UTF-8 bytes. An error for an
    /// octal escape above `\377`; `None` for a code point that is no
    /// character (a surrogate or beyond U+10FFFF), which each syntax
    /// handles its own way.
    pub fn push(&self, out: &mut Vec<u8>) -> Result<Option<()>, String> {
        if !self.is_char() {
            let Ok(b) = u8::try_from(self.value) else {
                return Err(format!("octal escape \\{} is above \\377", self.digits));
            };
            out.push(b);
            return Ok(Some(()));
        }
        Ok(char::from_u32(self.value).map(|c| push_char(c, out)))
    }
}

/// Appends `c` encoded as UTF-8.
pub fn push_char(c: char, out: &mut Vec<u8>) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// The byte of a one-letter escape (`\n`, `\"`...), if `c` is one.
fn one_letter(c: char) -> Option<u8> {
    Some(match c {
        'a' => 0x07,
        'b' => 0x08,
        'f' => 0x0c,
        'n' => b'\n',
        'r' => b'\r',
        't' => b'\t',
        'v' => 0x0b,
        '\\' => b'\\',
        '"' => b'"',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(rest: &str) -> (usize, Vec<u8>) {
        let e = read(rest).unwrap();
        let mut out = Vec::new();
        e.push(&mut out).unwrap().unwrap();
        (e.len, out)
    }

    #[test]
    fn every_form_decodes_as_go_decodes_it() {
        assert_eq!(decoded("n rest"), (1, b"\n".to_vec()));
        assert_eq!(decoded("a"), (1, vec![7]));
        assert_eq!(decoded("v"), (1, vec![11]));
        assert_eq!(decoded("\"x"), (1, b"\"".to_vec()));
        assert_eq!(decoded("101"), (3, b"A".to_vec()));
        assert_eq!(decoded("3778"), (3, vec![0xff]));
        assert_eq!(decoded("x41x"), (3, b"A".to_vec()));
        assert_eq!(decoded("xfF"), (3, vec![0xff]));
        assert_eq!(decoded("u00e9"), (5, "é".as_bytes().to_vec()));
        assert_eq!(decoded("U0001F600"), (9, "😀".as_bytes().to_vec()));
    }

    #[test]
    fn what_is_no_escape_says_why() {
        assert_eq!(read(""), Err(Invalid::End));
        assert_eq!(read("q"), Err(Invalid::Letter('q')));
        assert_eq!(read("/"), Err(Invalid::Letter('/')));
        assert_eq!(read("'"), Err(Invalid::Letter('\'')));
        assert_eq!(
            read("x4"),
            Err(Invalid::Digits {
                letter: 'x',
                count: 2,
                radix: 16
            })
        );
        assert_eq!(
            read("18"),
            Err(Invalid::Digits {
                letter: '1',
                count: 3,
                radix: 8
            })
        );
        // A multi-byte character where digits should be is no panic.
        assert!(read("uéééé").is_err());
        assert!(Invalid::Letter('\n').to_string().contains("end of a line"));
        assert!(Invalid::Letter('\t').to_string().contains("'\\t'"));
        let mut out = Vec::new();
        assert_eq!(
            read("400").unwrap().push(&mut out),
            Err("octal escape \\400 is above \\377".to_owned())
        );
        assert_eq!(read("ud800").unwrap().push(&mut out), Ok(None));
        assert_eq!(read("U00110000").unwrap().push(&mut out), Ok(None));
        assert!(out.is_empty());
    }
}
