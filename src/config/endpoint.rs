//! Where the Workload API is: `agent_address`, else
//! `$SPIFFE_ENDPOINT_SOCKET`, else the SPIRE agent's usual socket. A bare
//! path, `unix:///path` and `unix:/path` all name the same socket.

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
    Ok(PathBuf::from(path))
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
