//! Where the Workload API is: `agent_address`, else
//! `$SPIFFE_ENDPOINT_SOCKET`, else the SPIRE agent's usual socket. A bare
//! path, `unix:///path` and `unix:/path` all name the same socket.
//!
//! The Go helper reads the address as a URL (`unix://` + the address), so
//! its path is read the same way here: percent-escapes are decoded
//! (`/run/%61.sock` is `/run/a.sock`), and what Go refuses at start-up is
//! refused at load: a control character (a heredoc's trailing newline), a
//! query (`?q`), a fragment (`#x`), a bad escape (`%zz`), a bare number.

use std::os::unix::ffi::OsStringExt as _;
use std::path::PathBuf;

use super::tree::quote;

pub const ENV: &str = "SPIFFE_ENDPOINT_SOCKET";
pub const DEFAULT_SOCKET: &str = "/tmp/spire-agent/public/api.sock";

/// The socket path for an address, or why it is not a Unix socket address.
pub fn socket_path(address: &str) -> Result<PathBuf, String> {
    let path = if let Some(rest) = address.strip_prefix("unix://") {
        // unix:///path: an empty authority, then the absolute path.
        if !rest.starts_with('/') {
            return Err(format!(
                "{} has a host part; write unix:///path/to/socket or a plain path",
                quote(address)
            ));
        }
        rest
    } else if let Some(rest) = address.strip_prefix("unix:") {
        rest
    } else if address.starts_with("tcp:") {
        return Err(format!(
            "{} is a TCP address; only a Unix socket is supported",
            quote(address)
        ));
    } else {
        address
    };
    if path.is_empty() {
        return Err(format!("{} names no socket path", quote(address)));
    }
    if path.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{} is a number, not a socket path (the Workload API is a Unix socket, not a port)",
            quote(address)
        ));
    }
    url_path(path)
        .map(|bytes| PathBuf::from(std::ffi::OsString::from_vec(bytes)))
        .map_err(|why| format!("{} is not a valid socket address: {why}", quote(address)))
}

/// A URL's path as Go's `net/url` reads it: escapes decoded; a control
/// character, a bad escape, a query or a fragment refused (an empty `?` or
/// `#` at the end is dropped, as Go drops it).
fn url_path(raw: &str) -> Result<Vec<u8>, String> {
    if let Some(c) = raw.chars().find(char::is_ascii_control) {
        return Err(format!(
            "it holds the control character {c:?} (a heredoc's last line break?)"
        ));
    }
    let (rest, fragment) = raw.split_once('#').unwrap_or((raw, ""));
    if !fragment.is_empty() {
        return Err(format!(
            "a fragment ({}) is not allowed",
            quote(&format!("#{fragment}"))
        ));
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !query.is_empty() {
        return Err(format!(
            "a query ({}) is not allowed",
            quote(&format!("?{query}"))
        ));
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else {
                let bad: String = path[i..].chars().take(3).collect();
                return Err(format!("{} is not a valid escape", quote(&bad)));
            };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Where an address came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Key,
    Env,
    Default,
}

/// `agent_address` if set, else the environment variable, else the default.
pub fn resolve(agent_address: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Origin) {
    if !agent_address.is_empty() {
        return (agent_address.to_owned(), Origin::Key);
    }
    match env(ENV).filter(|v| !v.is_empty()) {
        Some(v) => (v, Origin::Env),
        None => (DEFAULT_SOCKET.to_owned(), Origin::Default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_names_the_same_socket() {
        for a in [
            "/run/agent.sock",
            "unix:///run/agent.sock",
            "unix:/run/agent.sock",
        ] {
            assert_eq!(
                socket_path(a).unwrap(),
                PathBuf::from("/run/agent.sock"),
                "{a}"
            );
        }
        assert_eq!(
            socket_path("rel/agent.sock").unwrap(),
            PathBuf::from("rel/agent.sock")
        );
    }

    #[test]
    fn addresses_are_read_as_go_reads_urls() {
        assert_eq!(
            socket_path("/run/%61.sock").unwrap(),
            PathBuf::from("/run/a.sock")
        );
        assert_eq!(
            socket_path("unix:///run/%2f.sock").unwrap(),
            PathBuf::from("/run//.sock")
        );
        assert_eq!(
            socket_path("/run/a.sock?").unwrap(),
            PathBuf::from("/run/a.sock")
        );
        assert_eq!(
            socket_path("/run/a.sock#").unwrap(),
            PathBuf::from("/run/a.sock")
        );
        assert_eq!(
            socket_path("/run/a b.sock").unwrap(),
            PathBuf::from("/run/a b.sock")
        );
        // Any byte, as a Linux path may hold.
        assert_eq!(
            socket_path("/run/%ff.sock")
                .unwrap()
                .as_os_str()
                .as_encoded_bytes(),
            b"/run/\xff.sock"
        );
        for (bad, why) in [
            ("/run/a.sock\n", "control character"),
            ("/run/a\t.sock", "control character"),
            ("/run/a.sock#x", "a fragment (\"#x\")"),
            ("/run/a.sock?q=1", "a query (\"?q=1\")"),
            ("/run/%zz.sock", "\"%zz\" is not a valid escape"),
            ("/run/a%2", "not a valid escape"),
            ("8081", "is a number, not a socket path"),
            ("unix:///a?b", "a query"),
        ] {
            let e = socket_path(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn other_forms_are_refused_with_a_reason() {
        assert!(socket_path("tcp:127.0.0.1:8081")
            .unwrap_err()
            .contains("TCP"));
        assert!(socket_path("unix://host/p").unwrap_err().contains("host"));
        assert!(socket_path("unix:").unwrap_err().contains("no socket"));
    }

    #[test]
    fn key_then_environment_then_default() {
        let none = |_: &str| None;
        let set = |k: &str| (k == ENV).then(|| "unix:///e.sock".to_owned());
        let empty = |_: &str| Some(String::new());
        assert_eq!(resolve("/k.sock", &set), ("/k.sock".into(), Origin::Key));
        assert_eq!(resolve("", &set), ("unix:///e.sock".into(), Origin::Env));
        assert_eq!(resolve("", &none), (DEFAULT_SOCKET.into(), Origin::Default));
        assert_eq!(
            resolve("", &empty),
            (DEFAULT_SOCKET.into(), Origin::Default)
        );
    }
}
