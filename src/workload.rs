//! The Workload API: the only module that talks to the `spiffe` crate's client.
//!
//! One gRPC channel to the agent is shared by every task (HTTP/2 multiplexes
//! the X.509 stream, the JWT bundle stream and every JWT-SVID fetch over one
//! connection). The channel connects lazily and, when the connection
//! breaks, reconnects once for all at the next call.
//!
//! Errors are classified once, here, into [`WorkloadError`], so retry
//! policies ask the error what it is instead of matching on strings, and
//! every message says in plain words what the agent said.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use spiffe::transport::{GrpcStatusCode, TransportError};
use spiffe::{JwtBundleSet, JwtSvid, WorkloadApiClient, WorkloadApiError, X509Context};

/// How long a single unary call (or the first message of a fetch) may take
/// before it counts as failed: an agent that accepts the connection and
/// never answers cannot hang the helper.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// What kind of failure, for retry policy and log de-duplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The socket does not exist.
    SocketMissing,
    /// The agent cannot be reached or answered Unavailable.
    Unavailable,
    /// No answer within the deadline.
    Timeout,
    /// A stream that was opened and then sent nothing.
    Stalled,
    /// The agent has no identity for this workload (`PermissionDenied`).
    NoIdentity,
    /// No JWT-SVID carries the configured hint.
    HintNotFound,
    /// A message over the gRPC size limit.
    TooLarge,
    /// The agent's answer could not be used (no SVID, bad certificate...).
    Malformed,
    /// The stream ended without an error.
    Closed,
    Other,
}

/// A failed Workload API call.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct WorkloadError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<WorkloadApiError>,
}

impl WorkloadError {
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether waiting and trying again may help: the agent is not up yet,
    /// not answering yet, or has not issued this workload's identity yet.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::SocketMissing
                | ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Stalled
                | ErrorKind::NoIdentity
                | ErrorKind::Closed
        )
    }

    /// Whether a reconnect will fail the same way (the agent sends the
    /// same oversized update again): someone has to act.
    pub fn is_persistent(&self) -> bool {
        self.kind == ErrorKind::TooLarge
    }

    /// The stream ended without an error.
    pub fn closed(socket: &Path) -> Self {
        Self {
            kind: ErrorKind::Closed,
            message: format!("the agent at {} closed the stream", socket.display()),
            source: None,
        }
    }

    /// A timeout, for tests of the policies that read errors.
    #[cfg(test)]
    pub fn timeout_for_tests(socket: &Path) -> Self {
        Self::timeout(socket, CALL_DEADLINE)
    }

    /// A stream that was opened and then sent nothing.
    pub fn stalled(socket: &Path, after: Duration) -> Self {
        Self {
            kind: ErrorKind::Stalled,
            message: format!(
                "the agent at {} opened the stream but sent no message within {}s (is it stuck?); opening it again",
                socket.display(),
                after.as_secs()
            ),
            source: None,
        }
    }

    fn timeout(socket: &Path, after: Duration) -> Self {
        Self {
            kind: ErrorKind::Timeout,
            message: format!(
                "the agent at {} did not answer within {}s (is it overloaded or stuck?)",
                socket.display(),
                after.as_secs()
            ),
            source: None,
        }
    }

    fn classify(socket: &Path, source: WorkloadApiError) -> Self {
        let s = socket.display();
        let (kind, message) = match &source {
            WorkloadApiError::NoIdentityIssued | WorkloadApiError::PermissionDenied(_) => (
                ErrorKind::NoIdentity,
                format!(
                    "the agent at {s} has no identity for this workload yet: no registration entry matches it ({source}); {}",
                    attested()
                ),
            ),
            WorkloadApiError::HintNotFound(hint) => (
                ErrorKind::HintNotFound,
                format!("no JWT-SVID with hint {hint:?} was returned by the Workload API"),
            ),
            WorkloadApiError::Transport(TransportError::Connect(_)) => unreachable_socket(socket),
            WorkloadApiError::Transport(TransportError::Status(st))
                if st.code() == GrpcStatusCode::Unavailable =>
            {
                let (kind, message) = unreachable_socket(socket);
                if kind == ErrorKind::SocketMissing {
                    (kind, message)
                } else {
                    (kind, format!("{message} ({})", st.message()))
                }
            }
            WorkloadApiError::Transport(TransportError::Status(st))
                if st.code() == GrpcStatusCode::DeadlineExceeded =>
            {
                (
                    ErrorKind::Timeout,
                    format!("the agent at {s} did not answer in time ({source})"),
                )
            }
            // tonic's decoder: "decoded message length too large: found N
            // bytes, the limit is: M bytes".
            WorkloadApiError::Transport(TransportError::Status(st))
                if st.code() == GrpcStatusCode::OutOfRange
                    && st.message().contains("message length too large") =>
            {
                (
                    ErrorKind::TooLarge,
                    format!("the agent at {s} sent an update over the 4 MiB gRPC message limit ({source}); a large federation is the usual cause"),
                )
            }
            WorkloadApiError::EmptyResponse
            | WorkloadApiError::MissingRequiredField { .. }
            | WorkloadApiError::InvalidResponseField { .. }
            | WorkloadApiError::X509Svid(_)
            | WorkloadApiError::JwtSvid(_)
            | WorkloadApiError::X509Bundle(_)
            | WorkloadApiError::JwtBundle(_)
            | WorkloadApiError::SpiffeId(_) => (
                ErrorKind::Malformed,
                format!("the agent at {s} sent an update that cannot be used: {source}"),
            ),
            _ => (
                ErrorKind::Other,
                format!("Workload API call to {s} failed: {source}"),
            ),
        };
        Self {
            kind,
            // The agent's words (gRPC status messages) may hold anything,
            // a newline that forges a log line included.
            message: escape_controls(&message),
            source: Some(source),
        }
    }
}

