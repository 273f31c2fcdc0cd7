//! Atomic, transactional file output.
//!
//! Every file is written through a temporary file in the target directory:
//! created with `O_EXCL`, given its final mode with `fchmod` before a byte is
//! written, written, fsynced, renamed over the target, and then the directory
//! is fsynced. A reader sees either the old file or the new one, never a torn
//! or empty one, and a key is never readable beyond its configured mode.
//!
//! [`commit`] does this for a batch, whole or not at all:
//! 1. every temporary file is staged and fsynced (the fsyncs run side by
//!    side on a small long-lived pool of threads);
//! 2. each existing target gets a hard link under a backup name, so its
//!    previous content can be put back (a copy where links are refused);
//! 3. the temporary files are renamed over their targets in the order
//!    given, and stale files are removed;
//! 4. the directories are fsynced.
//!
//! If a rename, a removal or a directory sync fails, every change already
//! made is undone: the backups are renamed back, and a file that did not
//! exist before is removed. The error then says what is on disk. Temporary
//! and backup files follow one naming pattern, `.<name>.<pid>.<n>.tmp` and
//! `.<name>.<pid>.<n>.bak`, which [`remove_leftovers`] recognises at
//! start-up after a crash.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use crate::secret::Secret;

/// One file of a batch: where, what, and with which permission bits.
#[derive(Debug)]
pub struct FileWrite {
    pub path: PathBuf,
    /// Redacted in `Debug` and wiped on drop: it may be a key or a JWT.
    pub bytes: Secret,
    pub mode: u32,
}

impl FileWrite {
    pub fn new(path: PathBuf, bytes: Vec<u8>, mode: u32) -> Self {
        Self {
            path,
            bytes: Secret::new(bytes),
            mode,
        }
    }
}

/// A set of files that changes whole or not at all.
#[derive(Debug, Default)]
pub struct Batch {
    /// Written in this order (the order readers may rely on).
    pub writes: Vec<FileWrite>,
    /// Removed after the writes (files the agent no longer sends).
    pub removals: Vec<PathBuf>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.removals.is_empty()
    }

    pub fn extend(&mut self, other: Batch) {
        self.writes.extend(other.writes);
        self.removals.extend(other.removals);
    }
}

/// What a committed batch changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Files whose bytes or mode changed, in write order.
    pub written: Vec<PathBuf>,
    /// Files left alone because they already held exactly these bytes with
    /// this mode.
    pub unchanged: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
}

impl Committed {
    /// Whether anything on disk changed.
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || !self.removed.is_empty()
    }
}

/// A batch could not be committed. `path` is the file the failure concerns;
/// `on_disk` says, in words, what the batch left on disk.
#[derive(Debug, thiserror::Error)]
#[error("writing {}: {reason}; {on_disk}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    reason: String,
    pub on_disk: String,
    #[source]
    source: io::Error,
}

impl WriteError {
    fn new(path: &Path, source: io::Error) -> Self {
        let reason = match source.kind() {
            io::ErrorKind::NotFound => {
                format!("directory {} does not exist", display_dir(parent_dir(path)))
            }
            io::ErrorKind::PermissionDenied => {
                format!("permission denied ({source})")
            }
            _ => source.to_string(),
        };
        Self {
            path: path.to_path_buf(),
            reason,
            on_disk: "the previous files are unchanged".to_owned(),
            source,
        }
    }

    fn with_on_disk(mut self, on_disk: String) -> Self {
        self.on_disk = on_disk;
        self
    }

    /// A failure that is not about one file's I/O (e.g. a lost write task).
    pub fn other(reason: &str) -> Self {
        Self {
            path: PathBuf::new(),
            reason: reason.to_owned(),
            on_disk: "the previous files are unchanged".to_owned(),
            source: io::Error::other(reason.to_owned()),
        }
    }

