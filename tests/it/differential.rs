//! A generative differential test against the Go spiffe-helper (v0.11.0,
//! built by `.ci/real-components`): configurations are generated from the
//! keys both helpers read, in HCL v1's syntax variations and as JSON, then
//! mutated; each is run by both helpers in one-shot mode against the same
//! fake Workload API, under the same umask, and their exit status, files,
//! bytes and modes are compared (JWT-SVIDs, minted anew for each fetch, by
//! presence and mode only; the JWT bundle as JSON).
//!
//! Every difference must be explained by a [`DELIBERATE`] class, or the
//! test fails and prints the configuration cut down to the lines that
//! still make the helpers differ.
//!
//! It runs `SPIFFE_HELPER_DIFF_CASES` cases (default 120) for a fixed seed
//! and as many for a seed that changes per run, printed so that a failure
//! can be replayed with `SPIFFE_HELPER_DIFF_SEED=<seed>`. To run longer:
//! `SPIFFE_HELPER_DIFF_CASES=5000 cargo test --test it -- differential:: --nocapture`;
//! harsher, with every case mutated three times:
//! `SPIFFE_HELPER_DIFF_MUTATIONS=3`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::spire::{binaries, short_tempdir};
use crate::common::*;

/// The umask both helpers run under.
const UMASK: u32 = 0o022;

/// The fixed seed, run every time.
const FIXED_SEED: u64 = 0x5eed_2026_1207;

/// How long one helper may take on one case; this helper waits for an
/// agent socket that is not there yet, and is cut short here.
const CASE_DEADLINE: Duration = Duration::from_secs(6);

/// Classes of differences that are deliberate, with the reason; see
/// [`explain`] for how each is recognised.
const DELIBERATE: &[(&str, &str)] = &[
    ("umask", "modes are exact here; Go's umask (022) narrows a new file's mode"),
    ("waits_for_socket", "one-shot mode waits for an agent socket that is not there yet (an init container that starts first); Go fails at once"),
    ("confinement", "an output name that leaves cert_dir, names it, or writes another output's file is refused at load; Go writes it"),
    ("failed_run_writes_nothing", "a failed one-shot run writes nothing; Go has written some files before it fails"),
    ("stricter_at_load", "refused at load where Go runs on: a trust domain, signal or argument Go only notices later"),
    ("jwt_svids_object", "jwt_svids as an unlabelled block or a single object is read here, with a warning; Go's decoder loses its fields and refuses the file"),
    ("agent_address_url", "agent_address as a unix: URL is read here; Go prepends unix:// to it and cannot dial"),
    ("json_solidus", "the JSON escape \\/ (standard, and written for every '/' by some encoders) is read here, with a warning; Go's scanner refuses it"),
];

/// What one helper did with one configuration.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stderr: String,
    files: BTreeMap<String, (u32, Vec<u8>)>,
}

/// The names of the JWT-SVID files the generator uses: compared by
/// presence and mode only.
fn is_token(name: &str) -> bool {
    name.ends_with(".jwt")
}

// === the generator ===

/// A seeded source of choices.
struct Gen {
    rng: fastrand::Rng,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }
}

/// A value as the file writes it.
#[derive(Clone, Debug)]
enum Val {
    Str(String),
    Raw(String),
    Jwt(Vec<(String, String, Option<String>)>),
}

/// One configuration: its keys in order, and how to write them.
struct Conf {
    items: Vec<(String, Val)>,
}

