//! The valid key nearest to a misspelt one.

/// Keys longer than this get no suggestion: no valid key is anywhere near
/// as long, and the edit distance costs the product of the two lengths.
const LONGEST: usize = 64;

/// The valid key closest to `key`, if one is close enough: a few edits
/// away (a third of the length, at least two), or a prefix of it, or it a
/// prefix of the valid key. Case is ignored.
pub fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    if key.is_empty() || key.len() > LONGEST * 4 || key.chars().count() > LONGEST {
        return None;
    }
    let key = key.to_lowercase();
    let (best, d) = known
        .iter()
        .map(|k| (*k, edit_distance(&key, k)))
        .min_by_key(|(_, d)| *d)?;
    let limit = (key.chars().count().max(best.len()) / 3).max(2);
    (d <= limit || best.starts_with(key.as_str()) || key.starts_with(best)).then_some(best)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
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
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn a_huge_key_costs_nothing() {
        let huge = format!("cert_dir{}", "x".repeat(1 << 20));
        assert_eq!(nearest(&huge, KEYS), None);
        assert_eq!(nearest(&"é".repeat(65), KEYS), None);
    }
}
