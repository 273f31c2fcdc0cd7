//! Integers and durations read as the Go helper reads them: integers as
//! `strconv.ParseInt(text, 0, 0)` (on a 64-bit machine) does, durations as
//! `time.ParseDuration` does.

use std::time::Duration;

/// Go's `strconv.ParseInt(text, 0, 64)`: an optional sign, then `0x`, `0o`,
/// `0b` or a leading `0` (octal), else decimal; `_` may separate digits.
pub fn go_parse_int(text: &str) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = go_parse_uint(body)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

fn go_parse_uint(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (radix, digits) = match (b[0], b.get(1).map(u8::to_ascii_lowercase)) {
        (b'0', Some(b'b')) if b.len() >= 3 => (2, &b[2..]),
        (b'0', Some(b'o')) if b.len() >= 3 => (8, &b[2..]),
        (b'0', Some(b'x')) if b.len() >= 3 => (16, &b[2..]),
        (b'0', _) => (8, &b[1..]),
        _ => (10, b),
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        if c == b'_' {
            underscores = true;
            continue;
        }
        let d = char::from(c).to_digit(36).filter(|&d| d < radix)?;
        n = n.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    if underscores && !underscores_well_placed(text) {
        return None;
    }
    Some(n)
}

/// What came last while checking underscores: a digit (or the base
/// prefix), an underscore, or something else.
#[derive(PartialEq)]
enum Last {
    Start,
    Digit,
    Underscore,
    Other,
}

/// Go's rule for `_` in a number: only between two digits, or between the
/// base prefix and a digit.
fn underscores_well_placed(text: &str) -> bool {
    let b = text.as_bytes();
    let mut last = Last::Start;
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        hex = b[1].eq_ignore_ascii_case(&b'x');
        last = Last::Digit;
        i = 2;
    }
    for &c in &b[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            last = Last::Digit;
        } else if c == b'_' {
            if last != Last::Digit {
                return false;
            }
            last = Last::Underscore;
        } else {
            if last == Last::Underscore {
                return false;
            }
            last = Last::Other;
        }
    }
    last != Last::Underscore
}

/// Why a duration cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    Syntax,
    MissingUnit,
    UnknownUnit(String),
    Negative,
    TooLarge,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Syntax => f.write_str("it is not a duration"),
            DurationError::MissingUnit => f.write_str("a number in it has no unit"),
            DurationError::UnknownUnit(u) => write!(
                f,
                "{} is not a unit (the units are ns, us, ms, s, m and h)",
                super::tree::quote(u)
            ),
            DurationError::Negative => f.write_str("it is negative"),
            DurationError::TooLarge => f.write_str("it is longer than 292 years"),
        }
    }
}

/// The longest duration Go can hold: 2^63 - 1 nanoseconds.
const MAX_NANOS: u64 = i64::MAX as u64;

/// Go's `time.ParseDuration`, for durations that may not be negative:
/// `"90s"`, `"1h30m"`, `"1.5h"`, `"500ms"`, `"0"`.
pub fn go_duration(text: &str) -> Result<Duration, DurationError> {
    let (negative, mut s) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::Syntax);
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let (v, rest) = duration_term(s)?;
        s = rest;
        total = within_go(total.checked_add(v))?;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative);
    }
    if total > MAX_NANOS {
        return Err(DurationError::TooLarge);
    }
    Ok(Duration::from_nanos(total))
}

/// A value that may still be in Go's range (one past its end is allowed
/// while adding up, as Go allows it).
fn within_go(v: Option<u64>) -> Result<u64, DurationError> {
    v.filter(|&v| v <= MAX_NANOS + 1)
        .ok_or(DurationError::TooLarge)
}

/// One `<number><unit>` term at the start of `s`: its nanoseconds and the
/// rest of `s`.
fn duration_term(s: &str) -> Result<(u64, &str), DurationError> {
    if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
        return Err(DurationError::Syntax);
    }
    // The whole part.
    let whole_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut whole: u64 = 0;
    for b in s[..whole_len].bytes() {
        whole = within_go(
            whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u64::from(b - b'0'))),
        )?;
    }
    let mut s = &s[whole_len..];
    let (fraction, scale, fraction_len) = match s.strip_prefix('.') {
        Some(rest) => {
            let (fraction, scale, len) = duration_fraction(rest);
            s = &rest[len..];
            (fraction, scale, len)
        }
        None => (0, 1.0, 0),
    };
    if whole_len == 0 && fraction_len == 0 {
        return Err(DurationError::Syntax);
    }
    let unit_len = s
        .bytes()
        .take_while(|&b| b != b'.' && !b.is_ascii_digit())
        .count();
    if unit_len == 0 {
        return Err(DurationError::MissingUnit);
    }
    let unit: u64 = match &s[..unit_len] {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => return Err(DurationError::UnknownUnit(other.to_owned())),
    };
    let mut v = within_go(whole.checked_mul(unit))?;
    if fraction > 0 {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "Go computes the fraction in float64 the same way"
        )]
        let part = (fraction as f64 * (unit as f64 / scale)) as u64;
        v = within_go(v.checked_add(part))?;
    }
    Ok((v, &s[unit_len..]))
}