    /// The underlying I/O error kind (ENOSPC, EMFILE, ...), for callers
    /// that classify failures.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// Writes one file atomically (a batch of one).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let batch = Batch {
        writes: vec![FileWrite::new(path.to_path_buf(), bytes.to_vec(), mode)],
        removals: Vec::new(),
    };
    commit(&batch, false).map(drop)
}

/// In a batch of more files than this, all but the last this many are
/// closed as soon as they are synced instead of after their rename, so a
/// large federation written to `trust_bundles_dir` cannot run the process
/// out of descriptors. The X.509 files come last in their batch, so they
/// always keep the close-after-rename order.
const OPEN_AFTER_RENAME: usize = 16;

/// Commits a batch whole or not at all (see the module docs). With
/// `skip_unchanged`, a file that already holds exactly these bytes with this
/// mode is left alone (its inode and times do not change).
pub fn commit(batch: &Batch, skip_unchanged: bool) -> Result<Committed, WriteError> {
    let mut done = Committed::default();
    let mut todo: Vec<&FileWrite> = Vec::with_capacity(batch.writes.len());
    for w in &batch.writes {
        if skip_unchanged && holds(&w.path, w.bytes.expose(), w.mode) {
            done.unchanged.push(w.path.clone());
        } else {
            todo.push(w);
        }
    }
    let removals: Vec<&PathBuf> = batch
        .removals
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .collect();
    if todo.is_empty() && removals.is_empty() {
        return Ok(done);
    }

    // 1. Stage and sync. On error the staged files are dropped, which
    // removes them: nothing else has changed yet.
    let mut staged: Vec<Staged> = Vec::with_capacity(todo.len());
    let close_early = todo.len().saturating_sub(OPEN_AFTER_RENAME);
    for (i, w) in todo.iter().enumerate() {
        refuse_directory(&w.path)?;
        let mut s = stage(w)?;
        if i < close_early {
            s.sync_and_close()?;
        }
        staged.push(s);
    }
    sync_all(&staged)?;

    // 2. Backups of everything about to be replaced or removed.
    let mut tx = Transaction::default();
    for s in &staged {
        tx.back_up(&s.target)?;
    }
    for p in &removals {
        tx.back_up(p)?;
    }

    // 3. Renames in order, then removals.
    for s in &mut staged {
        if let Err(e) = std::fs::rename(&s.temp, &s.target) {
            let err = WriteError::new(&s.target, e);
            return Err(tx.roll_back(err));
        }
        s.renamed = true;
        tx.changed.push(s.target.clone());
        // Closed after the rename: a program watching the target names
        // for close_write (written for in-place writers) sees one event.
        s.file = None;
    }
    for p in &removals {
        if let Err(e) = std::fs::remove_file(p) {
            let err = WriteError::new(p, e);
            return Err(tx.roll_back(err));
        }
        tx.changed.push((*p).clone());
    }

    // 4. One fsync per directory makes the renames durable.
    let mut dirs: Vec<&Path> = Vec::with_capacity(1);
    for p in &tx.changed {
        let d = parent_dir(p);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    for d in &dirs {
        if let Err(e) = sync_dir(d) {
            let err = WriteError::new(&d.join("."), e);
            let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
            let err = tx.roll_back(err);
            for d in dirs {
                let _ = sync_dir(&d);
            }
            return Err(err);
        }
    }
    tx.finish();
    done.written = staged.iter().map(|s| s.target.clone()).collect();
    done.removed = removals.into_iter().cloned().collect();
    Ok(done)
}

/// Whether `path` is a regular file (not a link) holding exactly `bytes`
/// with permission bits `mode`.
fn holds(path: &Path, bytes: &[u8], mode: u32) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file()
        || meta.mode() & 0o7777 != mode
        || meta.len() != bytes.len() as u64
    {
        return false;
    }
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut buf = Vec::with_capacity(bytes.len());
    // One byte more than expected tells a file that grew meanwhile.
    match Read::by_ref(&mut f)
        .take(bytes.len() as u64 + 1)
        .read_to_end(&mut buf)
    {
        Ok(_) => {
            let same = buf == bytes;
            zeroize::Zeroize::zeroize(&mut buf);
            same
        }
        Err(_) => false,
    }
}