/// `text` with every control character written as an escape (`\n`,
/// `\u{1b}`), so text from the agent stays on its log line.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What the agent attests of this process, and how to look for its entry.
fn attested() -> String {
    let uid = nix::unistd::getuid();
    format!(
        "the agent attests this process as uid {uid}, gid {}, pid {}: `spire-server entry show -selector unix:uid:{uid}` lists the entries that match it",
        nix::unistd::getgid(),
        std::process::id()
    )
}

/// Why the socket cannot be reached, in words a person can act on.
fn unreachable_socket(socket: &Path) -> (ErrorKind, String) {
    use std::os::unix::fs::FileTypeExt as _;
    let s = socket.display();
    match std::fs::metadata(socket) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            ErrorKind::SocketMissing,
            format!("agent socket {s} does not exist: is the SPIRE agent running, and is the socket mounted here?"),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => (
            ErrorKind::Unavailable,
            format!("cannot reach agent socket {s}: permission denied (the helper's user cannot open it)"),
        ),
        Ok(m) if !m.file_type().is_socket() => (
            ErrorKind::Unavailable,
            format!("{s} is not a Unix socket: check agent_address"),
        ),
        _ => (
            ErrorKind::Unavailable,
            format!("the agent at {s} is not accepting connections (not running, or restarting)"),
        ),
    }
}

/// The Workload API endpoint and the one channel every task shares.
#[derive(Debug, Clone)]
pub struct Agent {
    socket: PathBuf,
    client: WorkloadApiClient,
}