fn generate(g: &mut Gen, socket: &str) -> Conf {
    let mut items: Vec<(String, Val)> = Vec::new();
    if g.chance(0.9) {
        let addr = match g.rng.u8(0..20) {
            0..=3 => {
                let (head, last) = socket.split_at(socket.len() - 1);
                format!("{head}%{:02X}", last.as_bytes()[0])
            }
            4 => format!("unix://{socket}"),
            5 => format!("unix:{socket}"),
            _ => socket.to_owned(),
        };
        items.push(("agent_address".into(), Val::Str(addr)));
    }
    let dir = *g.pick(&["certs", "./certs", "certs/", "certs/."]);
    items.push(("cert_dir".into(), Val::Str(dir.into())));
    let x509 = x509_items(g, &mut items);
    jwt_items(g, x509, &mut items);
    other_items(g, &mut items);
    g.rng.shuffle(&mut items);
    // A key given twice keeps its last value.
    if g.chance(0.1) && !items.is_empty() {
        let i = g.rng.usize(..items.len());
        if !matches!(items[i].1, Val::Jwt(_)) {
            let mut first = items[i].clone();
            if let Val::Str(s) = &mut first.1 {
                s.push_str(".first");
            }
            items.insert(i, first);
        }
    }
    Conf { items }
}

/// The X.509 keys, sometimes; whether they were drawn.
fn x509_items(g: &mut Gen, items: &mut Vec<(String, Val)>) -> bool {
    let names = [
        "svid.pem",
        "svid_key.pem",
        "bundle.pem",
        "sub/../x.pem",
        "./y.pem",
        "z.pem/.",
        "/rooted.pem",
        "a.crt",
    ];
    let mut used: Vec<&str> = Vec::new();
    let mut name = |g: &mut Gen| loop {
        let n = *g.pick(&names);
        if !used.contains(&n) || g.chance(0.05) {
            used.push(n);
            return n.to_owned();
        }
    };
    let x509 = g.chance(0.75);
    if x509 {
        for key in [
            "svid_file_name",
            "svid_key_file_name",
            "svid_bundle_file_name",
        ] {
            if g.chance(0.97) {
                items.push((key.into(), Val::Str(name(g))));
            }
        }
        for key in [
            "add_intermediates_to_bundle",
            "include_federated_domains",
            "omit_expired",
        ] {
            if g.chance(0.3) {
                let v = if g.chance(0.85) {
                    *g.pick(&["true", "false"])
                } else {
                    *g.pick(&["\"true\"", "\"false\"", "1", "0", "\"1\"", "\"f\"", "2"])
                };
                items.push((key.into(), Val::Raw(v.into())));
            }
        }
    }
    x509
}

/// The JWT keys, sometimes (more often without X.509 outputs).
fn jwt_items(g: &mut Gen, x509: bool, items: &mut Vec<(String, Val)>) {
    if g.chance(0.4) {
        items.push((
            "jwt_bundle_file_name".into(),
            Val::Str("jwt_bundle.json".into()),
        ));
    }
    if g.chance(0.4) || (!x509 && g.chance(0.5)) {
        let n = g.rng.usize(0..=2);
        let entries = (0..n)
            .map(|i| {
                (
                    format!("aud{i}"),
                    format!("t{i}.jwt"),
                    g.chance(0.3).then(|| "extra".to_owned()),
                )
            })
            .collect();
        items.push(("jwt_svids".into(), Val::Jwt(entries)));
    }
}

/// File modes, the hint, the renew signal and `cmd`, sometimes.
fn other_items(g: &mut Gen, items: &mut Vec<(String, Val)>) {
    for key in [
        "cert_file_mode",
        "key_file_mode",
        "jwt_bundle_file_mode",
        "jwt_svid_file_mode",
    ] {
        if g.chance(0.25) {
            let v = if g.chance(0.85) {
                *g.pick(&[
                    "0644", "0600", "0640", "0444", "0400", "420", "\"0644\"", "0664", "0",
                ])
            } else {
                *g.pick(&[
                    "0x1a4", "420.0", "4.2e2", "-1", "0o644", "\"420\"", "true", "07777", "010000",
                    "0644.5", "[0644]",
                ])
            };
            items.push((key.into(), Val::Raw(v.into())));
        }
    }
    if g.chance(0.1) {
        items.push(("hint".into(), Val::Str((*g.pick(&["main", "nope"])).into())));
    }
    if g.chance(0.1) {
        items.push((
            "renew_signal".into(),
            Val::Str((*g.pick(&["SIGHUP", "SIGUSR1", "HUP", "sighup", "SIGFOO", "1", ""])).into()),
        ));
    }
    if g.chance(0.08) {
        items.push(("cmd".into(), Val::Str("/bin/true".into())));
        items.push(("cmd_args".into(), Val::Str("-c \"a b\"".into())));
    }
}