/// A directory where a file should go cannot be replaced by a rename: say
/// so before anything has changed.
fn refuse_directory(path: &Path) -> Result<(), WriteError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(WriteError::new(
            path,
            io::Error::new(
                io::ErrorKind::IsADirectory,
                "a directory is in the way of the file",
            ),
        )),
        _ => Ok(()),
    }
}

/// Backups and the files changed so far, for undoing a batch.
#[derive(Default)]
struct Transaction {
    /// (target, backup) for every target that existed.
    backups: Vec<(PathBuf, PathBuf)>,
    /// Targets renamed over or removed, in order.
    changed: Vec<PathBuf>,
}

impl Transaction {
    fn back_up(&mut self, target: &Path) -> Result<(), WriteError> {
        if std::fs::symlink_metadata(target).is_err() {
            return Ok(());
        }
        match make_backup(target) {
            Ok(b) => {
                self.backups.push((target.to_path_buf(), b));
                Ok(())
            }
            Err(e) => {
                self.discard_backups();
                Err(WriteError::new(target, e))
            }
        }
    }

    /// Undoes every change and says what is on disk now.
    fn roll_back(mut self, err: WriteError) -> WriteError {
        let mut restored = Vec::new();
        let mut stuck = Vec::new();
        for target in self.changed.iter().rev() {
            let backup = self
                .backups
                .iter()
                .position(|(t, _)| t == target)
                .map(|i| self.backups.remove(i).1);
            let r = match &backup {
                Some(b) => std::fs::rename(b, target),
                None => std::fs::remove_file(target),
            };
            match r {
                Ok(()) => restored.push(name_of(target)),
                Err(e) => {
                    if let Some(b) = backup {
                        let _ = std::fs::remove_file(b);
                    }
                    stuck.push(format!("{} holds the new content ({e})", name_of(target)));
                }
            }
        }
        self.discard_backups();
        let on_disk = if stuck.is_empty() && restored.is_empty() {
            "nothing was changed: the previous files are intact".to_owned()
        } else if stuck.is_empty() {
            format!(
                "the batch was rolled back: {} hold{} the previous content again, so the files on disk still belong together",
                restored.join(", "),
                if restored.len() == 1 { "s" } else { "" }
            )
        } else {
            format!(
                "rolling back failed: {}; restored: {}",
                stuck.join("; "),
                if restored.is_empty() {
                    "none".to_owned()
                } else {
                    restored.join(", ")
                }
            )
        };
        err.with_on_disk(on_disk)
    }

    fn discard_backups(&mut self) {
        for (_, b) in self.backups.drain(..) {
            let _ = std::fs::remove_file(b);
        }
    }

    fn finish(mut self) {
        self.discard_backups();
    }
}

fn name_of(p: &Path) -> String {
    p.display().to_string()
}

/// A second name for `target`'s current inode (a copy where the filesystem
/// refuses hard links), next to it.
fn make_backup(target: &Path) -> io::Result<PathBuf> {
    let backup = unique_name(target, "bak")?;
    match std::fs::hard_link(target, &backup) {
        Ok(()) => Ok(backup),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(
                    nix::libc::EPERM | nix::libc::EOPNOTSUPP | nix::libc::EXDEV | nix::libc::EMLINK
                )
            ) && std::fs::symlink_metadata(target).is_ok_and(|m| m.is_file()) =>
        {
            // Immutable files also refuse links (EPERM); the copy then
            // succeeds but the later rename fails and is rolled back.
            copy_with_mode(target, &backup)?;
            Ok(backup)
        }
        Err(e) => Err(e),
    }
}

fn copy_with_mode(from: &Path, to: &Path) -> io::Result<()> {
    let mode = std::fs::metadata(from)?.mode() & 0o7777;
    let mut src = File::open(from)?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(to)?;
    dst.set_permissions(std::fs::Permissions::from_mode(mode))?;
    let r = io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all());
    if r.is_err() {
        let _ = std::fs::remove_file(to);
    }
    r
}