impl Agent {
    /// A lazily connecting client for the socket at `socket`. Must be
    /// called inside the runtime.
    pub fn new(socket: PathBuf) -> Self {
        let path = socket.clone();
        let channel = tonic::transport::Endpoint::from_static("http://workload-api.invalid")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }));
        let endpoint = spiffe::transport::Endpoint::Unix(socket.clone());
        Self {
            socket,
            client: WorkloadApiClient::new_with_channel(endpoint, channel),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Classifies an error. Telling a missing socket from one nobody
    /// listens on looks at the filesystem, so it runs off the runtime's
    /// thread.
    async fn err(&self, e: WorkloadApiError) -> WorkloadError {
        let socket = self.socket.clone();
        tokio::task::spawn_blocking(move || WorkloadError::classify(&socket, e))
            .await
            .unwrap_or_else(|_| WorkloadError {
                kind: ErrorKind::Other,
                message: "classifying a Workload API error failed".to_owned(),
                source: None,
            })
    }

    async fn bounded<T>(
        &self,
        deadline: Duration,
        call: impl std::future::Future<Output = Result<T, WorkloadApiError>>,
    ) -> Result<T, WorkloadError> {
        match tokio::time::timeout(deadline, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.err(e).await),
            Err(_) => Err(WorkloadError::timeout(&self.socket, deadline)),
        }
    }

    /// `stream` with its errors classified (off the runtime thread).
    fn classified<T: Send + 'static>(
        &self,
        stream: impl Stream<Item = Result<T, WorkloadApiError>> + Send + 'static,
    ) -> std::pin::Pin<Box<dyn Stream<Item = Result<T, WorkloadError>> + Send>> {
        let agent = self.clone();
        Box::pin(stream.then(move |r| {
            let agent = agent.clone();
            async move {
                match r {
                    Ok(v) => Ok(v),
                    Err(e) => Err(agent.err(e).await),
                }
            }
        }))
    }

    /// One X.509 context: every SVID issued to this workload with its
    /// bundle, and the federated bundles.
    pub async fn fetch_x509(&self, deadline: Duration) -> Result<X509Context, WorkloadError> {
        self.bounded(deadline, self.client.fetch_x509_context())
            .await
    }

    /// A stream of X.509 contexts; it ends after the first error.
    pub async fn stream_x509(
        &self,
    ) -> Result<
        impl Stream<Item = Result<X509Context, WorkloadError>> + Send + Unpin + 'static,
        WorkloadError,
    > {
        let stream = self
            .bounded(CALL_DEADLINE, self.client.stream_x509_contexts())
            .await?;
        Ok(self.classified(stream))
    }

    /// A JWT-SVID for `audiences` (first is the main audience). With a hint,
    /// the SVID carrying that hint; otherwise the default (first) one.
    pub async fn fetch_jwt_svid(
        &self,
        audiences: &[String],
        hint: Option<&str>,
        deadline: Duration,
    ) -> Result<JwtSvid, WorkloadError> {
        match hint {
            None => {
                self.bounded(deadline, self.client.fetch_jwt_svid(audiences, None))
                    .await
            }
            Some(h) => {
                self.bounded(
                    deadline,
                    self.client.fetch_jwt_svid_by_hint(audiences, None, h),
                )
                .await
            }
        }
    }

    /// Asks the agent to validate `token` for `audience` against its JWT
    /// bundles (signature, audience, expiry).
    pub async fn validate_jwt(&self, audience: &str, token: &str) -> Result<(), WorkloadError> {
        self.bounded(
            CALL_DEADLINE,
            self.client.validate_jwt_token(audience, token),
        )
        .await
        .map(drop)
    }

    /// The current JWT bundles of every trust domain.
    pub async fn fetch_jwt_bundles(
        &self,
        deadline: Duration,
    ) -> Result<JwtBundleSet, WorkloadError> {
        self.bounded(deadline, self.client.fetch_jwt_bundles())
            .await
    }

    /// A stream of JWT bundle sets; it ends after the first error.
    pub async fn stream_jwt_bundles(
        &self,
    ) -> Result<
        impl Stream<Item = Result<JwtBundleSet, WorkloadError>> + Send + Unpin + 'static,
        WorkloadError,
    > {
        let stream = self
            .bounded(CALL_DEADLINE, self.client.stream_jwt_bundles())
            .await?;
        Ok(self.classified(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(e: WorkloadApiError) -> WorkloadError {
        WorkloadError::classify(Path::new("/nonexistent/agent.sock"), e)
    }

    #[test]
    fn permission_denied_and_unavailable_are_transient() {
        let e = classify(WorkloadApiError::NoIdentityIssued);
        assert_eq!(e.kind(), ErrorKind::NoIdentity);
        assert!(e.is_transient());
        assert!(
            e.to_string().contains("no registration entry matches it"),
            "{e}"
        );
        let uid = nix::unistd::getuid();
        assert!(
            e.to_string().contains(&format!(
                "uid {uid}, gid {}, pid {}: `spire-server entry show -selector unix:uid:{uid}`",
                nix::unistd::getgid(),
                std::process::id()
            )),
            "{e}"
        );
        assert!(classify(WorkloadApiError::PermissionDenied("x".into())).is_transient());
        let unavailable = TransportError::status(GrpcStatusCode::Unavailable, "down");
        let e = classify(WorkloadApiError::Transport(unavailable));
        assert!(e.is_transient());
        assert_eq!(e.kind(), ErrorKind::SocketMissing);
        assert!(
            e.to_string().contains(
                "agent socket /nonexistent/agent.sock does not exist: is the SPIRE agent running"
            ),
            "{e}"
        );
        let refused = TransportError::connect(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(classify(WorkloadApiError::Transport(refused)).is_transient());
    }

    #[test]
    fn the_agents_words_cannot_forge_a_log_line() {
        let forged = "denied\n2026-01-01T00:00:00Z  INFO X.509 SVID written\u{1b}[2J";
        let status = TransportError::status(GrpcStatusCode::Internal, forged);
        let e = classify(WorkloadApiError::Transport(status));
        let text = e.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("denied\\n2026"), "{text}");
        assert_eq!(escape_controls("plain text"), "plain text");
    }

    #[test]
    fn an_existing_socket_nobody_listens_on_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.sock");
        drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
        let e = WorkloadError::classify(
            &p,
            WorkloadApiError::Transport(TransportError::status(
                GrpcStatusCode::Unavailable,
                "refused",
            )),
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("not accepting connections"), "{e}");
        let f = dir.path().join("file");
        std::fs::write(&f, b"").unwrap();
        let e = WorkloadError::classify(
            &f,
            WorkloadApiError::Transport(TransportError::status(GrpcStatusCode::Unavailable, "x")),
        );
        assert!(e.to_string().contains("is not a Unix socket"), "{e}");
    }

    #[test]
    fn a_message_over_the_size_limit_is_its_own_persistent_error() {
        let status = TransportError::status(
            GrpcStatusCode::OutOfRange,
            "Error, decoded message length too large: found 6146521 bytes, the limit is: 4194304 bytes",
        );
        let e = classify(WorkloadApiError::Transport(status));
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(!e.is_transient());
        let text = e.to_string();
        assert!(text.contains("4 MiB gRPC message limit"), "{text}");
        assert!(text.contains("found 6146521 bytes"), "{text}");
        assert!(e.is_persistent());

        let other = TransportError::status(GrpcStatusCode::OutOfRange, "something else");
        let e = classify(WorkloadApiError::Transport(other));
        assert_eq!(e.kind(), ErrorKind::Other);
        assert!(!e.is_persistent());
    }

    #[test]
    fn invalid_argument_hint_not_found_and_malformed_are_final() {
        let invalid = TransportError::status(GrpcStatusCode::InvalidArgument, "bad");
        assert!(!classify(WorkloadApiError::Transport(invalid)).is_transient());
        let e = classify(WorkloadApiError::HintNotFound("h1".into()));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("\"h1\""));
        let e = classify(WorkloadApiError::EmptyResponse);
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert!(!e.is_transient());
    }

    #[tokio::test]
    async fn a_silent_agent_times_out_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.sock");
        // Accepts connections and never answers.
        let listener = tokio::net::UnixListener::bind(&p).unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let agent = Agent::new(p);
        let e = agent
            .fetch_jwt_bundles(Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.is_transient());
    }
}
