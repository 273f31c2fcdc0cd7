//! The Workload API: the only module that talks to the `spiffe` crate's client.
//!
//! Errors are classified once, here, into [`WorkloadError`], so retry
//! policies ask the error what it is instead of matching on strings.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use spiffe::transport::{Endpoint, GrpcStatusCode, TransportError};
use spiffe::{JwtBundleSet, JwtSvid, WorkloadApiClient, WorkloadApiError, X509Context};

use crate::backoff::Repeats;

/// A failed Workload API call.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The agent is not there (no socket, connection refused, or the
    /// server answered Unavailable). Usually transient.
    #[error("Workload API at {} is unavailable: {source}", socket.display())]
    Unavailable {
        socket: PathBuf,
        #[source]
        source: WorkloadApiError,
    },
    /// The agent has no identity for this workload yet (PermissionDenied).
    /// Usually transient: the registration entry may not be minted yet.
    #[error("Workload API at {} denied the request: {source}", socket.display())]
    Denied {
        socket: PathBuf,
        #[source]
        source: WorkloadApiError,
    },
    /// No JWT-SVID carries the configured hint.
    #[error("no JWT-SVID with hint {hint:?} was returned by the Workload API")]
    HintNotFound { hint: String },
    /// A message over the gRPC size limit (tonic's default, 4 MiB, the same
    /// as the Go helper's): the agent sends the same update again after a
    /// reconnect, so this does not pass by itself.
    #[error("Workload API at {} sent an update over the 4 MiB gRPC message limit ({source}); a large federation is the usual cause", socket.display())]
    TooLarge {
        socket: PathBuf,
        #[source]
        source: WorkloadApiError,
    },
    /// Anything else: a malformed response, an invalid argument, …
    #[error("Workload API call to {} failed: {source}", socket.display())]
    Other {
        socket: PathBuf,
        #[source]
        source: WorkloadApiError,
    },
}

impl WorkloadError {
    fn classify(socket: &Path, source: WorkloadApiError) -> Self {
        let socket = socket.to_path_buf();
        match &source {
            WorkloadApiError::NoIdentityIssued | WorkloadApiError::PermissionDenied(_) => {
                Self::Denied { socket, source }
            }
            WorkloadApiError::HintNotFound(hint) => Self::HintNotFound { hint: hint.clone() },
            WorkloadApiError::Transport(TransportError::Connect(_)) => {
                Self::Unavailable { socket, source }
            }
            WorkloadApiError::Transport(TransportError::Status(s))
                if s.code() == GrpcStatusCode::Unavailable =>
            {
                Self::Unavailable { socket, source }
            }
            // tonic's decoder: "decoded message length too large: found N
            // bytes, the limit is: M bytes".
            WorkloadApiError::Transport(TransportError::Status(s))
                if s.code() == GrpcStatusCode::OutOfRange
                    && s.message().contains("message length too large") =>
            {
                Self::TooLarge { socket, source }
            }
            _ => Self::Other { socket, source },
        }
    }

    /// Whether waiting and trying again may help: the agent is not up yet,
    /// or it has not issued this workload's identity yet.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Denied { .. })
    }

    /// Whether a reconnect will fail the same way: the agent sends the same
    /// oversized update again.
    pub fn is_persistent(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }
}

/// Why a Workload API stream (X.509 contexts, JWT bundles) ended.
#[derive(Debug)]
pub enum StreamEnd {
    Failed(WorkloadError),
    /// The agent closed the stream.
    Closed,
}

impl StreamEnd {
    /// Logs why `stream` ended before a reconnect. Transient causes go
    /// through `repeats`, so an absent agent is not logged every time; a
    /// persistent one is an error every time, since it needs someone to act.
    pub fn report(&self, stream: &str, repeats: &mut Repeats) {
        match self {
            Self::Failed(e) if e.is_persistent() => {
                tracing::error!("{stream} stream: {e}; the files on disk are kept, reconnecting")
            }
            Self::Failed(e) => repeats.warn(&format!("{stream} stream: {e}; reconnecting")),
            Self::Closed => {
                repeats.warn(&format!(
                    "{stream} stream: the agent closed the stream; reconnecting"
                ));
            }
        }
    }
}

impl From<WorkloadError> for StreamEnd {
    fn from(e: WorkloadError) -> Self {
        Self::Failed(e)
    }
}

/// A Workload API endpoint (a Unix socket).
#[derive(Debug, Clone)]
pub struct Agent {
    socket: PathBuf,
}

impl Agent {
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn err(&self, e: WorkloadApiError) -> WorkloadError {
        WorkloadError::classify(&self.socket, e)
    }

    /// Connects to the agent. Fails at once when the socket is missing.
    pub async fn connect(&self) -> Result<Client, WorkloadError> {
        let inner = WorkloadApiClient::connect(Endpoint::Unix(self.socket.clone()))
            .await
            .map_err(|e| self.err(e))?;
        Ok(Client {
            agent: self.clone(),
            inner,
        })
    }
}