/// A temporary file written in full, waiting to be synced and renamed.
struct Staged {
    temp: PathBuf,
    target: PathBuf,
    /// `None` once closed (after its rename, or early in a large batch).
    file: Option<Arc<File>>,
    synced: bool,
    renamed: bool,
}

impl Staged {
    fn sync_and_close(&mut self) -> Result<(), WriteError> {
        if let Some(f) = self.file.take() {
            f.sync_all().map_err(|e| WriteError::new(&self.target, e))?;
        }
        self.synced = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn stage(w: &FileWrite) -> Result<Staged, WriteError> {
    let err = |e| WriteError::new(&w.path, e);
    let temp = unique_name(&w.path, "tmp").map_err(err)?;
    let mut handle = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(&temp)
        .map_err(err)?;
    let mut staged = Staged {
        temp,
        target: w.path.clone(),
        file: None,
        synced: false,
        renamed: false,
    };
    // The exact mode, independent of the umask, before any content exists.
    handle
        .set_permissions(std::fs::Permissions::from_mode(w.mode))
        .map_err(err)?;
    handle.write_all(w.bytes.expose()).map_err(err)?;
    staged.file = Some(Arc::new(handle));
    Ok(staged)
}

/// Makes every staged file durable. The fsyncs run side by side (the
/// filesystem folds them into one journal commit, so a batch costs about
/// one fsync instead of one per file) on a pool of long-lived threads: no
/// thread is created per batch.
fn sync_all(staged: &[Staged]) -> Result<(), WriteError> {
    let pending: Vec<(&Staged, Arc<File>)> = staged
        .iter()
        .filter(|s| !s.synced)
        .filter_map(|s| s.file.as_ref().map(|f| (s, Arc::clone(f))))
        .collect();
    let Some(((first, first_file), rest)) = pending.split_first() else {
        return Ok(());
    };
    let waits: Vec<_> = rest
        .iter()
        .map(|(s, f)| (*s, pool().submit(Arc::clone(f))))
        .collect();
    let mut result = first_file
        .sync_all()
        .map_err(|e| WriteError::new(&first.target, e));
    for (s, wait) in waits {
        let r = match wait {
            Some(rx) => rx.recv().unwrap_or_else(|_| s.file_sync()),
            None => s.file_sync(),
        };
        result = result.and(r.map_err(|e| WriteError::new(&s.target, e)));
    }
    result
}

impl Staged {
    fn file_sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_all(),
            None => Ok(()),
        }
    }
}

/// Threads that fsync files for [`sync_all`]: started on first use, one
/// more whenever every existing one is busy (up to [`SYNC_THREADS`]), and
/// kept, so a rotation never pays for creating a thread and the usual
/// batch (three to six files) is synced all at once, in one journal commit.
struct SyncPool {
    jobs: Mutex<mpsc::Sender<SyncJob>>,
    rx: Arc<Mutex<mpsc::Receiver<SyncJob>>>,
    /// Threads started, and threads waiting for a job.
    started: std::sync::atomic::AtomicUsize,
    idle: Arc<std::sync::atomic::AtomicUsize>,
}

/// A file to fsync and where to send the result.
type SyncJob = (Arc<File>, mpsc::SyncSender<io::Result<()>>);

const SYNC_THREADS: usize = 7;

fn pool() -> &'static SyncPool {
    static POOL: OnceLock<SyncPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SyncJob>();
        SyncPool {
            jobs: Mutex::new(tx),
            rx: Arc::new(Mutex::new(rx)),
            started: std::sync::atomic::AtomicUsize::new(0),
            idle: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    })
}

impl SyncPool {
    /// Queues an fsync; `None` when the pool cannot take it (the caller
    /// then syncs itself).
    fn submit(&self, file: Arc<File>) -> Option<mpsc::Receiver<io::Result<()>>> {
        if !self.grow() {
            return None;
        }
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let jobs = self.jobs.lock().ok()?;
        jobs.send((file, done_tx)).ok()?;
        Some(done_rx)
    }

