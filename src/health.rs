//! The health server: liveness and readiness as JSON, read from the shared
//! status (docs/observability.md, "Health checks").
//!
//! It listens on every interface, so it is treated as hostile input:
//! - a request's head must arrive within [`HEADER_TIMEOUT`] (as the Go
//!   helper), which also closes idle keep-alive connections, and a
//!   connection lives at most [`CONNECTION_LIFETIME`];
//! - at most [`connection_cap`] connections are served at once; one over
//!   the cap is closed at once, so probe connections can never take the
//!   descriptors a credential write needs;
//! - request heads are limited to [`MAX_HEAD`] bytes, and bodies are never
//!   read.
//!
//! Paths are matched as Go's `http.ServeMux` matches them: any method is
//! answered, a pattern ending in `/` serves its subtree, anything else 404.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::HealthConfig;
use crate::metrics::Metrics;
use crate::status::{Status, StatusRx};

/// Time allowed for a request's head, and for the next one on an idle
/// keep-alive connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection is served, whatever it does.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// The largest request head read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Descriptors never handed to probe connections.
const RESERVED_DESCRIPTORS: u64 = 48;

#[derive(Debug, thiserror::Error)]
#[error("health server cannot listen on {addr}: {source}")]
pub struct BindError {
    addr: String,
    #[source]
    source: std::io::Error,
}

/// Binds `bind_address:bind_port`, or every interface: one dual-stack
/// `[::]` socket with `IPV6_V6ONLY` off (IPv4 probes work even where
/// `net.ipv6.bindv6only = 1`), or `0.0.0.0` where IPv6 is unavailable.
pub fn bind(cfg: &HealthConfig) -> Result<TcpListener, BindError> {
    let port = cfg.bind_port;
    match cfg.bind_address {
        Some(ip) => listen(SocketAddr::new(ip, port), None),
        None => {
            listen(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)), Some(false)).or_else(|e6| {
                listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), None).map_err(|e4| {
                    // Report the IPv6 failure when IPv4 fails the same way.
                    if e4.source.kind() == e6.source.kind() {
                        e6
                    } else {
                        e4
                    }
                })
            })
        }
    }
}

fn listen(addr: SocketAddr, only_v6: Option<bool>) -> Result<TcpListener, BindError> {
    let err = |source| BindError {
        addr: addr.to_string(),
        source,
    };
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(err)?;
    if let (Some(v6only), IpAddr::V6(_)) = (only_v6, addr.ip()) {
        socket.set_only_v6(v6only).map_err(err)?;
    }
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.set_cloexec(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(128).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

/// How many connections are served at once: a share of the descriptor
/// limit that leaves [`RESERVED_DESCRIPTORS`] for the helper's own work,
/// between 4 and 256.
pub fn connection_cap(nofile: u64) -> usize {
    let share = nofile.saturating_sub(RESERVED_DESCRIPTORS);
    usize::try_from(share.clamp(4, 256)).unwrap_or(256)
}

fn current_cap() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    connection_cap(soft)
}

/// Serves until `token` is cancelled.
pub async fn serve(
    listener: Arc<TcpListener>,
    cfg: HealthConfig,
    status: StatusRx,
    metrics: Metrics,
    token: CancellationToken,
) {
    let cap = current_cap();
    if let Ok(addr) = listener.local_addr() {
        info!(
            %addr,
            liveness = %cfg.liveness_path,
            readiness = %cfg.readiness_path,
            metrics = cfg.metrics_path.as_deref().unwrap_or("(off)"),
            status = cfg.status_path.as_deref().unwrap_or("(off)"),
            max_connections = cap,
            "health server listening"
        );
    }
    let slots = Arc::new(Slots::new(cap));
    let routes = Arc::new(Routes::new(&cfg));
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = token.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors (or a transient accept error): wait a
                // little instead of spinning; pending connections wait in
                // the kernel's backlog, costing the helper nothing.
                debug!("health server: accept failed: {e}");
                if crate::backoff::sleep_or_cancel(&token, Duration::from_millis(100)).await {
                    break;
                }
                continue;
            }
        };
        let Some((id, evicted)) = slots.admit() else {
            // Over the cap with every connection inside a request: closed.
            drop(stream);
            continue;
        };
        let routes = Arc::clone(&routes);
        let status = status.clone();
        let metrics = metrics.clone();
        let slots = Arc::clone(&slots);
        conns.spawn(async move {
            let heads = Arc::clone(&slots);
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                heads.head_complete(id);
                let resp = routes.answer(&req, &status, &metrics);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = tokio::time::timeout(CONNECTION_LIFETIME, conn) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!("health connection: {e}"),
                    Err(_) => debug!(
                        "health connection closed after {}s",
                        CONNECTION_LIFETIME.as_secs()
                    ),
                },
                () = evicted.cancelled() => debug!("health connection without a complete request head closed to admit a new one"),
            }
            slots.release(id);
        });
    }
    conns.abort_all();
    if slots.open() > 0 {
        warn!("health server stopped with connections open");
    }
}

