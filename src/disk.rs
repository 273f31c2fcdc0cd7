//! Atomic, transactional file output, confined to `cert_dir`.
//!
//! `cert_dir` is opened once ([`Root`]), and every operation below it goes
//! through that handle: directories are opened one element at a time with
//! `O_NOFOLLOW`, files are created, renamed, linked and removed relative
//! to their directory's descriptor, and modes are set with `fchmod` on the
//! open file. A symbolic link planted below `cert_dir` is never followed:
//! an output name that is a link is replaced like any file, and a link
//! where a directory should be is an error that writes nothing.
//!
//! Every file is written through a temporary file in the target directory:
//! created with `O_EXCL`, given its final mode with `fchmod` before a byte is
//! written, written, fsynced, renamed over the target, and then the directory
//! is fsynced. A reader sees either the old file or the new one, never a torn
//! or empty one, and a key is never readable beyond its configured mode.
//!
//! [`commit`] does this for a batch, whole or not at all:
//! 1. every temporary file is staged and fsynced (the fsyncs run side by
//!    side on a small long-lived pool of threads, or in turn on tmpfs,
//!    where they return at once);
//! 2. each existing target gets a hard link under a backup name, so its
//!    previous content can be put back (a copy where links are refused);
//! 3. the temporary files are renamed over their targets in the order
//!    given, and stale files are removed;
//! 4. the directories are fsynced.
//!
//! If a rename, a removal or a directory sync fails, every change already
//! made is undone: the backups are renamed back, and a file that did not
//! exist before is removed. The error then says what is on disk.
//!
//! A directory the helper cannot create files in (images that create
//! `cert_dir` as root and hand only the files to the helper's user) gets
//! its existing files rewritten in place instead: truncated, written and
//! fsynced, never given a wider mode; see [`Method::InPlace`].
//!
//! Temporary and backup names are short and of fixed length,
//! `.<hash>-<pid>-<n>.tmp|bak` (eight hex digits each, the hash that of the
//! target's name), so a long output name still fits, and
//! [`remove_leftovers`] recognises them at start-up after a crash.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::sys::statfs::{fstatfs, TMPFS_MAGIC};
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};

use crate::secret::Secret;

/// One file of a batch: where, what, and with which permission bits.
#[derive(Debug)]
pub struct FileWrite {
    /// `cert_dir` joined with the output name: it must lie below the
    /// [`Root`] the batch is committed to.
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
    /// A directory of the helper's own (`trust_bundles_dir`): created when
    /// missing, and every file in it whose name `managed` accepts and that
    /// the batch does not write is removed (trust domains the agent no
    /// longer sends).
    pub own_dir: Option<OwnDir>,
}

/// See [`Batch::own_dir`].
#[derive(Debug, Clone)]
pub struct OwnDir {
    pub path: PathBuf,
    pub managed: fn(&str) -> bool,
}

impl Batch {
    pub fn extend(&mut self, other: Batch) {
        self.writes.extend(other.writes);
        if other.own_dir.is_some() {
            self.own_dir = other.own_dir;
        }
    }
}

/// How a file reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A temporary file renamed over the target.
    Atomic,
    /// The existing file truncated and rewritten, because its directory
    /// does not let the helper create files.
    InPlace,
}

/// What a committed batch changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Files whose bytes or mode changed, in write order, and how.
    pub written: Vec<(PathBuf, Method)>,
    /// Files left alone because they already held exactly these bytes with
    /// this mode.
    pub unchanged: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
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
                format!(
                    "permission denied for the helper's uid {} ({source})",
                    nix::unistd::geteuid()
                )
            }
            _ => source.to_string(),
        };
        Self::with_reason(path, reason, source)
    }

    fn with_reason(path: &Path, reason: String, source: io::Error) -> Self {
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
        Self::with_reason(
            Path::new(""),
            reason.to_owned(),
            io::Error::other(reason.to_owned()),
        )
    }
}

// === impl Root ===

/// `cert_dir`, opened once: the handle every file operation below it goes
/// through. A `cert_dir` that does not exist yet is opened at the first
/// batch that finds it.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    opened: Mutex<Option<Handle>>,
}

/// The open `cert_dir` and what its file system is.
#[derive(Debug, Clone)]
struct Handle {
    fd: Arc<OwnedFd>,
    /// Whether `cert_dir` is on a file system that keeps files in memory
    /// only (tmpfs: a Kubernetes `emptyDir` with `medium: Memory`), where
    /// an fsync has nothing to write: see [`sync_all`]. A disk mounted on
    /// a directory below it is then synced in turn too: every file is
    /// still synced, only not side by side.
    in_memory: bool,
}

impl Root {
    /// `cert_dir` as configured (empty: the working directory).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            opened: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle, opening `cert_dir` the first time, and again only when
    /// the path has come to name another directory (replaced or moved
    /// away and back): a helper never writes into a directory that is no
    /// longer `cert_dir`. `cert_dir` itself may be a link (the operator
    /// chose it); nothing below it is followed.
    fn handle(&self) -> io::Result<Handle> {
        let path: &Path = if self.path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.path
        };
        let now = nix::sys::stat::stat(path)?;
        let mut opened = self
            .opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(h) = &*opened {
            if fstat(&*h.fd).is_ok_and(|st| (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)) {
                return Ok(h.clone());
            }
        }
        let fd = Arc::new(nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?);
        let in_memory = fstatfs(&*fd).is_ok_and(|fs| fs.filesystem_type() == TMPFS_MAGIC);
        let h = Handle { fd, in_memory };
        *opened = Some(h.clone());
        Ok(h)
    }

    /// The elements of `path` below `cert_dir`: only plain names, so
    /// nothing can climb out.
    fn below<'a>(&self, path: &'a Path) -> io::Result<Vec<&'a OsStr>> {
        let rel = path.strip_prefix(&self.path).map_err(|_| outside(path))?;
        let mut names = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => names.push(n),
                Component::CurDir => {}
                _ => return Err(outside(path)),
            }
        }
        Ok(names)
    }
}

fn outside(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not below cert_dir", path.display()),
    )
}

/// The directories of one batch, each opened once through the root
/// handle, without following a link.
struct Dirs<'r> {
    root: &'r Root,
    handle: Handle,
    open: Vec<(PathBuf, Arc<OwnedFd>)>,
}

/// Where a file goes: its directory's handle and its name there.
struct Place {
    dir: Arc<OwnedFd>,
    name: OsString,
}

