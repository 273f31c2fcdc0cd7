//! Atomic file output.
//!
//! Every file is written through a temporary file in the target directory:
//! created with `O_EXCL`, given its final mode with `fchmod` before a byte is
//! written, written, fsynced, renamed over the target, and then the directory
//! is fsynced. A reader sees either the old file or the new one, never a torn
//! or empty one, and a key is never readable beyond its configured mode.
//!
//! [`write_files`] does this for a batch in two phases: every temporary file
//! is staged first, and only when all of them are safely on disk are they
//! renamed, in the order given. A failure while staging leaves every previous
//! file untouched and removes the temporary files.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file could not be written; `path` is the file the user configured.
#[derive(Debug, thiserror::Error)]
#[error("writing {}: {reason}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    reason: String,
    #[source]
    source: io::Error,
}

impl WriteError {
    fn new(path: &Path, source: io::Error) -> Self {
        let reason = match source.kind() {
            io::ErrorKind::NotFound => {
                format!("directory {} does not exist", display_dir(parent_dir(path)))
            }
            io::ErrorKind::PermissionDenied => format!(
                "permission denied in directory {}",
                display_dir(parent_dir(path))
            ),
            _ => source.to_string(),
        };
        Self {
            path: path.to_path_buf(),
            reason,
            source,
        }
    }
}

impl WriteError {
    /// A failure that is not about one file's I/O (e.g. a lost write task).
    pub fn other(reason: &str) -> Self {
        Self {
            path: PathBuf::new(),
            reason: reason.to_owned(),
            source: io::Error::other(reason.to_owned()),
        }
    }
}

/// One file of a batch: where, what, and with which permission bits.
pub struct FileWrite<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub mode: u32,
}

/// Writes every file atomically, renaming them in the order given once all
/// of them are staged.
pub fn write_files(files: &[FileWrite<'_>]) -> Result<(), WriteError> {
    let mut staged: Vec<Staged> = Vec::with_capacity(files.len());
    for file in files {
        // On error `staged` is dropped, which removes its temporary files.
        staged.push(stage(file)?);
    }
    sync_all(&staged)?;
    for s in &mut staged {
        std::fs::rename(&s.temp, &s.target).map_err(|e| WriteError::new(&s.target, e))?;
        s.renamed = true;
    }
    // One fsync per directory makes the renames durable.
    let mut synced: Vec<&Path> = Vec::with_capacity(1);
    for s in &staged {
        let dir = parent_dir(&s.target);
        if !synced.contains(&dir) {
            sync_dir(dir).map_err(|e| WriteError::new(&s.target, e))?;
            synced.push(dir);
        }
    }
    Ok(())
}

/// Writes one file atomically.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    write_files(&[FileWrite { path, bytes, mode }])
}

/// Makes every staged file durable. The fsyncs run concurrently: the
/// filesystem folds them into one journal commit, so a batch costs about
/// one fsync instead of one per file.
fn sync_all(staged: &[Staged]) -> Result<(), WriteError> {
    let sync = |s: &Staged| s.file.sync_all().map_err(|e| WriteError::new(&s.target, e));
    let Some((first, rest)) = staged.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        return sync(first);
    }
    std::thread::scope(|scope| {
        let others: Vec<_> = rest
            .iter()
            .map(|s| {
                (
                    s,
                    std::thread::Builder::new().spawn_scoped(scope, move || sync(s)),
                )
            })
            .collect();
        let mut result = sync(first);
        for (s, handle) in others {
            // Without a thread, sync here; a panic cannot happen in `sync`.
            let r = match handle {
                Ok(h) => h.join().unwrap_or_else(|_| sync(s)),
                Err(_) => sync(s),
            };
            result = result.and(r);
        }
        result
    })
}

/// A temporary file written in full, waiting to be synced and renamed.
struct Staged {
    temp: PathBuf,
    target: PathBuf,
    file: File,
    renamed: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn stage(file: &FileWrite<'_>) -> Result<Staged, WriteError> {
    let err = |e| WriteError::new(file.path, e);
    let (temp, handle) = create_temp(file.path).map_err(err)?;
    let mut staged = Staged {
        temp,
        target: file.path.to_path_buf(),
        file: handle,
        renamed: false,
    };
    // The exact mode, independent of the umask, before any content exists.
    staged
        .file
        .set_permissions(std::fs::Permissions::from_mode(file.mode))
        .map_err(err)?;
    staged.file.write_all(file.bytes).map_err(err)?;
    Ok(staged)
}

/// Creates a new, uniquely named, empty file next to `target`, readable by
/// nobody but its owner until its mode is set.
fn create_temp(target: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = parent_dir(target);
    let base = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = OsString::from(".");
        name.push(base);
        name.push(format!(".{}.{n}.tmp", std::process::id()));
        let temp = dir.join(&name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open(&temp)
        {
            Ok(f) => return Ok((temp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path`; `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
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
    use std::os::unix::fs::MetadataExt;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_bytes_with_exact_mode_regardless_of_umask() {
        let dir = tempfile::tempdir().unwrap();
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let p = dir.path().join("cert.pem");
        write_atomic(&p, b"hello", 0o644).unwrap();
        nix::sys::stat::umask(old);
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(mode_of(&p), 0o644);
        assert!(leftovers(dir.path()).is_empty());
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
    fn failed_batch_keeps_previous_files_and_removes_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.pem");
        std::fs::write(&a, b"old a").unwrap();
        let missing = dir.path().join("missing").join("b.pem");
        let err = write_files(&[
            FileWrite {
                path: &a,
                bytes: b"new a",
                mode: 0o644,
            },
            FileWrite {
                path: &missing,
                bytes: b"new b",
                mode: 0o644,
            },
        ])
        .unwrap_err();
        assert_eq!(err.path, missing);
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    #[test]
    fn bare_file_name_is_relative_to_the_working_directory() {
        assert_eq!(parent_dir(Path::new("svid.pem")), Path::new("."));
        assert_eq!(parent_dir(Path::new("certs/svid.pem")), Path::new("certs"));
    }
}
