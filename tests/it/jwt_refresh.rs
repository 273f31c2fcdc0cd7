//! The JWT-SVID refresher through the real binary: after a failed fetch it
//! retries after 1 s, doubling (at most 60 s), and after a success it
//! follows the token's lifetime again. Fetch times are recorded by the
//! fake agent; the tolerances are wide because the machine may be loaded.

use std::time::{Duration, Instant};

use crate::common::*;

/// The token lifetime: a fresh token is fetched again after half its
/// remaining lifetime plus a second, about 5.5 to 6 s.
const TTL: Duration = Duration::from_secs(10);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Waits until the agent has seen `n` JWT-SVID fetches; returns their times.
async fn wait_fetches(api: &FakeWorkloadApi, n: usize, d: &Daemon) -> Vec<Instant> {
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let t = api.jwt_fetch_times();
        if t.len() >= n {
            return t;
        }
        assert!(
            Instant::now() < end,
            "{} JWT-SVID fetches, waiting for {n}\nhelper log:\n{}",
            t.len(),
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that `gap` is about `want` seconds: at least 90 % of it (the
/// jitter only lengthens a delay), at most 10 % more plus `slack` for a
/// loaded machine.
#[track_caller]
fn about(what: &str, gap: Duration, want: f64, slack: f64) {
    let g = secs(gap);
    assert!(
        g >= want * 0.9 && g <= want * 1.1 + slack,
        "{what}: {g:.2} s, expected about {want} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fetches_are_retried_after_1_2_4_8_seconds_and_the_lifetime_rules_again_after_a_success(
) {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        TTL,
    );
    api.fail_jwt_next(4);
    let w = Workdir::new();
    w.conf(&format!(
        r#"
agent_address = "{}"
cert_dir = "certs"
jwt_svids = [{{ jwt_audience = "db", jwt_svid_file_name = "db.token" }}]
"#,
        api.socket_path().display()
    ));
    let d = w.spawn(&["-config", "helper.conf"]);

    // Four failures, then a success, then a refresh by the lifetime.
    let t = wait_fetches(&api, 6, &d).await;
    assert!(w.exists("certs/db.token"));
    for (i, want) in [1.0, 2.0, 4.0, 8.0].into_iter().enumerate() {
        about(&format!("retry {}", i + 1), t[i + 1] - t[i], want, 2.5);
    }
    about("refresh after the success", t[5] - t[4], 5.75, 2.0);

    // One more failure: the retry starts again from 1 s (not 16 s), and
    // after its success the lifetime rules again.
    api.fail_jwt_next(1);
    let t = wait_fetches(&api, 9, &d).await;
    about("refresh", t[6] - t[5], 5.75, 2.0);
    about("first retry after a later failure", t[7] - t[6], 1.0, 2.5);
    about("refresh after the recovery", t[8] - t[7], 5.75, 2.0);
    let logs = d.logs();
    assert!(
        logs.contains("JWT-SVID minting failed"),
        "the failure is logged:\n{logs}"
    );
    let token = w.read_string("certs/db.token");
    assert!(api.jwt_tokens().contains(&token));
}

/// The retry schedule's bounds, as the refresher uses them: from 1 s,
/// doubling, never beyond 60 s (plus at most 10 % jitter). Reaching the cap
/// through the binary would take minutes of failures; the doubling from
/// 1 s is shown through the binary above.
#[test]
fn the_retry_delay_doubles_from_one_second_to_at_most_sixty() {
    use spiffe_helper::backoff::Backoff;
    use spiffe_helper::refresh::{RETRY_FIRST, RETRY_MAX};
    assert_eq!(RETRY_FIRST, Duration::from_secs(1));
    assert_eq!(RETRY_MAX, Duration::from_secs(60));
    let mut b = Backoff::new(RETRY_FIRST, RETRY_MAX);
    for want in [1, 2, 4, 8, 16, 32, 60, 60, 60] {
        let d = secs(b.next_delay());
        let want = f64::from(want);
        assert!(d >= want && d <= want * 1.1, "{d} vs {want}");
    }
}