impl<'r> Dirs<'r> {
    fn new(root: &'r Root) -> io::Result<Self> {
        Ok(Self {
            root,
            handle: root.handle()?,
            open: Vec::new(),
        })
    }

    /// The directory `path` (below `cert_dir`); `create` makes a missing
    /// last element with mode 0755 (set on the descriptor, whatever the
    /// umask).
    fn dir(&mut self, path: &Path, create: bool) -> io::Result<Arc<OwnedFd>> {
        if let Some((_, fd)) = self.open.iter().find(|(p, _)| p == path) {
            return Ok(Arc::clone(fd));
        }
        let names = self.root.below(path)?;
        let mut cur = Arc::clone(&self.handle.fd);
        let last = names.len().saturating_sub(1);
        for (i, name) in names.iter().enumerate() {
            let next = match open_dir_at(&cur, name) {
                Err(Errno::ENOENT) if create && i == last => {
                    match mkdirat(&*cur, *name, Mode::from_bits_truncate(0o700)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    let fd = open_dir_at(&cur, name).map_err(|e| link_error(e, path))?;
                    fchmod(&fd, Mode::from_bits_truncate(0o755))?;
                    fd
                }
                r => r.map_err(|e| link_error(e, path))?,
            };
            cur = Arc::new(next);
        }
        self.open.push((path.to_path_buf(), Arc::clone(&cur)));
        Ok(cur)
    }

    /// The directory handle and name for a file path below `cert_dir`.
    fn place(&mut self, path: &Path) -> io::Result<Place> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
        let dir = self.dir(parent_dir_below(path), false)?;
        Ok(Place {
            dir,
            name: name.to_owned(),
        })
    }
}

/// The directory part of a path below `cert_dir` (empty for `cert_dir`).
fn parent_dir_below(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// `O_NOFOLLOW` on a link fails with ELOOP (ENOTDIR with `O_DIRECTORY` on
/// some kernels): say it in words.
fn link_error(e: Errno, path: &Path) -> io::Error {
    match e {
        Errno::ELOOP | Errno::ENOTDIR => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a symbolic link or not a directory (links below cert_dir are never followed)",
                path.display()
            ),
        ),
        e => e.into(),
    }
}