fn hcl_string(g: &mut Gen, s: &str) -> String {
    if g.chance(0.08) && !s.contains('\n') {
        format!("<<EOF\n{s}\nEOF\n")
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Writes the configuration as HCL v1, with its syntax variations.
fn hcl(g: &mut Gen, c: &Conf) -> String {
    let mut out = String::new();
    for (key, val) in &c.items {
        if g.chance(0.1) {
            let comment = *g.pick(&["# a comment\n", "// a comment\n", "/* a\n comment */\n"]);
            out.push_str(comment);
        }
        let k = match g.rng.u8(0..10) {
            0 => key.to_uppercase(),
            1 => format!("\"{key}\""),
            _ => key.clone(),
        };
        let eq = *g.pick(&[" = ", "=", "  =  "]);
        let v = match val {
            Val::Str(s) => hcl_string(g, s),
            Val::Raw(r) => r.clone(),
            Val::Jwt(entries) => {
                if entries.is_empty() {
                    (*g.pick(&["[]", "{}"])).to_owned()
                } else {
                    let objs: Vec<String> = entries
                        .iter()
                        .map(|(aud, file, extra)| {
                            let mut o = format!(
                                "{{ jwt_audience = \"{aud}\", jwt_svid_file_name = \"{file}\""
                            );
                            if let Some(e) = extra {
                                o.push_str(&format!(", jwt_extra_audiences = [\"{e}\"]"));
                            }
                            o.push_str(" }");
                            o
                        })
                        .collect();
                    format!("[\n  {}\n]", objs.join(",\n  "))
                }
            }
        };
        out.push_str(&format!("{k}{eq}{v}\n"));
    }
    out
}

/// Writes the configuration as a JSON document (without `jwt_svids`
/// entries, whose fields the Go helper's JSON reading loses).
fn json(g: &mut Gen, c: &Conf) -> String {
    let mut members = Vec::new();
    for (key, val) in &c.items {
        let v = match val {
            Val::Str(s) => serde_json::Value::String(s.clone()).to_string(),
            Val::Raw(r) => {
                if let Some(inner) = r.strip_prefix('"') {
                    format!("\"{inner}")
                } else if let Some(oct) = r.strip_prefix('0').filter(|o| !o.is_empty()) {
                    // JSON has no octal: the decimal value.
                    u32::from_str_radix(oct, 8).map_or_else(|_| r.clone(), |n| n.to_string())
                } else {
                    r.clone()
                }
            }
            Val::Jwt(_) => continue,
        };
        members.push(format!("\"{key}\": {v}"));
    }
    let trailing = if g.chance(0.2) { "," } else { "" };
    let after = if g.chance(0.1) { "\n# after\n" } else { "\n" };
    format!("{{\n  {}{trailing}\n}}{after}", members.join(",\n  "))
}

/// One random change to the text.
fn mutate(g: &mut Gen, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        return text.to_owned();
    }
    let i = g.rng.usize(..lines.len());
    match g.rng.u8(0..5) {
        0 => {
            let l = &mut lines[i];
            if !l.is_empty() {
                let at = g.rng.usize(..l.len());
                if l.is_char_boundary(at) && l.is_char_boundary(at + 1) {
                    l.remove(at);
                }
            }
        }
        1 => {
            let dup = lines[i].clone();
            lines.insert(i, dup);
        }
        2 => {
            let c = *g.pick(&['{', '}', '[', ']', '"', ',', '=', '#', ' ', '\\', '.']);
            let l = &mut lines[i];
            let at = g.rng.usize(..=l.len());
            if l.is_char_boundary(at) {
                l.insert(at, c);
            }
        }
        3 => {
            let j = g.rng.usize(..lines.len());
            lines.swap(i, j);
        }
        _ => {
            lines.remove(i);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The configuration text for case `n` of `seed`.
fn case_text(seed: u64, n: u64, socket: &str) -> String {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n),
    };
    let conf = generate(&mut g, socket);
    let mut text = if g.chance(0.25) {
        json(&mut g, &conf)
    } else {
        hcl(&mut g, &conf)
    };
    match harsher() {
        Some(n) => {
            for _ in 0..n {
                text = mutate(&mut g, &text);
            }
        }
        None if g.chance(0.3) => text = mutate(&mut g, &text),
        None => {}
    }
    text
}

/// `SPIFFE_HELPER_DIFF_MUTATIONS=N`: every case mutated N times, to look
/// for differences further from the configurations people write.
fn harsher() -> Option<u32> {
    std::env::var("SPIFFE_HELPER_DIFF_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
}

// === running and comparing ===

fn files_under(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                walk(root, &path, out);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel != "helper.conf" {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.insert(rel, (meta.mode() & 0o7777, bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

async fn run(program: &Path, text: &str, socket: &str) -> Outcome {
    let dir = short_tempdir("diff");
    std::fs::create_dir_all(dir.path().join("certs/sub")).unwrap();
    std::fs::write(dir.path().join("helper.conf"), text).unwrap();
    let mut c = tokio::process::Command::new(program);
    c.args(["-config", "helper.conf", "-daemon-mode=false"])
        .current_dir(dir.path())
        .env("SPIFFE_ENDPOINT_SOCKET", socket)
        .env_remove("SPIRE_AGENT_ADDRESS")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: what a helper cut short said is kept.
        .stderr(std::fs::File::create(dir.path().join("helper.err")).unwrap())
        .kill_on_drop(true);
    // SAFETY: umask is async-signal-safe and touches no memory.
    #[allow(
        unsafe_code,
        reason = "both helpers must start under the same umask, set between fork and exec"
    )]
    unsafe {
        c.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(UMASK));
            Ok(())
        });
    }
    let mut child = c.spawn().expect("spawn helper");
    let code = if let Ok(status) = tokio::time::timeout(CASE_DEADLINE, child.wait()).await {
        status.expect("wait").code()
    } else {
        let _ = child.kill().await;
        None
    };
    let stderr = std::fs::read_to_string(dir.path().join("helper.err")).unwrap_or_default();
    let mut files = files_under(dir.path());
    files.remove("helper.err");
    Outcome {
        code,
        stderr,
        files,
    }
}

/// The JWT bundle file as JSON with each base64 JWKS decoded.
fn canonical_json(bytes: &[u8]) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let obj = v.as_object()?;
    Some(serde_json::Value::Object(
        obj.iter()
            .map(|(k, v)| {
                let decoded = v
                    .as_str()
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                    .and_then(|raw| serde_json::from_slice(&raw).ok())
                    .unwrap_or_else(|| v.clone());
                (k.clone(), decoded)
            })
            .collect(),
    ))
}

/// The differences, in words.
fn differences(go: &Outcome, ours: &Outcome) -> Vec<String> {
    let mut d = Vec::new();
    if go.code != ours.code {
        d.push(format!("exit code: Go {:?}, ours {:?}", go.code, ours.code));
    }
    for (name, (mode, bytes)) in &go.files {
        match ours.files.get(name) {
            None => d.push(format!("{name}: written by Go only")),
            Some((our_mode, our_bytes)) => {
                if mode != our_mode {
                    d.push(format!("{name}: mode Go {mode:o}, ours {our_mode:o}"));
                }
                let same = is_token(name)
                    || bytes == our_bytes
                    || matches!((canonical_json(bytes), canonical_json(our_bytes)), (Some(a), Some(b)) if a == b);
                if !same {
                    d.push(format!("{name}: content differs"));
                }
            }
        }
    }
    for name in ours.files.keys() {
        if !go.files.contains_key(name) {
            d.push(format!("{name}: written by us only"));
        }
    }
    d
}

/// The deliberate class that explains every difference, if one does.
fn explain(go: &Outcome, ours: &Outcome) -> Option<&'static str> {
    let d = differences(go, ours);
    if d.is_empty() {
        return Some("");
    }
    // Modes only, each ours = Go's widened by exactly what the umask took.
    let umask_only = go.code == ours.code
        && go.files.keys().eq(ours.files.keys())
        && go.files.iter().all(|(n, (m, b))| {
            let (om, ob) = &ours.files[n];
            (is_token(n) || b == ob || canonical_json(b) == canonical_json(ob))
                && (m == om || (om & !UMASK == *m && om & UMASK != 0))
        });
    if umask_only {
        return Some("umask");
    }
    if ours.code.is_none() && ours.stderr.contains("does not exist") && go.code != Some(0) {
        return Some("waits_for_socket");
    }
    let refused = |parts: &[&str]| {
        ours.code == Some(1)
            && ours.files.is_empty()
            && parts.iter().any(|p| ours.stderr.contains(p))
    };
    if refused(&[
        "leaves cert_dir",
        "each output needs a file of its own",
        "names cert_dir itself",
        "is an absolute path and cert_dir is not set",
    ]) {
        return Some("confinement");
    }
    if refused(&["cmd_args", "renew_signal", "a safe file name"]) && go.code == Some(0) {
        return Some("stricter_at_load");
    }
    if go.code == Some(1)
        && go
            .stderr
            .contains("'jwt_file_name' is required in 'jwt_svids'")
        && ours.code == Some(0)
        && ours.stderr.contains("jwt_svids")
        && ours.stderr.contains("refuses the file")
    {
        return Some("jwt_svids_object");
    }
    if go.code == Some(1)
        && go.stderr.contains("illegal char escape")
        && ours.code == Some(0)
        && ours
            .stderr
            .contains("the escape \\/ is JSON, but the Go helper refuses it")
    {
        return Some("json_solidus");
    }
    if go.code == Some(1) && go.stderr.contains("invalid (non-empty) authority: unix:") {
        return Some("agent_address_url");
    }
    if go.code.is_some_and(|c| c != 0) && ours.code.is_some_and(|c| c != 0) && ours.files.is_empty()
    {
        return Some("failed_run_writes_nothing");
    }
    None
}

