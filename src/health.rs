//! The health server: liveness and readiness as JSON, read from the shared
//! status (SPEC §7).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::HealthConfig;
use crate::status::StatusRx;

#[derive(Debug, thiserror::Error)]
#[error("health server cannot listen on port {port}: {source}")]
pub struct BindError {
    port: u16,
    #[source]
    source: std::io::Error,
}

/// Binds `bind_port` on every interface (IPv6 and IPv4 where the system
/// allows one socket for both, else IPv4 only).
pub async fn bind(cfg: &HealthConfig) -> Result<TcpListener, BindError> {
    let port = cfg.bind_port;
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    match TcpListener::bind(v6).await {
        Ok(l) => Ok(l),
        Err(_) => TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .await
            .map_err(|source| BindError { port, source }),
    }
}

/// Serves until `token` is cancelled.
pub async fn serve(
    listener: TcpListener,
    cfg: HealthConfig,
    status: StatusRx,
    token: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, liveness = %cfg.liveness_path, readiness = %cfg.readiness_path, "health server listening");
    }
    // Paths are matched by hand rather than by the router, so any configured
    // path works as the Go helper takes it, even one with router syntax.
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let s = status.borrow().clone();
        let path = uri.path();
        let answer = if method != Method::GET && method != Method::HEAD {
            None
        } else if path == cfg.liveness_path {
            Some(s.is_live(crate::clock::unix_now()))
        } else if path == cfg.readiness_path {
            Some(s.is_ready())
        } else {
            None
        };
        async move {
            match answer {
                Some(ok) => respond(ok, &s),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(token.cancelled_owned())
        .await;
}

fn respond(ok: bool, s: &crate::status::Status) -> Response {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        s.body(ok),
    )
        .into_response()
}