fn stat_at(place: &Place) -> nix::Result<FileStat> {
    fstatat(
        &*place.dir,
        place.name.as_os_str(),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

/// Opens an existing regular file below a directory handle without
/// following a link and without blocking on a FIFO or a device.
fn open_regular(place: &Place, flags: OFlag) -> io::Result<File> {
    open_regular_stat(place, flags).map(|(file, _)| file)
}

/// [`open_regular`], with the file's status as it was checked.
fn open_regular_stat(place: &Place, flags: OFlag) -> io::Result<(File, FileStat)> {
    let fd = openat(
        &*place.dir,
        place.name.as_os_str(),
        flags | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = fstat(&fd)?;
    if !is_kind(&st, SFlag::S_IFREG) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((File::from(fd), st))
}

// === commit ===

/// In a batch of more files than this, all but the last this many are
/// closed as soon as they are synced instead of after their rename, so a
/// large federation written to `trust_bundles_dir` cannot run the process
/// out of descriptors. The X.509 files come last in their batch, so they
/// always keep the close-after-rename order.
const OPEN_AFTER_RENAME: usize = 16;

/// Commits a batch whole or not at all (see the module docs). With
/// `skip_unchanged`, a file that already holds exactly these bytes with this
/// mode is left alone (its inode and times do not change).
pub fn commit(root: &Root, batch: &Batch, skip_unchanged: bool) -> Result<Committed, WriteError> {
    let Plan {
        todo,
        removals,
        mut done,
        in_memory,
    } = plan(root, batch, skip_unchanged)?;
    if todo.is_empty() && removals.is_empty() {
        return Ok(done);
    }
    // 1. Stage and sync. On error the staged files are dropped, which
    // removes them: nothing else has changed yet.
    let mut staged = stage_all(todo, !in_memory)?;
    // 2. Backups of everything about to be replaced or removed.
    let mut tx = Transaction::default();
    for s in staged.iter().filter(|s| s.is_atomic()) {
        tx.back_up(&s.place, &s.target)?;
    }
    for r in &removals {
        tx.back_up(&r.place, &r.target)?;
    }
    // 3. Renames (or in-place writes) in order, then removals.
    if let Err(err) = apply(&mut tx, &mut staged, &removals) {
        return Err(tx.roll_back(err, &mut staged, &removals));
    }
    // 4. One fsync per directory makes the renames durable.
    sync_dirs(&mut tx, &mut staged, &removals)?;
    tx.finish();
    done.written = staged
        .iter()
        .map(|s| (s.target.clone(), s.method()))
        .collect();
    done.removed = removals.into_iter().map(|r| r.target).collect();
    Ok(done)
}

/// What a batch changes: the files to write (each opened where it goes),
/// the stale files to remove, and the files already as they should be.
struct Plan<'b> {
    todo: Vec<(&'b FileWrite, Place)>,
    removals: Vec<Removal>,
    done: Committed,
    /// `cert_dir` is on tmpfs (see [`Handle`]).
    in_memory: bool,
}

fn plan<'b>(root: &Root, batch: &'b Batch, skip_unchanged: bool) -> Result<Plan<'b>, WriteError> {
    let first_path = batch
        .writes
        .first()
        .map_or_else(|| root.path().to_path_buf(), |w| w.path.clone());
    let mut dirs = Dirs::new(root).map_err(|e| WriteError::new(&first_path, e))?;
    let mut done = Committed::default();
    let mut todo = Vec::with_capacity(batch.writes.len());
    let own = match &batch.own_dir {
        Some(o) => Some((
            o,
            dirs.dir(&o.path, true)
                .map_err(|e| WriteError::new(&o.path.join("."), e))?,
        )),
        None => None,
    };
    for w in &batch.writes {
        let place = dirs
            .place(&w.path)
            .map_err(|e| WriteError::new(&w.path, e))?;
        if skip_unchanged && holds(&place, w.bytes.expose(), w.mode) {
            done.unchanged.push(w.path.clone());
        } else {
            todo.push((w, place));
        }
    }
    let removals = match own {
        Some((o, fd)) => stale(o, &fd, batch).map_err(|e| WriteError::new(&o.path.join("."), e))?,
        None => Vec::new(),
    };
    Ok(Plan {
        todo,
        removals,
        done,
        in_memory: dirs.handle.in_memory,
    })
}

/// Stages every file of the batch and syncs them.
fn stage_all(
    todo: Vec<(&FileWrite, Place)>,
    side_by_side: bool,
) -> Result<Vec<Staged>, WriteError> {
    let mut staged: Vec<Staged> = Vec::with_capacity(todo.len());
    let close_early = todo.len().saturating_sub(OPEN_AFTER_RENAME);
    for (i, (w, place)) in todo.into_iter().enumerate() {
        refuse_directory(&place, &w.path)?;
        let mut s = stage(w, place)?;
        if i < close_early {
            s.sync_and_close()?;
        }
        staged.push(s);
    }
    sync_all(&staged, side_by_side)?;
    Ok(staged)
}

/// Puts every staged file in place, then removes the stale ones; each
/// change is recorded in `tx` for a roll-back.
fn apply(
    tx: &mut Transaction,
    staged: &mut [Staged],
    removals: &[Removal],
) -> Result<(), WriteError> {
    for s in staged.iter_mut() {
        s.put_in_place()
            .map_err(|e| WriteError::new(&s.target, e))?;
        tx.changed.push(Change::Staged(tx.changed.len()));
    }
    for (i, r) in removals.iter().enumerate() {
        unlinkat(
            &*r.place.dir,
            r.place.name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        )
        .map_err(|e| WriteError::new(&r.target, e.into()))?;
        tx.changed.push(Change::Removed(i));
    }
    Ok(())
}

/// Syncs each directory a rename or removal changed, once; on failure the
/// batch is rolled back (and the directories synced again).
fn sync_dirs(
    tx: &mut Transaction,
    staged: &mut [Staged],
    removals: &[Removal],
) -> Result<(), WriteError> {
    let mut dirs_changed: Vec<(Arc<OwnedFd>, PathBuf)> = Vec::with_capacity(1);
    let changed = staged
        .iter()
        .filter(|s| s.is_atomic())
        .map(|s| (&s.place.dir, &s.target))
        .chain(removals.iter().map(|r| (&r.place.dir, &r.target)));
    for (dir, target) in changed {
        if !dirs_changed.iter().any(|(d, _)| Arc::ptr_eq(d, dir)) {
            dirs_changed.push((Arc::clone(dir), parent_dir(target).join(".")));
        }
    }
    for (dir, shown) in &dirs_changed {
        if let Err(e) = nix::unistd::fsync(&**dir) {
            let err = WriteError::new(shown, e.into());
            let err = tx.roll_back(err, staged, removals);
            for (d, _) in &dirs_changed {
                let _ = nix::unistd::fsync(&**d);
            }
            return Err(err);
        }
    }
    Ok(())
}

/// A file to remove, in a directory of the helper's own.
struct Removal {
    place: Place,
    target: PathBuf,
}

/// The managed regular files in `own` that the batch does not write.
fn stale(own: &OwnDir, fd: &Arc<OwnedFd>, batch: &Batch) -> io::Result<Vec<Removal>> {
    let mut listing = nix::dir::Dir::openat(
        &**fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for entry in listing.iter() {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if !(own.managed)(name) {
            continue;
        }
        let target = own.path.join(name);
        if batch.writes.iter().any(|w| w.path == target) {
            continue;
        }
        let place = Place {
            dir: Arc::clone(fd),
            name: OsString::from(name),
        };
        if stat_at(&place).is_ok_and(|st| is_kind(&st, SFlag::S_IFREG)) {
            out.push(Removal { place, target });
        }
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}

/// Whether the file at `place` is a regular file (not a link) holding
/// exactly `bytes` with permission bits `mode`.
fn holds(place: &Place, bytes: &[u8], mode: u32) -> bool {
    let Ok((mut f, st)) = open_regular_stat(place, OFlag::O_RDONLY) else {
        return false;
    };
    if st.st_mode & 0o7777 != mode || u64::try_from(st.st_size).ok() != Some(bytes.len() as u64) {
        return false;
    }
    // One byte more than expected tells a file that grew meanwhile; a
    // regular file of the expected size is read in one call.
    let mut buf = vec![0; bytes.len() + 1];
    let mut got = 0;
    let read = loop {
        match f.read(&mut buf[got..]) {
            Ok(0) => break true,
            Ok(n) => {
                got += n;
                if got >= bytes.len() {
                    break true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    // Slices of different lengths are never equal.
    let same = read && buf[..got] == *bytes;
    zeroize::Zeroize::zeroize(&mut buf);
    same
}

/// A directory where a file should go cannot be replaced by a rename: say
/// so before anything has changed.
fn refuse_directory(place: &Place, path: &Path) -> Result<(), WriteError> {
    match stat_at(place) {
        Ok(st) if is_kind(&st, SFlag::S_IFDIR) => Err(WriteError::new(
            path,
            io::Error::new(
                io::ErrorKind::IsADirectory,
                "a directory is in the way of the file",
            ),
        )),
        _ => Ok(()),
    }
}

/// One step of a batch, for undoing it: a staged file put in place, or a
/// removal (indices into their lists).
enum Change {
    Staged(usize),
    Removed(usize),
}

/// Backups and the changes made so far, for undoing a batch.
#[derive(Default)]
struct Transaction {
    /// (directory, target name, backup name) for every target that
    /// existed before an atomic replacement or a removal.
    backups: Vec<(Arc<OwnedFd>, OsString, OsString)>,
    changed: Vec<Change>,
}

impl Transaction {
    fn back_up(&mut self, place: &Place, target: &Path) -> Result<(), WriteError> {
        if stat_at(place).is_err() {
            return Ok(());
        }
        match make_backup(place) {
            Ok(b) => {
                self.backups
                    .push((Arc::clone(&place.dir), place.name.clone(), b));
                Ok(())
            }
            Err(e) => {
                self.discard_backups();
                Err(WriteError::new(target, e))
            }
        }
    }

    /// Undoes every change, newest first, and says what is on disk now.
    fn roll_back(
        &mut self,
        err: WriteError,
        staged: &mut [Staged],
        removals: &[Removal],
    ) -> WriteError {
        let mut restored = Vec::new();
        let mut stuck = Vec::new();
        for change in std::mem::take(&mut self.changed).iter().rev() {
            let (r, target) = match *change {
                Change::Staged(i) => {
                    let s = &mut staged[i];
                    let r = if s.is_atomic() {
                        self.put_back(&s.place)
                    } else {
                        s.restore_in_place()
                    };
                    (r, &s.target)
                }
                Change::Removed(i) => (self.put_back(&removals[i].place), &removals[i].target),
            };
            match r {
                Ok(()) => restored.push(name_of(target)),
                Err(e) => stuck.push(format!("{} holds the new content ({e})", name_of(target))),
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
                    "nothing".to_owned()
                } else {
                    restored.join(", ")
                }
            )
        };
        err.with_on_disk(on_disk)
    }

    /// Puts a target's backup back, or removes a target that did not exist.
    fn put_back(&mut self, place: &Place) -> io::Result<()> {
        let backup = self
            .backups
            .iter()
            .position(|(d, n, _)| Arc::ptr_eq(d, &place.dir) && *n == place.name)
            .map(|i| self.backups.remove(i).2);
        let dir = &*place.dir;
        let name = place.name.as_os_str();
        let r = match &backup {
            Some(b) => renameat(dir, b.as_os_str(), dir, name),
            None => unlinkat(dir, name, UnlinkatFlags::NoRemoveDir),
        };
        if r.is_err() {
            if let Some(b) = &backup {
                let _ = unlinkat(dir, b.as_os_str(), UnlinkatFlags::NoRemoveDir);
            }
        }
        r.map_err(io::Error::from)
    }

    fn finish(mut self) {
        self.discard_backups();
    }

    fn discard_backups(&mut self) {
        for (dir, _, b) in self.backups.drain(..) {
            let _ = unlinkat(&*dir, b.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

fn name_of(p: &Path) -> String {
    p.display().to_string()
}

/// A second name for the target's current inode (a copy where the
/// filesystem refuses hard links), next to it.
fn make_backup(place: &Place) -> io::Result<OsString> {
    with_unique_name(place, "bak", |backup| {
        // linkat without AT_SYMLINK_FOLLOW links a symbolic link itself.
        match linkat(
            &*place.dir,
            place.name.as_os_str(),
            &*place.dir,
            backup,
            AtFlags::empty(),
        ) {
            Ok(()) => Ok(()),
            Err(Errno::EPERM | Errno::EOPNOTSUPP | Errno::EXDEV | Errno::EMLINK) => {
                // Immutable files also refuse links (EPERM); the copy then
                // succeeds but the later rename fails and is rolled back.
                copy_with_mode(place, backup)
            }
            Err(e) => Err(e.into()),
        }
    })
    .map(|(backup, ())| backup)
}

fn copy_with_mode(place: &Place, to: &OsStr) -> io::Result<()> {
    let mut src = open_regular(place, OFlag::O_RDONLY)?;
    let mode = std::os::unix::fs::MetadataExt::mode(&src.metadata()?) & 0o7777;
    let mut dst = create_exclusive(&place.dir, to)?;
    fchmod(&dst, Mode::from_bits_truncate(mode))?;
    let r = io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all());
    if r.is_err() {
        let _ = unlinkat(&*place.dir, to, UnlinkatFlags::NoRemoveDir);
    }
    r
}

fn create_exclusive(dir: &OwnedFd, name: &OsStr) -> io::Result<File> {
    let fd = openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    Ok(File::from(fd))
}

/// A file written in full, waiting to be synced and put in place.
struct Staged {
    place: Place,
    target: PathBuf,
    how: Staging,
}

enum Staging {
    /// A temporary file, renamed over the target.
    Atomic {
        temp: OsString,
        /// `None` once closed (after its rename, or early in a large batch).
        file: Option<Arc<File>>,
        synced: bool,
        renamed: bool,
    },
    /// The existing file, rewritten in place at step 3.
    InPlace {
        file: File,
        bytes: Vec<u8>,
        /// The previous content, to put back if the batch fails; `None`
        /// when it was too large to keep.
        old: Option<Vec<u8>>,
        written: bool,
    },
}

/// The most of a file's previous content kept to undo an in-place write.
const MAX_IN_PLACE_UNDO: u64 = 4 << 20;

impl Staged {
    fn is_atomic(&self) -> bool {
        matches!(self.how, Staging::Atomic { .. })
    }

    fn method(&self) -> Method {
        match self.how {
            Staging::Atomic { .. } => Method::Atomic,
            Staging::InPlace { .. } => Method::InPlace,
        }
    }

    fn sync_and_close(&mut self) -> Result<(), WriteError> {
        if let Staging::Atomic { file, synced, .. } = &mut self.how {
            if let Some(f) = file.take() {
                f.sync_all().map_err(|e| WriteError::new(&self.target, e))?;
            }
            *synced = true;
        }
        Ok(())
    }

    fn pending_sync(&self) -> Option<Arc<File>> {
        match &self.how {
            Staging::Atomic {
                file: Some(f),
                synced: false,
                ..
            } => Some(Arc::clone(f)),
            _ => None,
        }
    }

    /// Step 3: the rename, or the in-place rewrite.
    fn put_in_place(&mut self) -> io::Result<()> {
        match &mut self.how {
            Staging::Atomic {
                temp,
                file,
                renamed,
                ..
            } => {
                renameat(
                    &*self.place.dir,
                    temp.as_os_str(),
                    &*self.place.dir,
                    self.place.name.as_os_str(),
                )?;
                *renamed = true;
                // Closed after the rename: a program watching the target
                // names for close_write (written for in-place writers)
                // sees one event.
                *file = None;
                Ok(())
            }
            Staging::InPlace {
                file,
                bytes,
                written,
                ..
            } => {
                *written = true;
                rewrite(file, bytes)
            }
        }
    }

    fn restore_in_place(&mut self) -> io::Result<()> {
        match &mut self.how {
            Staging::InPlace {
                file,
                old: Some(old),
                written: true,
                ..
            } => rewrite(file, old),
            Staging::InPlace { written: false, .. } => Ok(()),
            _ => Err(io::Error::other(
                "its previous content was too large to keep",
            )),
        }
    }
}

/// Truncates `file` and writes `bytes` from the start, then fsyncs.
fn rewrite(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(bytes)?;
    file.sync_all()
}

impl Drop for Staged {
    fn drop(&mut self) {
        match &mut self.how {
            Staging::Atomic {
                temp,
                renamed: false,
                ..
            } => {
                let _ = unlinkat(
                    &*self.place.dir,
                    temp.as_os_str(),
                    UnlinkatFlags::NoRemoveDir,
                );
            }
            Staging::InPlace { bytes, old, .. } => {
                zeroize::Zeroize::zeroize(bytes);
                if let Some(old) = old {
                    zeroize::Zeroize::zeroize(old);
                }
            }
            Staging::Atomic { .. } => {}
        }
    }
}

fn stage(w: &FileWrite, place: Place) -> Result<Staged, WriteError> {
    let err = |e| WriteError::new(&w.path, e);
    let (temp, mut handle) = match with_unique_name(&place, "tmp", |n| {
        create_exclusive(&place.dir, n)
    }) {
        Ok(created) => created,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return stage_in_place(w, place),
        Err(e) => return Err(err(e)),
    };
    let mut staged = Staged {
        place,
        target: w.path.clone(),
        how: Staging::Atomic {
            temp,
            file: None,
            synced: false,
            renamed: false,
        },
    };
    // The exact mode, independent of the umask, before any content exists.
    fchmod(&handle, Mode::from_bits_truncate(w.mode)).map_err(|e| err(e.into()))?;
    handle.write_all(w.bytes.expose()).map_err(err)?;
    if let Staging::Atomic { file, .. } = &mut staged.how {
        *file = Some(Arc::new(handle));
    }
    Ok(staged)
}

/// The directory refuses new files: rewrite the existing target in place,
/// if there is one the helper may write. Its mode is set to the configured
/// one where the helper owns it; otherwise it must not be readable beyond
/// that mode already.
fn stage_in_place(w: &FileWrite, place: Place) -> Result<Staged, WriteError> {
    let dir_text = display_dir(parent_dir(&w.path));
    let uid = nix::unistd::geteuid();
    let dir_facts = owner_and_mode(&place.dir);
    let denied = |what: &str| {
        WriteError::with_reason(
            &w.path,
            format!(
                "the helper (uid {uid}) cannot create files in directory {dir_text}{dir_facts}, and {what}; make the directory writable by uid {uid}, or create the file there and give it to uid {uid}"
            ),
            io::Error::from(io::ErrorKind::PermissionDenied),
        )
    };
    let mut file = match open_regular(&place, OFlag::O_RDWR) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => {
            return Err(denied("the file does not exist yet"))
        }
        Err(e) => {
            return Err(denied(&format!(
                "the existing file cannot be rewritten in place ({e})"
            )))
        }
    };
    let meta = file.metadata().map_err(|e| WriteError::new(&w.path, e))?;
    let current = std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777;
    if std::os::unix::fs::MetadataExt::uid(&meta) == uid.as_raw() {
        fchmod(&file, Mode::from_bits_truncate(w.mode))
            .map_err(|e| WriteError::new(&w.path, e.into()))?;
    } else if current & 0o077 & !w.mode != 0 {
        return Err(denied(&format!(
            "the existing file (owner uid {}, mode {current:04o}) would be readable beyond mode {:04o}",
            std::os::unix::fs::MetadataExt::uid(&meta),
            w.mode
        )));
    }
    let old = if meta.len() <= MAX_IN_PLACE_UNDO {
        let mut old = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.read_to_end(&mut old)
            .map_err(|e| WriteError::new(&w.path, e))?;
        Some(old)
    } else {
        None
    };
    Ok(Staged {
        place,
        target: w.path.clone(),
        how: Staging::InPlace {
            file,
            bytes: w.bytes.expose().to_vec(),
            old,
            written: false,
        },
    })
}

/// Makes every staged file durable. The fsyncs run side by side (the
/// filesystem folds them into one journal commit, so a batch costs about
/// one fsync instead of one per file) on a pool of long-lived threads: no
/// thread is created per batch. Without `side_by_side` (tmpfs, where an
/// fsync returns at once) they run one after the other on this thread,
/// which spares a rotation two thread wake-ups.
fn sync_all(staged: &[Staged], side_by_side: bool) -> Result<(), WriteError> {
    let pending: Vec<(&Staged, Arc<File>)> = staged
        .iter()
        .filter_map(|s| s.pending_sync().map(|f| (s, f)))
        .collect();
    let Some(((first, first_file), rest)) = pending.split_first() else {
        return Ok(());
    };
    let waits: Vec<_> = rest
        .iter()
        .map(|(s, f)| {
            let wait = side_by_side.then(|| pool().submit(Arc::clone(f))).flatten();
            (*s, Arc::clone(f), wait)
        })
        .collect();
    let mut result = first_file
        .sync_all()
        .map_err(|e| WriteError::new(&first.target, e));
    for (s, f, wait) in waits {
        let r = match wait {
            Some(rx) => rx.recv().unwrap_or_else(|_| f.sync_all()),
            None => f.sync_all(),
        };
        result = result.and(r.map_err(|e| WriteError::new(&s.target, e)));
    }
    result
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

// === temporary names and leftovers ===

/// The length of every temporary and backup name:
/// `.` + 8 + `-` + 8 + `-` + 8 + `.tmp`.
const TEMP_NAME_LEN: usize = 31;

/// FNV-1a of a target's name: the part of a temporary name that says which
/// target it was made for, the same in every run.
fn name_hash(name: &[u8]) -> u32 {
    name.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// How many taken names [`with_unique_name`] steps over before it gives
/// up: the counter makes a clash rare, so only a directory filled on
/// purpose gets this far.
const NAME_ATTEMPTS: u32 = 64;

/// Creates something under a new name next to the target, in the helper's
/// own pattern: `create` is exclusive (`O_EXCL`, `linkat`) and fails with
/// `AlreadyExists` when the name is taken, so no separate probe is needed
/// and no other process can take the name in between.
fn with_unique_name<T>(
    place: &Place,
    suffix: &str,
    mut create: impl FnMut(&OsStr) -> io::Result<T>,
) -> io::Result<(OsString, T)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let pid = crate::own_pid();
    let hash = name_hash(place.name.as_bytes());
    let mut attempts = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = OsString::from(format!(".{hash:08x}-{pid:08x}-{n:08x}.{suffix}"));
        match create(&name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < NAME_ATTEMPTS => {
                attempts += 1;
            }
            r => return r.map(|t| (name, t)),
        }
    }
}

/// The target-name hash of a name in the helper's temporary pattern.
fn leftover_hash(name: &[u8]) -> Option<u32> {
    if name.len() != TEMP_NAME_LEN || name[0] != b'.' || name[9] != b'-' || name[18] != b'-' {
        return None;
    }
    if !(name.ends_with(b".tmp") || name.ends_with(b".bak")) {
        return None;
    }
    let hex = |r: std::ops::Range<usize>| {
        std::str::from_utf8(&name[r])
            .ok()
            .filter(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            })
            .and_then(|s| u32::from_str_radix(s, 16).ok())
    };
    hex(19..27)?;
    hex(10..18)?;
    hex(1..9)
}

/// Whether `name` is one of the helper's temporary or backup names for a
/// file called `base`.
#[cfg(test)]
fn is_leftover_of(name: &OsStr, base: &OsStr) -> bool {
    leftover_hash(name.as_bytes()) == Some(name_hash(base.as_bytes()))
}

/// Removes the temporary and backup files that an earlier run left (after
/// a SIGKILL or a power loss): next to `targets`, those made for one of
/// their names; in `own_dir`, every one. Nothing else is touched, and no
/// link is followed. Returns what was removed.
pub fn remove_leftovers(root: &Root, targets: &[PathBuf], own_dir: Option<&Path>) -> Vec<PathBuf> {
    let Ok(mut dirs) = Dirs::new(root) else {
        return Vec::new();
    };
    // (directory, the hashes of the names written there; None: all)
    let mut wanted: Vec<(&Path, Option<Vec<u32>>)> = Vec::new();
    for t in targets {
        let Some(base) = t.file_name() else { continue };
        let d = parent_dir_below(t);
        let h = name_hash(base.as_bytes());
        match wanted.iter_mut().find(|(dir, _)| *dir == d) {
            Some((_, Some(hs))) => hs.push(h),
            Some((_, None)) => {}
            None => wanted.push((d, Some(vec![h]))),
        }
    }
    if let Some(own) = own_dir {
        wanted.retain(|(d, _)| *d != own);
        wanted.push((own, None));
    }
    let mut removed = Vec::new();
    for (dir, hashes) in wanted {
        let Ok(fd) = dirs.dir(dir, false) else {
            continue;
        };
        let Ok(mut listing) = nix::dir::Dir::openat(
            &*fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let names: Vec<OsString> = listing
            .iter()
            .flatten()
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
            .filter(|n| {
                leftover_hash(n.as_bytes())
                    .is_some_and(|h| hashes.as_ref().is_none_or(|hs| hs.contains(&h)))
            })
            .collect();
        for name in names {
            let place = Place {
                dir: Arc::clone(&fd),
                name,
            };
            if stat_at(&place).is_ok_and(|st| is_kind(&st, SFlag::S_IFREG))
                && unlinkat(&*fd, place.name.as_os_str(), UnlinkatFlags::NoRemoveDir).is_ok()
            {
                removed.push(dir.join(&place.name));
            }
        }
    }
    removed
}

/// The directories holding `targets` that the helper cannot create files
/// in, with why, for the start-up warning: files there are rewritten in
/// place. Nothing is created or changed.
pub fn unwritable_dirs(root: &Root, targets: &[PathBuf]) -> Vec<String> {
    use nix::unistd::AccessFlags;
    let Ok(mut dirs) = Dirs::new(root) else {
        return Vec::new();
    };
    let mut seen: Vec<&Path> = Vec::new();
    let mut out = Vec::new();
    for t in targets {
        let d = parent_dir_below(t);
        if seen.contains(&d) {
            continue;
        }
        seen.push(d);
        let Ok(fd) = dirs.dir(d, false) else { continue };
        let writable = nix::unistd::faccessat(
            &*fd,
            ".",
            AccessFlags::W_OK | AccessFlags::X_OK,
            AtFlags::AT_EACCESS,
        );
        if writable == Err(Errno::EACCES) || writable == Err(Errno::EROFS) {
            let facts = owner_and_mode(&fd);
            out.push(format!(
                "directory {}{facts} does not let the helper (uid {}) create files: its existing files are rewritten in place (truncated and written), so a reader may see a partly written file and a failed write cannot always be undone; new files there cannot be created",
                display_dir(if d.as_os_str().is_empty() { root.path() } else { d }),
                nix::unistd::geteuid()
            ));
        }
    }
    out
}

/// ` (owner uid N, mode 0755)` of a directory, for messages; empty when it
/// cannot be read.
fn owner_and_mode(dir: &OwnedFd) -> String {
    fstat(dir).map_or_else(
        |_| String::new(),
        |st| {
            format!(
                " (owner uid {}, mode {:04o})",
                st.st_uid,
                st.st_mode & 0o7777
            )
        },
    )
}

/// The directory holding `path`; `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn display_dir(dir: &Path) -> String {
    if dir.as_os_str().as_bytes() == b"." || dir.as_os_str().is_empty() {
        "(the working directory)".to_owned()
    } else {
        dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
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
            own_dir: None,
        }
    }

    fn write_one(root: &Root, path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
        commit(root, &batch(&[(path, bytes, mode)]), false).map(drop)
    }

    fn pem_names(n: &str) -> bool {
        n.ends_with(".pem")
    }

    fn place_in(dir: &Path, name: &str) -> Place {
        Place {
            dir: Arc::new(OwnedFd::from(File::open(dir).unwrap())),
            name: name.into(),
        }
    }

    #[test]
    fn a_temporary_name_taken_in_the_meantime_is_stepped_over() {
        let dir = tempfile::tempdir().unwrap();
        let place = place_in(dir.path(), "svid.pem");
        let mut tried = Vec::new();
        let (name, _file) = with_unique_name(&place, "tmp", |n| {
            tried.push(n.to_owned());
            if tried.len() < 3 {
                // Another process creates the name first.
                std::fs::write(dir.path().join(n), b"not ours").unwrap();
            }
            create_exclusive(&place.dir, n)
        })
        .unwrap();
        assert_eq!(tried.len(), 3);
        assert_eq!(name, tried[2]);
        for planted in &tried[..2] {
            assert_ne!(planted, &name);
            assert_eq!(
                std::fs::read(dir.path().join(planted)).unwrap(),
                b"not ours"
            );
            assert!(is_leftover_of(planted, OsStr::new("svid.pem")));
        }
        assert_eq!(std::fs::read(dir.path().join(&name)).unwrap(), b"");
    }

    #[test]
    fn holds_only_the_exact_bytes_and_mode_of_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("svid.pem");
        let place = place_in(dir.path(), "svid.pem");
        assert!(!holds(&place, b"cert", 0o644), "missing");
        std::fs::write(&p, b"cert").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(holds(&place, b"cert", 0o644));
        assert!(!holds(&place, b"CERT", 0o644), "same size, other bytes");
        assert!(!holds(&place, b"cert!", 0o644), "longer");
        assert!(!holds(&place, b"cer", 0o644), "shorter");
        assert!(!holds(&place, b"cert", 0o600), "other mode");
        std::fs::write(&p, b"").unwrap();
        assert!(holds(&place, b"", 0o644), "empty");
        std::fs::remove_file(&p).unwrap();
        std::fs::write(dir.path().join("real.pem"), b"cert").unwrap();
        std::os::unix::fs::symlink("real.pem", &p).unwrap();
        assert!(
            !holds(&place, b"cert", 0o644),
            "a link is never read through"
        );
    }

    #[test]
    fn a_directory_of_taken_names_is_an_error_not_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let place = place_in(dir.path(), "svid.pem");
        // A taken name is stepped over a bounded number of times; any other
        // error ends the search at once.
        for (suffix, kind, tries) in [
            ("bak", io::ErrorKind::AlreadyExists, NAME_ATTEMPTS + 1),
            ("tmp", io::ErrorKind::PermissionDenied, 1),
        ] {
            let mut calls = 0;
            let e = with_unique_name(&place, suffix, |_| -> io::Result<()> {
                calls += 1;
                Err(kind.into())
            })
            .unwrap_err();
            assert_eq!(e.kind(), kind);
            assert_eq!(calls, tries);
        }
    }

    #[test]
    fn replaces_a_wider_existing_file_instead_of_reusing_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let p = dir.path().join("key.pem");
        std::fs::write(&p, b"old key").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let old_ino = std::fs::metadata(&p).unwrap().ino();
        write_one(&root, &p, b"new key", 0o600).unwrap();
        assert_eq!(mode_of(&p), 0o600);
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), old_ino);
        assert_eq!(std::fs::read(&p).unwrap(), b"new key");
        assert_eq!(names(dir.path()), ["key.pem"]);
    }

    #[test]
    fn missing_directory_names_it_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path().join("nope"));
        let p = dir.path().join("nope").join("svid.pem");
        let e = write_one(&root, &p, b"x", 0o644).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("svid.pem"), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
        // Created later, it is opened then (and kept).
        std::fs::create_dir(dir.path().join("nope")).unwrap();
        write_one(&root, &p, b"x", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
    }

    #[test]
    fn a_failure_while_staging_keeps_previous_files_and_removes_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let a = dir.path().join("a.pem");
        std::fs::write(&a, b"old a").unwrap();
        let missing = dir.path().join("missing").join("b.pem");
        let err = commit(
            &root,
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
        let root = Root::new(dir.path());
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"old a").unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("inside"), b"x").unwrap();
        let err = commit(
            &root,
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
        // The second target's rename fails (a non-empty directory planted
        // after the checks); the first goes back to its old content.
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"old a").unwrap();
        let mut dirs = Dirs::new(&root).unwrap();
        let mut staged = vec![
            stage(
                &FileWrite::new(a.clone(), b"new a".to_vec(), 0o644),
                dirs.place(&a).unwrap(),
            )
            .unwrap(),
            stage(
                &FileWrite::new(b.clone(), b"new b".to_vec(), 0o644),
                dirs.place(&b).unwrap(),
            )
            .unwrap(),
        ];
        let mut tx = Transaction::default();
        for s in &staged {
            tx.back_up(&s.place, &s.target).unwrap();
        }
        staged[0].put_in_place().unwrap();
        tx.changed.push(Change::Staged(0));
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("x"), b"x").unwrap();
        let e = staged[1].put_in_place().unwrap_err();
        let err = tx.roll_back(WriteError::new(&b, e), &mut staged, &[]);
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert!(err.on_disk.contains("rolled back"), "{}", err.on_disk);
        drop(staged);
        assert_eq!(names(dir.path()), ["a", "b"]);
    }

    #[test]
    fn unchanged_files_are_skipped_and_keep_their_inode() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let first = commit(&root, &batch(&[(&a, b"A", 0o644), (&b, b"B", 0o600)]), true).unwrap();
        assert_eq!(
            first.written,
            [(a.clone(), Method::Atomic), (b.clone(), Method::Atomic)]
        );
        let (ia, ib) = (
            std::fs::metadata(&a).unwrap().ino(),
            std::fs::metadata(&b).unwrap().ino(),
        );
        let again = commit(
            &root,
            &batch(&[(&a, b"A", 0o644), (&b, b"B2", 0o600)]),
            true,
        )
        .unwrap();
        assert_eq!(again.unchanged, std::slice::from_ref(&a));
        assert_eq!(again.written, [(b.clone(), Method::Atomic)]);
        assert_eq!(std::fs::metadata(&a).unwrap().ino(), ia);
        assert_ne!(std::fs::metadata(&b).unwrap().ino(), ib);
        // A different mode is a change.
        let mode = commit(&root, &batch(&[(&a, b"A", 0o640)]), true).unwrap();
        assert_eq!(mode.written, [(a.clone(), Method::Atomic)]);
        assert_eq!(mode_of(&a), 0o640);
        let none = commit(&root, &batch(&[(&a, b"A", 0o640)]), true).unwrap();
        assert!(none.written.is_empty() && none.removed.is_empty());
    }

    #[test]
    fn files_in_memory_are_synced_in_turn_and_written_whole() {
        // /dev/shm is tmpfs wherever Linux runs (the sequential syncs);
        // the default temporary directory is usually a disk (the pool).
        let on_tmpfs = |p: &Path| {
            nix::sys::statfs::statfs(p).is_ok_and(|fs| fs.filesystem_type() == TMPFS_MAGIC)
        };
        assert!(
            on_tmpfs(Path::new("/dev/shm")),
            "/dev/shm is not tmpfs here"
        );
        for dir in [
            tempfile::tempdir_in("/dev/shm").unwrap(),
            tempfile::tempdir().unwrap(),
        ] {
            let expected = on_tmpfs(dir.path());
            let root = Root::new(dir.path());
            let files: Vec<(PathBuf, Vec<u8>)> = (0..4)
                .map(|i| (dir.path().join(format!("{i}.pem")), vec![b'a' + i; 100]))
                .collect();
            let b: Vec<(&Path, &[u8], u32)> = files
                .iter()
                .map(|(p, bytes)| (p.as_path(), bytes.as_slice(), 0o600))
                .collect();
            let done = commit(&root, &batch(&b), true).unwrap();
            assert_eq!(root.handle().unwrap().in_memory, expected, "{dir:?}");
            assert_eq!(done.written.len(), 4);
            for (p, bytes) in &files {
                assert_eq!(&std::fs::read(p).unwrap(), bytes);
                assert_eq!(mode_of(p), 0o600);
            }
            assert_eq!(names(dir.path()), ["0.pem", "1.pem", "2.pem", "3.pem"]);
        }
    }

    #[test]
    fn an_own_directory_is_created_and_its_stale_managed_files_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let own = dir.path().join("bundles");
        let a = own.join("a.pem");
        let mut b = batch(&[(&a, b"A", 0o644)]);
        b.own_dir = Some(OwnDir {
            path: own.clone(),
            managed: pem_names,
        });
        let c = commit(&root, &b, true).unwrap();
        assert_eq!(c.written.len(), 1);
        assert_eq!(mode_of(&own), 0o755);
        for n in ["old.pem", "notes.txt"] {
            std::fs::write(own.join(n), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/etc/hostname", own.join("link.pem")).unwrap();
        let c = commit(&root, &b, true).unwrap();
        assert_eq!(c.removed, [own.join("old.pem")]);
        assert_eq!(names(&own), ["a.pem", "link.pem", "notes.txt"]);
    }

    #[test]
    fn links_below_the_root_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let foreign = dir.path().join("foreign");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("theirs.pem"), b"keep").unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
        let root = Root::new(&certs);
        // A link where the own directory should be: an error, nothing
        // written or removed there, no mode changed.
        std::os::unix::fs::symlink(&foreign, certs.join("bundles")).unwrap();
        let own = certs.join("bundles");
        let mut b = batch(&[(&own.join("a.pem"), b"A", 0o644)]);
        b.own_dir = Some(OwnDir {
            path: own.clone(),
            managed: pem_names,
        });
        let e = commit(&root, &b, false).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(names(&foreign), ["theirs.pem"]);
        assert_eq!(mode_of(&foreign), 0o700);
        // A link where a directory of an output should be: the same.
        std::os::unix::fs::symlink(&foreign, certs.join("sub")).unwrap();
        let e = write_one(&root, &certs.join("sub").join("x.pem"), b"x", 0o644).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(names(&foreign), ["theirs.pem"]);
        // A link at an output name is replaced, not written through.
        std::os::unix::fs::symlink(foreign.join("theirs.pem"), certs.join("svid.pem")).unwrap();
        write_one(&root, &certs.join("svid.pem"), b"mine", 0o644).unwrap();
        assert_eq!(std::fs::read(foreign.join("theirs.pem")).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(certs.join("svid.pem"))
            .unwrap()
            .is_file());
    }

    #[test]
    fn long_names_still_fit_since_temporary_names_are_short() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let p = dir.path().join("n".repeat(255));
        write_one(&root, &p, b"x", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
    }

    #[test]
    fn large_batches_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
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
            own_dir: None,
        };
        commit(&root, &b, false).unwrap();
        for p in &paths {
            assert_eq!(std::fs::read(p).unwrap(), p.to_string_lossy().as_bytes());
        }
        assert_eq!(names(dir.path()).len(), 40);
    }

    #[test]
    fn leftovers_are_recognised_by_the_exact_pattern_only() {
        let h = name_hash(b"svid.pem");
        let yes = [
            format!(".{h:08x}-0000000c-00000000.tmp"),
            format!(".{h:08x}-00000001-00000016.bak"),
        ];
        let no = [
            "svid.pem".to_owned(),
            format!(".{h:08x}-0000000c-0000000.tmp"),
            format!(".{h:08x}-0000000c-0000000x.tmp"),
            format!(".{h:08x}-0000000C-00000000.tmp"),
            format!(".{:08x}-0000000c-00000000.tmp", h ^ 1),
            format!(".{h:08x}-0000000c-00000000.tmpx"),
            format!(".{h:08x}_0000000c-00000000.tmp"),
        ];
        for n in &yes {
            assert!(is_leftover_of(OsStr::new(n), OsStr::new("svid.pem")), "{n}");
        }
        for n in &no {
            assert!(
                !is_leftover_of(OsStr::new(n), OsStr::new("svid.pem")),
                "{n}"
            );
        }
    }

    #[test]
    fn remove_leftovers_touches_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let target = dir.path().join("svid.pem");
        let own = dir.path().join("bundles");
        std::fs::create_dir(&own).unwrap();
        let h = name_hash(b"svid.pem");
        let other = name_hash(b"keep.pem");
        let mine = [
            format!(".{h:08x}-00000063-00000003.tmp"),
            format!(".{h:08x}-00000063-00000004.bak"),
        ];
        let theirs = format!(".{other:08x}-00000001-00000001.tmp");
        for n in mine
            .iter()
            .chain([&theirs, &"svid.pem".to_owned(), &"notes.tmp".to_owned()])
        {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        // In the own directory every leftover goes, whatever its target.
        std::fs::write(own.join(&theirs), b"x").unwrap();
        std::fs::write(own.join("a.pem"), b"x").unwrap();
        let removed = remove_leftovers(&root, &[target], Some(&own));
        assert_eq!(removed.len(), 3);
        assert_eq!(
            names(dir.path()),
            [
                theirs.clone(),
                "bundles".to_owned(),
                "notes.tmp".to_owned(),
                "svid.pem".to_owned()
            ]
        );
        assert_eq!(names(&own), ["a.pem"]);
    }

    #[test]
    fn bare_file_name_is_relative_to_the_working_directory() {
        assert_eq!(parent_dir(Path::new("svid.pem")), Path::new("."));
        assert_eq!(parent_dir(Path::new("certs/svid.pem")), Path::new("certs"));
        let root = Root::new("");
        assert_eq!(
            root.below(Path::new("svid.pem")).unwrap(),
            [OsStr::new("svid.pem")]
        );
        assert!(Root::new("certs").below(Path::new("certs/../x")).is_err());
        assert!(Root::new("certs").below(Path::new("other/x")).is_err());
    }
}