/// Cuts `text` down, a line at a time, while the helpers still differ in
/// a way nothing explains.
async fn minimise(bins: &Path, text: &str, socket: &str) -> String {
    let ours = bin();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut i = 0;
    let mut tries = 0;
    while i < lines.len() && tries < 80 {
        tries += 1;
        let mut shorter = lines.clone();
        shorter.remove(i);
        let t = format!("{}\n", shorter.join("\n"));
        let go = run(bins, &t, socket).await;
        let us = run(&ours, &t, socket).await;
        if explain(&go, &us).is_none() {
            lines = shorter;
        } else {
            i += 1;
        }
    }
    format!("{}\n", lines.join("\n"))
}

async fn run_seed(go_helper: &Path, seed: u64, cases: u64, socket: &str) -> Vec<String> {
    let ours = bin();
    let mut failures = Vec::new();
    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    for n in 0..cases {
        let text = case_text(seed, n, socket);
        let go = run(go_helper, &text, socket).await;
        let us = run(&ours, &text, socket).await;
        if let Some(class) = explain(&go, &us) {
            let class = if class.is_empty() { "same" } else { class };
            *classes.entry(class).or_default() += 1;
            continue;
        }
        let minimal = minimise(go_helper, &text, socket).await;
        let go_m = run(go_helper, &minimal, socket).await;
        let us_m = run(&ours, &minimal, socket).await;
        failures.push(format!(
            "seed {seed} case {n}: {:?}\n--- minimal configuration ---\n{minimal}--- differences ---\n{}\n--- Go said ---\n{}\n--- ours said ---\n{}",
            differences(&go, &us),
            differences(&go_m, &us_m).join("\n"),
            go_m.stderr.lines().rev().take(3).collect::<Vec<_>>().join("\n"),
            us_m.stderr.lines().rev().take(3).collect::<Vec<_>>().join("\n"),
        ));
        if failures.len() >= 3 {
            break;
        }
    }
    eprintln!("seed {seed}: {cases} cases: {classes:?}");
    failures
}

