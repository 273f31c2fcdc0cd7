//! A fake SPIFFE Workload API: the real `SpiffeWorkloadAPI` gRPC service
//! on a Unix socket, serving real certificates and JWTs, for spiffe-helper's
//! tests, demo and benchmark.
//!
//! Like a SPIRE agent it rejects calls without the `workload.spiffe.io`
//! header and answers PermissionDenied ("no identity issued") until an
//! identity exists. Tests drive it: push X.509 contexts and JWT bundles to
//! open streams, deny or refuse the next calls, go down and come back, and
//! read back what was asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};

#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod pb;
mod pki;
pub mod spire;

pub use pki::{p256_public_key_of_pkcs8, Ca, JwtIssuer, Pki, Svid, X509Update};

use pb::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};

/// What the JWT SVID endpoint hands out.
#[derive(Clone)]
struct JwtIdentities {
    issuer: JwtIssuer,
    svids: Vec<(String, String)>,
    ttl: Duration,
}

#[derive(Default)]
struct Counters {
    jwt: Option<JwtIdentities>,
    deny: usize,
    unavailable: usize,
    jwt_fail: usize,
    /// Stream calls that answer with headers and then nothing.
    stall: usize,
    /// The next call fails with this status.
    fail_with: Option<(tonic::Code, String)>,
    jwt_requests: Vec<Vec<String>>,
    jwt_fetch_times: Vec<Instant>,
    jwt_tokens: Vec<String>,
    calls: HashMap<&'static str, usize>,
}

/// JWT bundles: (trust domain, JWKS document).
type JwtBundles = Vec<(String, Vec<u8>)>;

struct State {
    /// Connections accepted since start, over every restart.
    connections: std::sync::atomic::AtomicUsize,
    x509: watch::Sender<Option<Arc<X509Update>>>,
    jwt_bundles: watch::Sender<Option<Arc<JwtBundles>>>,
    counters: Mutex<Counters>,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Header check, call count, then any failure the test asked for.
    fn admit<T>(&self, method: &'static str, req: &Request<T>) -> Result<(), Status> {
        let ok = req
            .metadata()
            .get("workload.spiffe.io")
            .is_some_and(|v| v.as_bytes() == b"true");
        if !ok {
            return Err(Status::invalid_argument(
                "security header missing from request",
            ));
        }
        let mut c = self.lock();
        *c.calls.entry(method).or_default() += 1;
        if c.deny > 0 {
            c.deny -= 1;
            return Err(Status::permission_denied("no identity issued"));
        }
        if c.unavailable > 0 {
            c.unavailable -= 1;
            return Err(Status::unavailable("agent is not ready"));
        }
        if let Some((code, message)) = c.fail_with.take() {
            return Err(Status::new(code, message));
        }
        Ok(())
    }

    /// Whether this stream call should stall (counted down).
    fn stall(&self) -> bool {
        let mut c = self.lock();
        if c.stall > 0 {
            c.stall -= 1;
            true
        } else {
            false
        }
    }
}

/// One serving period: ended by `stop`.
struct Serving {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The fake agent. Stops serving when dropped.
pub struct FakeWorkloadApi {
    socket: PathBuf,
    state: Arc<State>,
    serving: Mutex<Option<Serving>>,
    _dir: Option<tempfile::TempDir>,
}

impl FakeWorkloadApi {
    /// Serves on `agent.sock` in a new temporary directory.
    pub async fn start() -> FakeWorkloadApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("agent.sock");
        Self::build(socket, Some(dir)).await
    }

    /// Serves on exactly `path` (its directory must exist).
    pub async fn start_at(path: &Path) -> FakeWorkloadApi {
        Self::build(path.to_owned(), None).await
    }