/// A connected Workload API client.
#[derive(Debug, Clone)]
pub struct Client {
    agent: Agent,
    inner: WorkloadApiClient,
}

impl Client {
    /// One X.509 context: every SVID issued to this workload with its
    /// bundle, and the federated bundles.
    pub async fn fetch_x509(&self) -> Result<X509Context, WorkloadError> {
        self.inner
            .fetch_x509_context()
            .await
            .map_err(|e| self.agent.err(e))
    }

    /// A stream of X.509 contexts; it ends after the first error.
    pub async fn stream_x509(
        &self,
    ) -> Result<
        impl Stream<Item = Result<X509Context, WorkloadError>> + Send + Unpin + 'static,
        WorkloadError,
    > {
        let agent = self.agent.clone();
        let stream = self
            .inner
            .stream_x509_contexts()
            .await
            .map_err(|e| self.agent.err(e))?;
        Ok(stream.map(move |r| r.map_err(|e| agent.err(e))))
    }

    /// A JWT-SVID for `audiences` (first is the main audience). With a hint,
    /// the SVID carrying that hint; otherwise the default (first) one.
    pub async fn fetch_jwt_svid(
        &self,
        audiences: &[String],
        hint: Option<&str>,
    ) -> Result<JwtSvid, WorkloadError> {
        let result = match hint {
            None => self.inner.fetch_jwt_svid(audiences, None).await,
            Some(h) => self.inner.fetch_jwt_svid_by_hint(audiences, None, h).await,
        };
        result.map_err(|e| self.agent.err(e))
    }

    /// Asks the agent to validate `token` for `audience` against its JWT
    /// bundles (signature, audience, expiry).
    pub async fn validate_jwt(&self, audience: &str, token: &str) -> Result<(), WorkloadError> {
        self.inner
            .validate_jwt_token(audience, token)
            .await
            .map(drop)
            .map_err(|e| self.agent.err(e))
    }

    /// The current JWT bundles of every trust domain.
    pub async fn fetch_jwt_bundles(&self) -> Result<JwtBundleSet, WorkloadError> {
        self.inner
            .fetch_jwt_bundles()
            .await
            .map_err(|e| self.agent.err(e))
    }

    /// A stream of JWT bundle sets; it ends after the first error.
    pub async fn stream_jwt_bundles(
        &self,
    ) -> Result<
        impl Stream<Item = Result<JwtBundleSet, WorkloadError>> + Send + Unpin + 'static,
        WorkloadError,
    > {
        let agent = self.agent.clone();
        let stream = self
            .inner
            .stream_jwt_bundles()
            .await
            .map_err(|e| self.agent.err(e))?;
        Ok(stream.map(move |r| r.map_err(|e| agent.err(e))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(e: WorkloadApiError) -> WorkloadError {
        WorkloadError::classify(Path::new("/s"), e)
    }

    #[test]
    fn permission_denied_and_unavailable_are_transient() {
        assert!(classify(WorkloadApiError::NoIdentityIssued).is_transient());
        assert!(classify(WorkloadApiError::PermissionDenied("x".into())).is_transient());
        let unavailable = TransportError::status(GrpcStatusCode::Unavailable, "down");
        assert!(classify(WorkloadApiError::Transport(unavailable)).is_transient());
        let refused = TransportError::connect(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(classify(WorkloadApiError::Transport(refused)).is_transient());
    }

    #[test]
    fn a_message_over_the_size_limit_is_its_own_persistent_error() {
        let status = TransportError::status(
            GrpcStatusCode::OutOfRange,
            "Error, decoded message length too large: found 6146521 bytes, the limit is: 4194304 bytes",
        );
        let e = classify(WorkloadApiError::Transport(status));
        assert!(matches!(e, WorkloadError::TooLarge { .. }), "{e:?}");
        assert!(!e.is_transient());
        let text = e.to_string();
        assert!(text.contains("4 MiB gRPC message limit"), "{text}");
        assert!(text.contains("found 6146521 bytes"), "{text}");
        assert!(e.is_persistent());

        let other = TransportError::status(GrpcStatusCode::OutOfRange, "something else");
        let e = classify(WorkloadApiError::Transport(other));
        assert!(matches!(e, WorkloadError::Other { .. }), "{e:?}");
        assert!(!e.is_persistent());
    }

    #[test]
    fn invalid_argument_and_hint_not_found_are_final() {
        let invalid = TransportError::status(GrpcStatusCode::InvalidArgument, "bad");
        assert!(!classify(WorkloadApiError::Transport(invalid)).is_transient());
        let e = classify(WorkloadApiError::HintNotFound("h1".into()));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("\"h1\""));
    }
}