/// The connections being served, at most `cap` at once. At the cap a new
/// connection is admitted by closing the one that has waited longest
/// without a complete request head: a flood of slow, never-finished heads
/// cannot keep probes out. A connection whose head is complete is never
/// closed this way.
struct Slots {
    cap: usize,
    state: std::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    next: u64,
    /// Each open connection: since when it waits for a complete request
    /// head (`None` once one arrived), and how to close it.
    open: std::collections::HashMap<u64, (Option<Instant>, CancellationToken)>,
}

impl Slots {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            state: std::sync::Mutex::new(SlotState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a new connection (evicting the oldest head-less one at
    /// the cap), or `None` when every slot is inside a request.
    fn admit(&self) -> Option<(u64, CancellationToken)> {
        let mut st = self.lock();
        if st.open.len() >= self.cap {
            let oldest = st
                .open
                .iter()
                .filter_map(|(id, (since, _))| since.map(|t| (t, *id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some((_, evict)) = st.open.remove(&oldest) {
                evict.cancel();
            }
        }
        let id = st.next;
        st.next += 1;
        let evict = CancellationToken::new();
        st.open.insert(id, (Some(Instant::now()), evict.clone()));
        Some((id, evict))
    }

    fn head_complete(&self, id: u64) {
        if let Some((since, _)) = self.lock().open.get_mut(&id) {
            *since = None;
        }
    }

    fn release(&self, id: u64) {
        self.lock().open.remove(&id);
    }

    fn open(&self) -> usize {
        self.lock().open.len()
    }
}

/// What a path is routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Live,
    Ready,
    Metrics,
    Status,
}

/// The configured paths, matched as Go's `http.ServeMux` matches them.
#[derive(Debug)]
struct Routes {
    patterns: Vec<(String, Route)>,
}

impl Routes {
    fn new(cfg: &HealthConfig) -> Self {
        // The first registration of a pattern wins, as Go refuses a second.
        let mut patterns: Vec<(String, Route)> = Vec::new();
        let optional = [
            (cfg.metrics_path.as_ref(), Route::Metrics),
            (cfg.status_path.as_ref(), Route::Status),
        ];
        let all = [
            (Some(&cfg.liveness_path), Route::Live),
            (Some(&cfg.readiness_path), Route::Ready),
        ]
        .into_iter()
        .chain(optional);
        for (p, r) in all {
            let Some(p) = p.filter(|p| !p.is_empty()) else {
                continue;
            };
            if !patterns.iter().any(|(q, _)| q == p) {
                patterns.push((p.clone(), r));
            }
        }
        Self { patterns }
    }

    /// The route for `path`: an exact pattern, else the longest pattern
    /// ending in `/` that `path` starts with. `Err` carries a redirect
    /// target for a subtree pattern asked for without its slash.
    fn find(&self, path: &str) -> Result<Option<Route>, String> {
        if let Some((_, r)) = self.patterns.iter().find(|(p, _)| p == path) {
            return Ok(Some(*r));
        }
        let best = self
            .patterns
            .iter()
            .filter(|(p, _)| p.ends_with('/') && path.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len());
        if let Some((_, r)) = best {
            return Ok(Some(*r));
        }
        let with_slash = format!("{path}/");
        if self.patterns.iter().any(|(p, _)| *p == with_slash) {
            return Err(with_slash);
        }
        Ok(None)
    }

    fn answer<B>(
        &self,
        req: &Request<B>,
        status: &StatusRx,
        metrics: &Metrics,
    ) -> Response<String> {
        let now = crate::clock::unix_now();
        match self.find(req.uri().path()) {
            Ok(Some(Route::Live)) => {
                let s = status.borrow();
                json(s.is_live(now), &s)
            }
            Ok(Some(Route::Ready)) => {
                let s = status.borrow();
                json(s.is_ready(), &s)
            }
            Ok(Some(Route::Metrics)) => {
                if wants_text_format(req) {
                    text(
                        metrics.encode_text(),
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                } else {
                    text(
                        metrics.encode(),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                }
            }
            Ok(Some(Route::Status)) => {
                let doc = status.borrow().document(now);
                text(doc, "application/json")
            }
            Ok(None) => not_found(),
            Err(to) => redirect(&to, req.uri().query()),
        }
    }
}

/// Whether the scraper asks for the Prometheus text format 0.0.4 rather
/// than OpenMetrics: its `Accept` names `text/plain` and not OpenMetrics
/// (Prometheus itself asks for OpenMetrics first).
fn wants_text_format<B>(req: &Request<B>) -> bool {
    let accept = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    accept.contains("text/plain") && !accept.contains("application/openmetrics-text")
}

fn json(ok: bool, s: &Status) -> Response<String> {
    let mut r = Response::new(s.body(ok));
    *r.status_mut() = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn text(body: String, content_type: &'static str) -> Response<String> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Go's `http.NotFound`.
fn not_found() -> Response<String> {
    let mut r = Response::new("404 page not found\n".to_owned());
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Go's mux redirect from `/x` to a registered `/x/`.
fn redirect(to: &str, query: Option<&str>) -> Response<String> {
    let target = match query {
        Some(q) => format!("{to}?{q}"),
        None => to.to_owned(),
    };
    let mut r = Response::new(String::new());
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&target) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(live: &str, ready: &str) -> Routes {
        Routes {
            patterns: vec![
                (live.to_owned(), Route::Live),
                (ready.to_owned(), Route::Ready),
            ],
        }
    }

    #[test]
    fn paths_match_as_go_serve_mux_matches_them() {
        let r = routes("/live", "/ready/");
        assert_eq!(r.find("/live"), Ok(Some(Route::Live)));
        assert_eq!(r.find("/live/"), Ok(None));
        assert_eq!(r.find("/livex"), Ok(None));
        assert_eq!(r.find("/ready/"), Ok(Some(Route::Ready)));
        assert_eq!(r.find("/ready/anything/below"), Ok(Some(Route::Ready)));
        assert_eq!(r.find("/ready"), Err("/ready/".to_owned()));
        assert_eq!(r.find("/"), Ok(None));
        // The longest subtree wins.
        let r = routes("/a/", "/a/b/");
        assert_eq!(r.find("/a/b/c"), Ok(Some(Route::Ready)));
        assert_eq!(r.find("/a/c"), Ok(Some(Route::Live)));
    }

    #[test]
    fn at_the_cap_the_oldest_connection_without_a_head_makes_room() {
        let slots = Slots::new(3);
        let (a, evict_a) = slots.admit().unwrap();
        let (b, evict_b) = slots.admit().unwrap();
        let (c, evict_c) = slots.admit().unwrap();
        // a has a complete head: never evicted; b is the oldest without.
        slots.head_complete(a);
        let (d, _) = slots.admit().unwrap();
        assert!(evict_b.is_cancelled());
        assert!(!evict_a.is_cancelled() && !evict_c.is_cancelled());
        assert_eq!(slots.open(), 3);
        // The evicted task's release finds nothing to remove.
        slots.release(b);
        assert_eq!(slots.open(), 3);
        // With every slot inside a request, a new one is refused.
        slots.head_complete(c);
        slots.head_complete(d);
        assert!(slots.admit().is_none());
        slots.release(a);
        assert!(slots.admit().is_some());
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_in_reserve() {
        assert_eq!(connection_cap(64), 16);
        assert_eq!(connection_cap(20), 4);
        assert_eq!(connection_cap(1024), 256);
        assert_eq!(connection_cap(1 << 20), 256);
    }
}