    async fn build(socket: PathBuf, dir: Option<tempfile::TempDir>) -> FakeWorkloadApi {
        let api = FakeWorkloadApi {
            socket,
            state: Arc::new(State {
                connections: std::sync::atomic::AtomicUsize::new(0),
                x509: watch::channel(None).0,
                jwt_bundles: watch::channel(None).0,
                counters: Mutex::new(Counters::default()),
            }),
            serving: Mutex::new(None),
            _dir: dir,
        };
        api.start_again().await;
        api
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Replaces the X.509 context and pushes it to every open stream.
    pub fn set_x509(&self, update: X509Update) {
        self.state.x509.send_replace(Some(Arc::new(update)));
    }

    /// JWT SVIDs minted on request: one per (SPIFFE ID, hint), signed by `issuer`.
    pub fn set_jwt_svids(&self, issuer: JwtIssuer, svids: Vec<(String, String)>, ttl: Duration) {
        self.state.lock().jwt = Some(JwtIdentities { issuer, svids, ttl });
    }

    /// Replaces the JWT bundles (trust domain, JWKS) and pushes them.
    pub fn set_jwt_bundles(&self, bundles: Vec<(String, Vec<u8>)>) {
        self.state.jwt_bundles.send_replace(Some(Arc::new(bundles)));
    }

    /// The next `n` calls fail with PermissionDenied.
    pub fn deny_next(&self, n: usize) {
        self.state.lock().deny = n;
    }

    /// The next `n` calls fail with Unavailable.
    pub fn unavailable_next(&self, n: usize) {
        self.state.lock().unavailable = n;
    }

    /// The next `n` FetchJWTSVID calls fail (Internal), other methods
    /// are unaffected.
    pub fn fail_jwt_next(&self, n: usize) {
        self.state.lock().jwt_fail = n;
    }

    /// The next `n` stream calls (X.509 or JWT bundles) answer with
    /// response headers and then send nothing, as a stuck agent would.
    pub fn stall_next(&self, n: usize) {
        self.state.lock().stall = n;
    }

    /// The next call fails with `code` and `message` (any text, newlines
    /// included, as a hostile or broken agent may send).
    pub fn fail_next_with(&self, code: tonic::Code, message: &str) {
        self.state.lock().fail_with = Some((code, message.to_owned()));
    }

    /// When each FetchJWTSVID call arrived, in order (failed ones included).
    pub fn jwt_fetch_times(&self) -> Vec<Instant> {
        self.state.lock().jwt_fetch_times.clone()
    }

    /// Every JWT-SVID token handed out, in order.
    pub fn jwt_tokens(&self) -> Vec<String> {
        self.state.lock().jwt_tokens.clone()
    }

    /// The audience list of every FetchJWTSVID call, in order.
    pub fn jwt_requests(&self) -> Vec<Vec<String>> {
        self.state.lock().jwt_requests.clone()
    }

    /// How many calls of a method arrived (with the security header).
    pub fn calls(&self, method: &str) -> usize {
        self.state.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// How many connections the agent has accepted since it started.
    pub fn connections(&self) -> usize {
        self.state
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn serving(&self) -> MutexGuard<'_, Option<Serving>> {
        self.serving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Goes away: open streams end, the socket disappears, connects fail.
    pub async fn stop(&self) {
        let serving = self.serving().take();
        if let Some(s) = serving {
            let _ = s.stop.send(true);
            let mut task = s.task;
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Serves again on the same socket with the same state.
    pub async fn start_again(&self) {
        self.stop().await;
        let listener = tokio::net::UnixListener::bind(&self.socket)
            .unwrap_or_else(|e| panic!("bind {}: {e}", self.socket.display()));
        let (stop, mut stopped) = watch::channel(false);
        let service = Service {
            state: self.state.clone(),
            stopped: stop.subscribe(),
        };
        let state = self.state.clone();
        let incoming = tokio_stream::StreamExt::map(UnixListenerStream::new(listener), move |c| {
            if c.is_ok() {
                state
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            c
        });
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(SpiffeWorkloadApiServer::new(service))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        *self.serving() = Some(Serving { stop, task });
    }
}

impl Drop for FakeWorkloadApi {
    fn drop(&mut self) {
        if let Some(s) = self.serving().take() {
            let _ = s.stop.send(true);
            s.task.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

struct Service {
    state: Arc<State>,
    stopped: watch::Receiver<bool>,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// A response stream: the current value (or `none` when there is none),
/// then every change, until the server stops or the client goes away.
fn follow<T, R>(
    mut values: watch::Receiver<Option<Arc<T>>>,
    mut stopped: watch::Receiver<bool>,
    render: impl Fn(&T) -> R + Send + 'static,
) -> Stream<R>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let first = values.borrow_and_update().clone();
        let Some(first) = first else {
            let _ = tx
                .send(Err(Status::permission_denied("no identity issued")))
                .await;
            return;
        };
        if tx.send(Ok(render(&first))).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                changed = values.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let v = values.borrow_and_update().clone();
                    if let Some(v) = v {
                        if tx.send(Ok(render(&v))).await.is_err() {
                            return;
                        }
                    }
                }
                _ = async { stopped.wait_for(|s| *s).await.is_ok() } => return,
                () = tx.closed() => return,
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// A stream that never sends a message (and never ends).
fn stalled<R: Send + 'static>() -> Stream<R> {
    Box::pin(tokio_stream::pending())
}

fn td_id(name: &str) -> String {
    format!("spiffe://{name}")
}

fn x509_response(u: &X509Update) -> pb::X509svidResponse {
    pb::X509svidResponse {
        svids: u
            .svids
            .iter()
            .map(|(s, roots)| pb::X509svid {
                spiffe_id: s.spiffe_id.clone(),
                x509_svid: s.chain.concat(),
                x509_svid_key: s.key_pkcs8.clone(),
                bundle: roots.concat(),
                hint: s.hint.clone(),
            })
            .collect(),
        crl: Vec::new(),
        federated_bundles: u
            .federated
            .iter()
            .map(|(td, roots)| (td_id(td), roots.concat()))
            .collect(),
    }
}

fn x509_bundles_response(u: &X509Update) -> pb::X509BundlesResponse {
    let mut bundles: HashMap<String, Vec<u8>> = u
        .federated
        .iter()
        .map(|(td, roots)| (td_id(td), roots.concat()))
        .collect();
    for (s, roots) in &u.svids {
        bundles.insert(td_id(pki::trust_domain_of(&s.spiffe_id)), roots.concat());
    }
    pb::X509BundlesResponse {
        crl: Vec::new(),
        bundles,
    }
}

fn json_to_prost(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_prost).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o
                .iter()
                .map(|(k, v)| (k.clone(), json_to_prost(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Service {
    type FetchX509SVIDStream = Stream<pb::X509svidResponse>;
    type FetchX509BundlesStream = Stream<pb::X509BundlesResponse>;
    type FetchJWTBundlesStream = Stream<pb::JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        req: Request<pb::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        self.state.admit("FetchX509SVID", &req)?;
        if self.state.stall() {
            return Ok(Response::new(stalled()));
        }
        Ok(Response::new(follow(
            self.state.x509.subscribe(),
            self.stopped.clone(),
            x509_response,
        )))
    }

    async fn fetch_x509_bundles(
        &self,
        req: Request<pb::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        self.state.admit("FetchX509Bundles", &req)?;
        Ok(Response::new(follow(
            self.state.x509.subscribe(),
            self.stopped.clone(),
            x509_bundles_response,
        )))
    }

    async fn fetch_jwtsvid(
        &self,
        req: Request<pb::JwtsvidRequest>,
    ) -> Result<Response<pb::JwtsvidResponse>, Status> {
        self.state.admit("FetchJWTSVID", &req)?;
        let req = req.into_inner();
        let ids = {
            let mut c = self.state.lock();
            c.jwt_requests.push(req.audience.clone());
            c.jwt_fetch_times.push(Instant::now());
            if c.jwt_fail > 0 {
                c.jwt_fail -= 1;
                return Err(Status::internal("fake agent: JWT-SVID minting failed"));
            }
            c.jwt.clone()
        };
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        let Some(ids) = ids else {
            return Err(Status::permission_denied("no identity issued"));
        };
        let svids: Vec<pb::Jwtsvid> = ids
            .svids
            .iter()
            .filter(|(id, _)| req.spiffe_id.is_empty() || *id == req.spiffe_id)
            .map(|(id, hint)| pb::Jwtsvid {
                spiffe_id: id.clone(),
                svid: ids.issuer.mint(id, &req.audience, ids.ttl),
                hint: hint.clone(),
            })
            .collect();
        if svids.is_empty() {
            return Err(Status::permission_denied("no identity issued"));
        }
        self.state
            .lock()
            .jwt_tokens
            .extend(svids.iter().map(|s| s.svid.clone()));
        Ok(Response::new(pb::JwtsvidResponse { svids }))
    }

    async fn fetch_jwt_bundles(
        &self,
        req: Request<pb::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.state.admit("FetchJWTBundles", &req)?;
        Ok(Response::new(follow(
            self.state.jwt_bundles.subscribe(),
            self.stopped.clone(),
            |b: &JwtBundles| pb::JwtBundlesResponse {
                bundles: b
                    .iter()
                    .map(|(td, jwks)| (td_id(td), jwks.clone()))
                    .collect(),
            },
        )))
    }

    async fn validate_jwtsvid(
        &self,
        req: Request<pb::ValidateJwtsvidRequest>,
    ) -> Result<Response<pb::ValidateJwtsvidResponse>, Status> {
        self.state.admit("ValidateJWTSVID", &req)?;
        let req = req.into_inner();
        if req.audience.is_empty() || req.svid.is_empty() {
            return Err(Status::invalid_argument(
                "audience and svid must be specified",
            ));
        }
        let issuer = self.state.lock().jwt.as_ref().map(|j| j.issuer.clone());
        let Some(issuer) = issuer else {
            return Err(Status::invalid_argument(
                "token validation failed: no JWT authority",
            ));
        };
        let claims = issuer
            .verify(&req.svid)
            .map_err(|e| Status::invalid_argument(format!("token validation failed: {e}")))?;
        let aud_ok = match &claims["aud"] {
            serde_json::Value::Array(a) => a.iter().any(|v| v == req.audience.as_str()),
            serde_json::Value::String(s) => *s == req.audience,
            _ => false,
        };
        if !aud_ok {
            return Err(Status::invalid_argument(format!(
                "token validation failed: audience {:?} not in token",
                req.audience
            )));
        }
        if claims["exp"].as_u64().unwrap_or(0) <= pki::now_secs() {
            return Err(Status::invalid_argument(
                "token validation failed: token has expired",
            ));
        }
        let serde_json::Value::Object(map) = &claims else {
            return Err(Status::invalid_argument(
                "token validation failed: claims are not an object",
            ));
        };
        Ok(Response::new(pb::ValidateJwtsvidResponse {
            spiffe_id: claims["sub"].as_str().unwrap_or_default().to_owned(),
            claims: Some(prost_types::Struct {
                fields: map
                    .iter()
                    .map(|(k, v)| (k.clone(), json_to_prost(v)))
                    .collect(),
            }),
        }))
    }
}

#[cfg(test)]
mod tests;

/// Polls `poll` every 25 ms until it gives `Ok`; at the deadline the test
/// fails naming `what` and the last `Err`: what was seen instead, with any
/// log worth showing. The one waiting loop of the tests.
pub async fn wait_until<T, E, Fut>(
    what: &str,
    deadline: Duration,
    mut poll: impl FnMut() -> Fut,
) -> T
where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let end = std::time::Instant::now() + deadline;
    loop {
        match poll().await {
            Ok(v) => return v,
            Err(last) => assert!(
                std::time::Instant::now() < end,
                "timed out after {deadline:?} waiting for {what}; instead:\n{last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A port that was free a moment ago. Another test may take it before it
/// is used: for the helper's health server the tests retry on a taken port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
