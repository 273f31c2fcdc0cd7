//! systemd's readiness protocol (`Type=notify`): `READY=1` once the first
//! complete set of files is written in daemon mode, `STATUS=` lines when
//! writes fail and when they recover, `RELOADING=1` around a reload.
//! Nothing at all without `NOTIFY_SOCKET`.
//!
//! The protocol is one datagram per message to the socket systemd names
//! (a path, or `@name` in the abstract namespace), so it is written here in
//! a few lines rather than taken from a crate; the datagram is sent without
//! blocking.

use std::os::unix::net::{SocketAddr, UnixDatagram};

use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::status::{StatusRx, WriteStatus};

/// Where systemd listens, if it does.
#[derive(Debug)]
pub struct Notifier {
    addr: SocketAddr,
    socket: UnixDatagram,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; `None` when it is unset or unusable.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                SocketAddr::from_abstract_name(name).ok()?
            }
            None => SocketAddr::from_pathname(&path).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        socket.set_nonblocking(true).ok()?;
        Some(Self { addr, socket })
    }

    /// Sends one message (newline-separated assignments); a failure is
    /// only logged at debug level: readiness is a courtesy to the manager.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            debug!("cannot notify the service manager: {e}");
        }
    }
}

/// Follows the status: `READY=1` once every configured output has been
/// written, then a `STATUS=` line each time some write fails or all are
/// written again.
pub async fn follow(
    notifier: std::sync::Arc<Notifier>,
    mut status: StatusRx,
    token: CancellationToken,
) {
    let mut ready_sent = false;
    let mut failing = false;
    loop {
        let (ready, failed) = {
            let s = status.borrow_and_update();
            let failed: Vec<String> = s
                .x509
                .filter(|w| *w == WriteStatus::Failed)
                .map(|_| "X.509".to_owned())
                .into_iter()
                .chain(
                    s.jwt
                        .iter()
                        .filter(|(_, w)| **w == WriteStatus::Failed)
                        .map(|(k, _)| k.clone()),
                )
                .collect();
            (s.is_ready(), failed)
        };
        if ready && !ready_sent {
            ready_sent = true;
            notifier.send("READY=1\nSTATUS=every credential file written");
        }
        if !failed.is_empty() && !failing {
            failing = true;
            notifier.send(&format!(
                "STATUS=writes failing ({}); the last good files are kept",
                failed.join(", ")
            ));
        } else if failed.is_empty() && failing && ready {
            failing = false;
            notifier.send("STATUS=every credential file written again");
        }
        tokio::select! {
            () = token.cancelled() => return,
            changed = status.changed() => if changed.is_err() { return },
        }
    }
}
