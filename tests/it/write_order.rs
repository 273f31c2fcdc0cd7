//! The order in which files reach their names, watched with inotify: each
//! X.509 update renames the bundle, then the key, then the certificate
//! into place; nothing is ever written through a target name; and each
//! temporary file is closed after its rename, so a program watching the
//! target names for `close_write` gets exactly one event per file and update.

use std::ffi::OsString;
use std::time::Duration;

use crate::common::*;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

const LONG: Duration = Duration::from_secs(20);
const ORDER: [&str; 3] = ["svid_bundle.pem", "svid_key.pem", "svid.pem"];

/// Events seen in one directory, in order: (what happened, file name).
struct Watch {
    inotify: Inotify,
    events: Vec<(AddWatchFlags, String)>,
}

impl Watch {
    fn new(dir: &std::path::Path) -> Self {
        let inotify =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).expect("inotify");
        inotify
            .add_watch(
                dir,
                AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_MODIFY,
            )
            .expect("watch certs/");
        Self {
            inotify,
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        loop {
            match self.inotify.read_events() {
                Ok(evs) => {
                    for e in evs {
                        assert!(
                            !e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW),
                            "inotify queue overflow"
                        );
                        let name = e.name.map(OsString::into_string).map(Result::unwrap);
                        self.events.push((e.mask, name.unwrap_or_default()));
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(e) => panic!("reading inotify events: {e}"),
            }
        }
    }

    /// Target names (not the helper's dot-named temporary or backup files)
    /// with `flag`, in order.
    fn targets(&self, flag: AddWatchFlags) -> Vec<&str> {
        self.events
            .iter()
            .filter(|(m, n)| m.contains(flag) && !n.starts_with('.'))
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// Waits until `n` certificates have been renamed into place and the
    /// files of those batches closed.
    async fn wait_batches(&mut self, n: usize) {
        let what = format!("{n} batches");
        wait_until(&what, LONG, || {
            self.drain();
            let renamed = self
                .targets(AddWatchFlags::IN_MOVED_TO)
                .iter()
                .filter(|t| **t == "svid.pem")
                .count();
            let closed = self.targets(AddWatchFlags::IN_CLOSE_WRITE).len();
            let done = if renamed >= n && closed >= 3 * n {
                Ok(())
            } else {
                Err(format!("{:?}", self.events))
            };
            std::future::ready(done)
        })
        .await;
        // Anything else of the last batch arrives with these.
        self.drain();
    }

    #[track_caller]
    fn assert_batches(&self, n: usize) {
        let renamed = self.targets(AddWatchFlags::IN_MOVED_TO);
        let want: Vec<&str> = ORDER.iter().copied().cycle().take(3 * n).collect();
        assert_eq!(renamed, want, "rename order; all events: {:?}", self.events);
        for name in ORDER {
            let closed = self
                .targets(AddWatchFlags::IN_CLOSE_WRITE)
                .iter()
                .filter(|t| **t == name)
                .count();
            assert_eq!(
                closed, n,
                "close_write events for {name}: {:?}",
                self.events
            );
        }
        assert_eq!(
            self.targets(AddWatchFlags::IN_MODIFY),
            Vec::<&str>::new(),
            "written through a target name"
        );
        let temp_closes: Vec<_> = self
            .events
            .iter()
            .filter(|(m, n)| m.contains(AddWatchFlags::IN_CLOSE_WRITE) && n.starts_with('.'))
            .collect();
        assert!(
            temp_closes.is_empty(),
            "a temporary file was closed before its rename: {temp_closes:?}"
        );
    }
}

/// Each update gets a bundle of its own (an extra root), so all three
/// files change every time and none is skipped as unchanged.
fn update(pki: &Pki) -> X509Update {
    let mut u = pki.x509_update(pki.svid());
    u.svids[0].1.push(Ca::root("example.org").cert_der());
    u
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_writes_bundle_then_key_then_certificate() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(update(&pki));
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), "daemon_mode = false\n"));
    let mut watch = Watch::new(&w.certs());
    w.run(&["-config", "helper.conf"]).await.assert_success();
    watch.wait_batches(1).await;
    watch.assert_batches(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rotation_writes_bundle_then_key_then_certificate() {
    const UPDATES: usize = 5;
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(update(&pki));
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), ""));
    let mut watch = Watch::new(&w.certs());
    let _d = w.spawn(&["-config", "helper.conf"]);
    watch.wait_batches(1).await;
    for n in 2..=UPDATES {
        api.set_x509(update(&pki));
        watch.wait_batches(n).await;
    }
    watch.assert_batches(UPDATES);
}