/// The fake agent both helpers read from: an X.509 SVID with the hint
/// `main`, a JWT-SVID for any audience and the JWT bundle.
async fn agent() -> (tempfile::TempDir, FakeWorkloadApi) {
    let agent_dir = short_tempdir("dagent");
    let api = FakeWorkloadApi::start_at(&agent_dir.path().join("a.sock")).await;
    let pki = Pki::new();
    let svid = pki.svid().with_hint("main");
    api.set_x509(pki.x509_update(svid));
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), "main".into())],
        Duration::from_secs(3600),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    (agent_dir, api)
}

/// JSON lists and objects the Go helper's reader takes beyond RFC 8259
/// (docs/migrating.md), each run by both helpers (see [`read_alike`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_the_go_helper_reads_beyond_the_standard_is_read_alike() {
    // (the rest of the document, the certificate's mode when it runs)
    let cases: &[(&str, Option<u32>)] = &[
        // A list cut short by '}': the key is dropped, the object ends.
        (", \"cert_file_mode\": [384\n}", Some(0o644)),
        (
            r#", "health_checks": {"x": [1, }, "cert_file_mode": 384}"#,
            Some(0o600),
        ),
        (
            r#", "health_checks": {"x": [{"a": [1 }, 2]}, "cert_file_mode": 384}"#,
            Some(0o600),
        ),
        // Commas optional and repeatable, booleans dropped, '[' skipped.
        (
            r#", "health_checks": {"x": [1 2 [3 true], "y": 1}, "cert_file_mode": 384}"#,
            Some(0o600),
        ),
        (
            r#", "health_checks": {"x": [,1,,2,]}, "cert_file_mode": 384}"#,
            Some(0o600),
        ),
        // A missing comma in an inner object: it ends, one token skipped,
        // and the document goes on from there or stops.
        (
            r#", "health_checks": {"y": 1 ] , "cert_file_mode": 384}"#,
            Some(0o600),
        ),
        (
            r#", "health_checks": {"y": 1 "z": 2}, "cert_file_mode": 384}"#,
            Some(0o644),
        ),
        (
            r#", "health_checks": {"y": 1 "z" }, "cert_file_mode": 384}"#,
            Some(0o644),
        ),
        // Errors in both.
        (r#", "health_checks": {"x": [1, null]}}"#, None),
        (r#", "health_checks": {"x": [1"#, None),
        (r#", "health_checks": {"y": 1 = }}"#, None),
        (r#", "health_checks": {"y": 1 nope}}"#, None),
    ];
    let cases = cases.iter().map(|(rest, mode)| ("s.pem", *rest, *mode));
    read_alike(
        "json_the_go_helper_reads_beyond_the_standard_is_read_alike",
        cases,
    )
    .await;
}

/// JSON strings and numbers the Go helper's reader takes beyond RFC 8259
/// (docs/migrating.md), each run by both helpers (see [`read_alike`]).
/// What only Go's decoder refuses stops neither where no key reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_strings_and_numbers_beyond_the_standard_are_read_alike() {
    // (the rest of the document, the certificate's mode when it runs)
    let cases: &[(&str, Option<u32>)] = &[
        (
            r#", "health_checks": {"x": "\400 \xff \ud800 \U00110000 \a\v"}, "cert_file_mode": 384}"#,
            Some(0o600),
        ),
        (
            ", \"health_checks\": {\"x\": \"a\tb\u{1}c\"}, \"cert_file_mode\": 384}",
            Some(0o600),
        ),
        (
            r#", "health_checks": {"x": [.5, 1., 00.5 1.e5, -2.5E+3]}, "cert_file_mode": 384}"#,
            Some(0o600),
        ),
        // An exponent without digits takes the next character: here the
        // '}', so cert_file_mode is inside health_checks.
        (
            r#", "health_checks": {"x": 1e}, "cert_file_mode": 384}"#,
            Some(0o644),
        ),
        // Only that character: "5" is a token of its own, where the inner
        // object ends; cert_file_mode is then read at the top.
        (
            r#", "health_checks": {"x": 1ex5, "cert_file_mode": 384}}"#,
            Some(0o600),
        ),
        // A leading '.' takes no exponent: "3" is a token of its own.
        (
            r#", "health_checks": {"x": .5e3}, "cert_file_mode": 384}"#,
            Some(0o644),
        ),
        // Errors in both.
        (r#", "cert_file_mode": 1.}"#, None),
        (r#", "health_checks": {"x": "\q"}}"#, None),
        (r#", "health_checks": {"x": "\x4"}}"#, None),
        (r#", "health_checks": {"x": -.5}}"#, None),
    ];
    // The certificate's own name written with escapes.
    let spelled = (r"s\x2e\160\u0065\U0000006d", "}", Some(0o644));
    let cases = cases.iter().map(|(rest, mode)| ("s.pem", *rest, *mode));
    read_alike(
        "json_strings_and_numbers_beyond_the_standard_are_read_alike",
        cases.chain([spelled]),
    )
    .await;
}

/// Runs each JSON document (the certificate `certs/<name>`, then the rest)
/// through both helpers: the same outcome, and the one the case expects
/// (whether the run succeeds, and the certificate's mode, which says
/// whether the `cert_file_mode` after the odd part was read).
async fn read_alike<'a>(test: &str, cases: impl Iterator<Item = (&'a str, &'a str, Option<u32>)>) {
    let Some(bins) = binaries(test) else {
        return;
    };
    let (_agent_dir, api) = agent().await;
    let socket = api.socket_path().display().to_string();
    let mut failures = Vec::new();
    for (name, rest, mode) in cases {
        let document = format!(
            r#"{{"agent_address": "{socket}", "cert_dir": "certs", "svid_file_name": "{name}", "svid_key_file_name": "k.pem", "svid_bundle_file_name": "b.pem"{rest}"#
        );
        let go = run(&bins.go_helper, &document, &socket).await;
        let ours = run(&bin(), &document, &socket).await;
        let d = differences(&go, &ours);
        let our_mode = ours.files.get("certs/s.pem").map(|(m, _)| *m);
        // Exit 0 with the mode, or exit 1 and no certificate.
        let expected = (Some(i32::from(mode.is_none())), mode);
        if !d.is_empty() || (ours.code, our_mode) != expected {
            failures.push(format!(
                "{document}\n  differences: {d:?}\n  ours: exit {:?}, certificate mode {:?}; expected {expected:?} (modes in decimal)\n  ours said: {}",
                ours.code,
                our_mode,
                ours.stderr.lines().last().unwrap_or_default()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_configurations_behave_as_the_go_helper() {
    let test = "generated_configurations_behave_as_the_go_helper";
    let Some(bins) = binaries(test) else {
        return;
    };
    for (name, why) in DELIBERATE {
        assert!(!name.is_empty() && !why.is_empty());
    }
    let (_agent_dir, api) = agent().await;
    let socket = api.socket_path().display().to_string();

    let cases: u64 = std::env::var("SPIFFE_HELPER_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let replay: Option<u64> = std::env::var("SPIFFE_HELPER_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    let seeds = if let Some(seed) = replay {
        vec![seed]
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let varying = u64::try_from(now % u128::from(u64::MAX)).unwrap();
        eprintln!("seeds: {FIXED_SEED} (fixed) and {varying} (this run; replay with SPIFFE_HELPER_DIFF_SEED={varying})");
        vec![FIXED_SEED, varying]
    };
    let mut failures = Vec::new();
    for seed in seeds {
        failures.extend(run_seed(&bins.go_helper, seed, cases, &socket).await);
    }
    assert!(
        failures.is_empty(),
        "the helpers differ where no deliberate class explains it:\n\n{}",
        failures.join("\n\n")
    );
}