    /// Starts one more thread when none is waiting for work. False when
    /// there is no thread at all to take a job.
    fn grow(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if self
            .idle
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            // One waiting thread takes this job.
            return true;
        }
        let n = self.started.fetch_add(1, SeqCst);
        if n >= SYNC_THREADS {
            // Every thread is busy: the job waits in the queue.
            self.started.fetch_sub(1, SeqCst);
            return true;
        }
        let rx = Arc::clone(&self.rx);
        let idle = Arc::clone(&self.idle);
        let spawned = std::thread::Builder::new()
            .name(format!("fsync-{n}"))
            .stack_size(64 * 1024)
            .spawn(move || loop {
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((file, done)) = job else { return };
                let _ = done.send(file.sync_all());
                idle.fetch_add(1, SeqCst);
            });
        if spawned.is_err() {
            // The queue is still served by the threads there are; with
            // none, the caller syncs itself.
            return self.started.fetch_sub(1, SeqCst) > 1;
        }
        true
    }
}

/// A new name next to `target` in the helper's own pattern:
/// `.<name>.<pid>.<n>.<suffix>`.
fn unique_name(target: &Path, suffix: &str) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let dir = parent_dir(target);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = OsString::from(".");
        name.push(base);
        name.push(format!(".{}.{n}.{suffix}", std::process::id()));
        let p = dir.join(&name);
        if std::fs::symlink_metadata(&p).is_err() {
            return Ok(p);
        }
    }
}

/// Whether `name` is one of the helper's temporary or backup names for a
/// file called `base`: `.<base>.<digits>.<digits>.tmp|bak`.
pub fn is_leftover_of(name: &OsStr, base: &OsStr) -> bool {
    let name = name.as_bytes();
    let base = base.as_bytes();
    let Some(rest) = name
        .strip_prefix(b".")
        .and_then(|r| r.strip_prefix(base))
        .and_then(|r| r.strip_prefix(b"."))
    else {
        return false;
    };
    let Some(rest) = rest
        .strip_suffix(b".tmp")
        .or_else(|| rest.strip_suffix(b".bak"))
    else {
        return false;
    };
    let mut parts = rest.split(|&b| b == b'.');
    let digits =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// Removes the temporary and backup files that an earlier run left next to
/// `targets` (after a SIGKILL or a power loss). Only names in the helper's
/// own pattern for one of the target names are touched. Returns what was
/// removed.
pub fn remove_leftovers(targets: &[PathBuf]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut dirs: Vec<(&Path, Vec<&OsStr>)> = Vec::new();
    for t in targets {
        let Some(base) = t.file_name() else { continue };
        let d = parent_dir(t);
        match dirs.iter_mut().find(|(dir, _)| *dir == d) {
            Some((_, bases)) => bases.push(base),
            None => dirs.push((d, vec![base])),
        }
    }
    for (dir, bases) in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if bases.iter().any(|b| is_leftover_of(&name, b))
                && e.file_type().is_ok_and(|t| t.is_file())
            {
                let p = dir.join(&name);
                if std::fs::remove_file(&p).is_ok() {
                    removed.push(p);
                }
            }
        }
    }
    removed
}

/// Removes the helper's temporary and backup files in `dir` for any target
/// name `managed` accepts (e.g. every `<trust domain>.pem`).
pub fn remove_leftovers_in(dir: &Path, managed: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(text) = name.to_str() else { continue };
        let Some(base) = leftover_base(text) else {
            continue;
        };
        if managed(base) && e.file_type().is_ok_and(|t| t.is_file()) {
            let p = dir.join(&name);
            if std::fs::remove_file(&p).is_ok() {
                removed.push(p);
            }
        }
    }
    removed
}

