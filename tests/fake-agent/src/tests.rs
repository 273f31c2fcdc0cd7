//! The fake, checked with the real `spiffe` client, so the helper's tests
//! rest on an agent that behaves like one.

use super::*;
use spiffe::{TrustDomain, WorkloadApiClient};
use tokio_stream::StreamExt as _;

async fn client(api: &FakeWorkloadApi) -> WorkloadApiClient {
    let endpoint = format!("unix:{}", api.socket_path().display());
    WorkloadApiClient::connect_to(endpoint)
        .await
        .expect("connect")
}

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

#[tokio::test]
async fn serves_x509_contexts_and_pushes_updates() {
    let api = FakeWorkloadApi::start().await;
    let c = client(&api).await;
    // Nothing issued yet: denied like SPIRE.
    assert!(c.fetch_x509_context().await.is_err());

    let pki = Pki::new();
    let first = pki.svid();
    api.set_x509(pki.x509_update(first.clone()));
    let ctx = c.fetch_x509_context().await.expect("context");
    let svid = &ctx.svids()[0];
    assert_eq!(
        svid.spiffe_id().to_string(),
        "spiffe://example.org/workload"
    );
    assert_eq!(svid.cert_chain().len(), 2);
    assert_eq!(svid.private_key().as_ref(), first.key_pkcs8.as_slice());
    let bundles = ctx.bundle_set();
    assert!(bundles.get(&td("example.org")).is_some());
    assert!(bundles.get(&td("federated.test")).is_some());

    let mut stream = c.stream_x509_contexts().await.expect("stream");
    stream.next().await.unwrap().expect("first update");
    let second = pki.svid();
    api.set_x509(pki.x509_update(second.clone()));
    let pushed = stream.next().await.unwrap().expect("pushed update");
    assert_eq!(
        pushed.svids()[0].leaf().as_ref(),
        second.leaf_der(),
        "the pushed context carries the new SVID"
    );
    assert_eq!(api.calls("FetchX509SVID"), 3);
}

#[tokio::test]
async fn jwt_svids_bundles_and_validation() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(60),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let c = client(&api).await;
    let svid = c.fetch_jwt_svid(["db", "cache"], None).await.expect("jwt");
    assert_eq!(svid.audience(), ["db", "cache"]);
    assert_eq!(
        api.jwt_requests(),
        vec![vec!["db".to_owned(), "cache".to_owned()]]
    );
    let bundles = c.fetch_jwt_bundles().await.expect("bundles");
    assert!(bundles.get(&td("example.org")).is_some());
    let token = svid.token().to_owned();
    c.validate_jwt_token("cache", &token).await.expect("valid");
    assert!(c.validate_jwt_token("other", &token).await.is_err());
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert!(c.validate_jwt_token("db", &forged).await.is_err());
    let stranger = JwtIssuer::new("example.org", "example-key-1");
    let foreign = stranger.mint(
        "spiffe://example.org/workload",
        &["db".into()],
        Duration::from_secs(60),
    );
    assert!(c.validate_jwt_token("db", &foreign).await.is_err());
    assert_eq!(api.calls("ValidateJWTSVID"), 4);
}

#[tokio::test]
async fn denies_and_refuses_on_request() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    let c = client(&api).await;
    api.deny_next(1);
    let e = c.fetch_x509_context().await.unwrap_err();
    assert!(e.to_string().to_lowercase().contains("identity"), "{e}");
    api.unavailable_next(1);
    assert!(c.fetch_x509_context().await.is_err());
    c.fetch_x509_context().await.expect("third call succeeds");
}

#[tokio::test]
async fn jwt_fetches_fail_on_request_and_are_recorded_with_their_tokens() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![
            ("spiffe://example.org/external".into(), "external".into()),
            ("spiffe://example.org/internal".into(), "internal".into()),
        ],
        Duration::from_secs(60),
    );
    let c = client(&api).await;
    api.fail_jwt_next(2);
    assert!(c.fetch_jwt_svid(["db"], None).await.is_err());
    assert!(c.fetch_jwt_svid(["db"], None).await.is_err());
    assert!(api.jwt_tokens().is_empty());
    // Other methods are not affected.
    api.set_x509(pki.x509_update(pki.svid()));
    c.fetch_x509_context().await.expect("x509 unaffected");
    let first = c.fetch_jwt_svid(["db"], None).await.expect("third call");
    assert_eq!(
        first.spiffe_id().to_string(),
        "spiffe://example.org/external"
    );
    let by_hint = c
        .fetch_jwt_svid_by_hint(["db"], None, "internal")
        .await
        .expect("by hint");
    assert_eq!(
        by_hint.spiffe_id().to_string(),
        "spiffe://example.org/internal"
    );
    let times = api.jwt_fetch_times();
    assert_eq!(times.len(), 4);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // Two SVIDs per successful call: every token handed out is recorded.
    let tokens = api.jwt_tokens();
    assert_eq!(tokens.len(), 4);
    assert!(tokens.contains(&first.token().to_owned()));
    assert!(tokens.contains(&by_hint.token().to_owned()));
}

#[tokio::test]
async fn stop_ends_open_streams_and_start_again_serves() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    let c = client(&api).await;
    let mut stream = c.stream_x509_contexts().await.expect("stream");
    stream.next().await.unwrap().expect("first");
    api.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends when the agent stops");
    assert!(!matches!(end, Some(Ok(_))));
    assert!(!api.socket_path().exists());
    api.start_again().await;
    client(&api)
        .await
        .fetch_x509_context()
        .await
        .expect("served again");
}

#[tokio::test]
async fn calls_without_the_security_header_are_rejected() {
    use tonic::codegen::http::uri::PathAndQuery;
    let api = FakeWorkloadApi::start().await;
    let socket = api.socket_path().to_owned();
    // A bare gRPC client that does not add `workload.spiffe.io: true`.
    let channel = tonic::transport::Endpoint::from_static("http://agent")
        .connect_with_connector(tower::service_fn(move |_: tonic::codegen::http::Uri| {
            let socket = socket.clone();
            async move {
                let s = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary::<pb::JwtsvidRequest, pb::JwtsvidResponse, _>(
            Request::new(pb::JwtsvidRequest {
                audience: vec!["a".into()],
                spiffe_id: String::new(),
            }),
            PathAndQuery::from_static("/SpiffeWorkloadAPI/FetchJWTSVID"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("security header"), "{status:?}");
    assert_eq!(api.calls("FetchJWTSVID"), 0);
}
