//! Stamps the binary with the commit it was built from and that commit's
//! date in UTC (the build date of a reproducible build), for `-check`,
//! `/status` and the start-up log line. `SPIFFE_HELPER_COMMIT` and
//! `SPIFFE_HELPER_BUILD_DATE` override them (a build without git, such as
//! the image's); otherwise `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .env("TZ", "UTC")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=SPIFFE_HELPER_COMMIT");
    println!("cargo:rerun-if-env-changed=SPIFFE_HELPER_BUILD_DATE");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let mut watched = vec![format!("{dir}/HEAD"), format!("{dir}/packed-refs")];
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(format!("{dir}/{head}"));
        }
        // A path that does not exist would make the script run every time.
        for p in watched.iter().filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let commit = std::env::var("SPIFFE_HELPER_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let date = std::env::var("SPIFFE_HELPER_BUILD_DATE")
        .ok()
        .filter(|d| !d.is_empty())
        .or_else(|| {
            git(&[
                "log",
                "-1",
                "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
                "--format=%cd",
            ])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SPIFFE_HELPER_COMMIT={commit}");
    println!("cargo:rustc-env=SPIFFE_HELPER_BUILD_DATE={date}");
}