/// The digits after a decimal point: (their value, 10^(digits used), the
/// digits' length). Digits past what fits are ignored, as Go does.
fn duration_fraction(rest: &str) -> (u64, f64, usize) {
    let len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut fraction: u64 = 0;
    let mut scale = 1f64;
    for b in rest[..len].bytes() {
        match fraction
            .checked_mul(10)
            .and_then(|f| f.checked_add(u64::from(b - b'0')))
            .filter(|&f| f <= MAX_NANOS + 1)
        {
            Some(f) => {
                fraction = f;
                scale *= 10.0;
            }
            None => break,
        }
    }
    (fraction, scale, len)
}

/// A whole number of seconds as a duration, within Go's range.
pub fn seconds(n: i64) -> Result<Duration, DurationError> {
    let n = u64::try_from(n).map_err(|_| DurationError::Negative)?;
    if n > MAX_NANOS / 1_000_000_000 {
        return Err(DurationError::TooLarge);
    }
    Ok(Duration::from_secs(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_integers() {
        for (t, v) in [
            ("0", 0),
            ("10", 10),
            ("010", 8),
            ("0x1F", 31),
            ("0X1f", 31),
            ("0o17", 15),
            ("0b101", 5),
            ("-010", -8),
            ("+7", 7),
            ("1_000", 1000),
            ("0x_1f", 31),
            ("0_7", 7),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(go_parse_int(t), Some(v), "{t}");
        }
        for t in [
            "",
            "-",
            "08",
            "0x",
            "0b",
            "1__000",
            "_1",
            "1_",
            "0x_",
            "1.0",
            " 1",
            "abc",
            "--1",
            "9223372036854775808",
            "-9223372036854775809",
            "0b102",
        ] {
            assert_eq!(go_parse_int(t), None, "{t}");
        }
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        for (t, d) in [
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("90s", ms(90_000)),
            ("5m", ms(300_000)),
            ("1h30m", ms(5_400_000)),
            ("500ms", ms(500)),
            ("1.5h", ms(5_400_000)),
            (".5s", ms(500)),
            ("1.s", ms(1000)),
            ("+2s", ms(2000)),
            ("1us", Duration::from_micros(1)),
            ("1µs", Duration::from_micros(1)),
            ("1μs", Duration::from_micros(1)),
            ("3ns", Duration::from_nanos(3)),
            ("1h1m1s1ms", ms(3_661_001)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ] {
            assert_eq!(go_duration(t), Ok(d), "{t}");
        }
        for (t, e) in [
            ("", DurationError::Syntax),
            ("s", DurationError::Syntax),
            (".s", DurationError::Syntax),
            ("1", DurationError::MissingUnit),
            ("1s2", DurationError::MissingUnit),
            ("1sec", DurationError::UnknownUnit("sec".into())),
            ("1 s", DurationError::UnknownUnit(" s".into())),
            ("-1s", DurationError::Negative),
            ("2562048h", DurationError::TooLarge),
            ("99999999999999999999s", DurationError::TooLarge),
        ] {
            assert_eq!(go_duration(t), Err(e), "{t}");
        }
        assert_eq!(seconds(90), Ok(Duration::from_secs(90)));
        assert_eq!(seconds(-1), Err(DurationError::Negative));
        assert_eq!(seconds(i64::MAX), Err(DurationError::TooLarge));
    }

    /// Go's limits, to the nanosecond: 2^63 - 1 is the longest duration,
    /// and 2^63 is reached (then refused as negative, not as too long)
    /// only by a negative duration.
    #[test]
    fn durations_at_the_edges_of_gos_range() {
        let max = Duration::from_nanos(MAX_NANOS);
        assert_eq!(go_duration("9223372036854775807ns"), Ok(max));
        assert_eq!(go_duration("2562047h47m16.854775807s"), Ok(max));
        assert_eq!(
            go_duration("9223372036854775808ns"),
            Err(DurationError::TooLarge)
        );
        for at_two_to_63 in [
            "-9223372036854775808ns",
            "-9223372036.854775808s",
            "-2562047h47m16.854775808s",
        ] {
            assert_eq!(
                go_duration(at_two_to_63),
                Err(DurationError::Negative),
                "{at_two_to_63}"
            );
        }
        assert_eq!(go_duration("-0s"), Ok(Duration::ZERO));
        assert_eq!(go_duration("-0"), Ok(Duration::ZERO));
        assert_eq!(
            seconds(9_223_372_036),
            Ok(Duration::from_secs(9_223_372_036))
        );
        assert_eq!(seconds(9_223_372_037), Err(DurationError::TooLarge));
        assert_eq!(seconds(-1), Err(DurationError::Negative));
    }

    #[test]
    fn a_base_prefix_needs_digits_and_underscores_sit_between_digits() {
        for bare in ["0b", "0o", "0x", "0B", "0X"] {
            assert_eq!(go_parse_int(bare), None, "{bare}");
        }
        assert!(underscores_well_placed("0x_1f"));
        assert!(underscores_well_placed("1_000"));
        // Only a leading 0 makes a base prefix.
        assert!(!underscores_well_placed("1x_1"));
        // An underscore must be followed by a digit, and other characters
        // may follow digits.
        assert!(!underscores_well_placed("1_a"));
        assert!(underscores_well_placed("1a"));
        assert!(!underscores_well_placed("1_"));
        assert!(!underscores_well_placed("_1"));
    }
}