/// The target name a leftover name was made for, if it is one.
fn leftover_base(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    let rest = rest
        .strip_suffix(".tmp")
        .or_else(|| rest.strip_suffix(".bak"))?;
    let (rest, n) = rest.rsplit_once('.')?;
    let (base, pid) = rest.rsplit_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(n) && digits(pid) && !base.is_empty()).then_some(base)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path`; `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn display_dir(dir: &Path) -> String {
    if dir.as_os_str().as_bytes() == b"." {
        "(the working directory)".to_owned()
    } else {
        dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn batch(files: &[(&Path, &[u8], u32)]) -> Batch {
        Batch {
            writes: files
                .iter()
                .map(|(p, b, m)| FileWrite::new(p.to_path_buf(), b.to_vec(), *m))
                .collect(),
            removals: Vec::new(),
        }
    }

    #[test]
    fn replaces_a_wider_existing_file_instead_of_reusing_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        std::fs::write(&p, b"old key").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let old_ino = std::fs::metadata(&p).unwrap().ino();
        write_atomic(&p, b"new key", 0o600).unwrap();
        assert_eq!(mode_of(&p), 0o600);
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), old_ino);
        assert_eq!(std::fs::read(&p).unwrap(), b"new key");
        assert_eq!(names(dir.path()), ["key.pem"]);
    }

    #[test]
    fn missing_directory_names_it_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("svid.pem");
        let e = write_atomic(&p, b"x", 0o644).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("svid.pem"), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[test]
    fn a_failure_while_staging_keeps_previous_files_and_removes_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.pem");
        std::fs::write(&a, b"old a").unwrap();
        let missing = dir.path().join("missing").join("b.pem");
        let err = commit(
            &batch(&[(&a, b"new a", 0o644), (&missing, b"new b", 0o644)]),
            false,
        )
        .unwrap_err();
        assert_eq!(err.path, missing);
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert_eq!(names(dir.path()), ["a.pem"]);
    }

    #[test]
    fn a_directory_in_the_way_fails_before_anything_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"old a").unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("inside"), b"x").unwrap();
        let err = commit(
            &batch(&[(&a, b"new a", 0o644), (&b, b"new b", 0o644)]),
            false,
        )
        .unwrap_err();
        assert_eq!(err.path, b);
        assert!(err.to_string().contains("directory is in the way"), "{err}");
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert_eq!(names(dir.path()), ["a", "b"]);
    }

    #[test]
    fn a_failed_rename_rolls_back_the_files_already_renamed() {
        // The binary-level tests make a rename fail for real (an immutable
        // file, a directory in the way); here the rollback is driven
        // directly, after two renames went through.
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"old a").unwrap();
        let mut tx = Transaction::default();
        tx.back_up(&a).unwrap();
        tx.back_up(&b).unwrap();
        for (p, new) in [(&a, b"new a"), (&b, b"new b")] {
            let t = dir.path().join("t");
            std::fs::write(&t, new).unwrap();
            std::fs::rename(&t, p).unwrap();
        }
        tx.changed = vec![a.clone(), b.clone()];
        let err = tx.roll_back(WriteError::new(&b, io::Error::other("boom")));
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert!(!b.exists(), "a file that did not exist is removed again");
        assert!(err.on_disk.contains("rolled back"), "{}", err.on_disk);
        assert_eq!(names(dir.path()), ["a"]);
    }

    #[test]
    fn unchanged_files_are_skipped_and_keep_their_inode() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let first = commit(&batch(&[(&a, b"A", 0o644), (&b, b"B", 0o600)]), true).unwrap();
        assert_eq!(first.written, [a.clone(), b.clone()]);
        let (ia, ib) = (
            std::fs::metadata(&a).unwrap().ino(),
            std::fs::metadata(&b).unwrap().ino(),
        );
        let again = commit(&batch(&[(&a, b"A", 0o644), (&b, b"B2", 0o600)]), true).unwrap();
        assert_eq!(again.unchanged, std::slice::from_ref(&a));
        assert_eq!(again.written, std::slice::from_ref(&b));
        assert_eq!(std::fs::metadata(&a).unwrap().ino(), ia);
        assert_ne!(std::fs::metadata(&b).unwrap().ino(), ib);
        // A different mode is a change.
        let mode = commit(&batch(&[(&a, b"A", 0o640)]), true).unwrap();
        assert_eq!(mode.written, std::slice::from_ref(&a));
        assert_eq!(mode_of(&a), 0o640);
        let none = commit(&batch(&[(&a, b"A", 0o640)]), true).unwrap();
        assert!(!none.changed());
    }

    #[test]
    fn removals_are_part_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (a, stale) = (dir.path().join("a.pem"), dir.path().join("old.pem"));
        std::fs::write(&stale, b"old").unwrap();
        let mut b = batch(&[(&a, b"A", 0o644)]);
        b.removals.push(stale.clone());
        b.removals.push(dir.path().join("never-there.pem"));
        let c = commit(&b, true).unwrap();
        assert_eq!(c.removed, std::slice::from_ref(&stale));
        assert_eq!(names(dir.path()), ["a.pem"]);
    }

    #[test]
    fn large_batches_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..40)
            .map(|i| dir.path().join(format!("{i}.pem")))
            .collect();
        let b = Batch {
            writes: paths
                .iter()
                .map(|p| {
                    FileWrite::new(
                        p.clone(),
                        p.to_string_lossy().into_owned().into_bytes(),
                        0o644,
                    )
                })
                .collect(),
            removals: Vec::new(),
        };
        commit(&b, false).unwrap();
        for p in &paths {
            assert_eq!(std::fs::read(p).unwrap(), p.to_string_lossy().as_bytes());
        }
        assert_eq!(names(dir.path()).len(), 40);
    }

    #[test]
    fn leftovers_are_recognised_by_the_exact_pattern_only() {
        let yes = [".svid.pem.12.0.tmp", ".svid.pem.1.22.bak"];
        let no = [
            "svid.pem",
            ".svid.pem.12.tmp",
            ".svid.pem.x.0.tmp",
            ".svid.pem.1.2.3.tmp",
            ".other.pem.1.2.tmp",
            ".svid.pem.1.2.tmpx",
            ".svid.pem..2.tmp",
        ];
        for n in yes {
            assert!(is_leftover_of(OsStr::new(n), OsStr::new("svid.pem")), "{n}");
        }
        for n in no {
            assert!(
                !is_leftover_of(OsStr::new(n), OsStr::new("svid.pem")),
                "{n}"
            );
        }
    }

    #[test]
    fn remove_leftovers_touches_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("svid.pem");
        for n in [
            ".svid.pem.99.3.tmp",
            ".svid.pem.99.4.bak",
            ".keep.pem.1.1.tmp",
            "svid.pem",
            "notes.tmp",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let removed = remove_leftovers(&[target]);
        assert_eq!(removed.len(), 2);
        assert_eq!(
            names(dir.path()),
            [".keep.pem.1.1.tmp", "notes.tmp", "svid.pem"]
        );
    }

    #[test]
    fn leftovers_in_a_directory_are_matched_by_their_target_name() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            ".a.test.pem.5.1.tmp",
            ".a.test.pem.5.2.bak",
            ".notes.txt.5.1.tmp",
            "b.test.pem",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let removed = remove_leftovers_in(dir.path(), |b| b.ends_with(".pem"));
        assert_eq!(removed.len(), 2);
        assert_eq!(names(dir.path()), [".notes.txt.5.1.tmp", "b.test.pem"]);
        assert_eq!(leftover_base(".x.pem.1.2.tmp"), Some("x.pem"));
        assert_eq!(leftover_base(".x.pem.1.tmp"), None);
    }

    #[test]
    fn bare_file_name_is_relative_to_the_working_directory() {
        assert_eq!(parent_dir(Path::new("svid.pem")), Path::new("."));
        assert_eq!(parent_dir(Path::new("certs/svid.pem")), Path::new("certs"));
    }
}
