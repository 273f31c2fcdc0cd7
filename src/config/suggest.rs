//! The valid key nearest to a misspelt one.

/// Keys longer than this get no suggestion: no valid key is anywhere near
/// as long, and the edit distance costs the product of the two lengths.
const LONGEST: usize = 64;

/// The valid key closest to `key`, if one is close enough: a few edits
/// away (a third of the length, at least two), or a prefix of it, or it a
/// prefix of the valid key. Case is ignored; `known` is lower-case ASCII.
pub fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    if key.is_empty() || key.len() > LONGEST * 4 || key.chars().count() > LONGEST {
        return None;
    }
    let lower = key.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut best: Option<(&'a str, usize)> = None;
    for k in known {
        // The distance is at least the difference in length: skip a key
        // that cannot beat the best so far.
        if best.is_some_and(|(_, d)| chars.len().abs_diff(k.len()) >= d) {
            continue;
        }
        let d = edit_distance(&chars, k);
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((k, d));
        }
    }
    let (best, d) = best?;
    let limit = (chars.len().max(best.len()) / 3).max(2);
    (d <= limit || best.starts_with(lower.as_str()) || lower.starts_with(best)).then_some(best)
}

/// Levenshtein distance between `a` and a known key of at most
/// [`LONGEST`] characters.
fn edit_distance(a: &[char], b: &str) -> usize {
    let b: Vec<char> = b.chars().take(LONGEST).collect();
    let mut prev = [0usize; LONGEST + 1];
    let mut cur = [0usize; LONGEST + 1];
    for (j, slot) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *slot = j;
    }
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &[
        "agent_address",
        "svid_file_name",
        "jwt_svids",
        "cert_dir",
        "log_level",
    ];

    #[test]
    fn near_misses_find_their_key() {
        assert_eq!(nearest("svid_file", KEYS), Some("svid_file_name"));
        assert_eq!(nearest("jwt_svid", KEYS), Some("jwt_svids"));
        assert_eq!(nearest("agentAddress", KEYS), Some("agent_address"));
        assert_eq!(nearest("agent_adress", KEYS), Some("agent_address"));
        assert_eq!(nearest("LOGLEVEL", KEYS), Some("log_level"));
        assert_eq!(nearest("timeout", KEYS), None);
        assert_eq!(nearest("", KEYS), None);
    }

    #[test]
    fn distances() {
        let d = |a: &str, b: &str| edit_distance(&a.chars().collect::<Vec<_>>(), b);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", "abc"), 0);
        assert_eq!(d("é", "e"), 1);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("abc", "abd"), 1);
        assert_eq!(d("abc", "xyz"), 3);
        assert_eq!(d("flaw", "lawn"), 2);
        assert_eq!(d("cert_dir", "cret_dir"), 2);
    }

    #[test]
    fn how_near_is_near_enough() {
        // A third of the longer length: 14 / 3 = 4 edits for svid_file_name.
        assert_eq!(nearest("svid_fxxx_nxme", KEYS), Some("svid_file_name"));
        assert_eq!(nearest("svxd_fxxx_nxme", KEYS), None);
        // Of two keys as near, the first listed.
        assert_eq!(nearest("ab_z", &["ab_x", "ab_y"]), Some("ab_x"));
        // A key that extends a valid one is suggested up to 64 characters,
        // however many bytes they take.
        let long = |tail: &str, n: usize| format!("cert_dir{}", tail.repeat(n));
        assert_eq!(nearest(&long("x", 56), KEYS), Some("cert_dir"));
        assert_eq!(nearest(&long("é", 56), KEYS), Some("cert_dir"));
        assert_eq!(nearest(&long("x", 57), KEYS), None);
    }

    #[test]
    fn a_huge_key_costs_nothing() {
        let huge = format!("cert_dir{}", "x".repeat(1 << 20));
        assert_eq!(nearest(&huge, KEYS), None);
        assert_eq!(nearest(&"é".repeat(65), KEYS), None);
    }
}
