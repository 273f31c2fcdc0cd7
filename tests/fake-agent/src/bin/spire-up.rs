//! Starts a real SPIRE trust domain, the one the drop-in tests use
//! (`fake_workload_api::spire`: a server with its own CA and an agent
//! attested by a join token, trust domain `a.test`), prints it as one JSON
//! line, and runs until its standard input closes, then stops both.
//!
//! ```text
//! {"trust_domain":"a.test","agent_socket":"...","server_socket":"...","node_id":"spiffe://a.test/...","agent_pid":123}
//! ```
//!
//! `.ci/bench-real` drives it: registration entries are then created with
//! `spire-server entry create -socketPath <server_socket> -parentID <node_id>`.
//! The programs come from where the tests find them (`.ci/real-components`).

use fake_workload_api::spire::{binaries, Signing, Spire};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(bins) = binaries("spire-up") else {
        eprintln!("spire-up: SPIRE is not available (run .ci/real-components)");
        std::process::exit(1);
    };
    let spire = Spire::start_with(bins, Signing::SelfSigned).await;
    let line = serde_json::json!({
        "trust_domain": spire.server.trust_domain,
        "agent_socket": spire.socket(),
        "server_socket": spire.server.socket,
        "node_id": spire.agent.node_id,
        "agent_pid": spire.agent.pid(),
    });
    println!("{line}");
    // Until the caller closes our standard input (or goes away).
    let _ =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await;
    drop(spire);
}
