//! Filesystem helpers shared by every writer of the crate.

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The temporary sibling `write_atomic` writes first, in the same directory
/// as `path`: `.<name>.<pid>.<n>.tmp`, with the process id and a number
/// counted per process, so two writers (threads or processes) of one file
/// never share a temporary file.
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the output path does not name a file",
        ),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
    Ok(path.with_file_name(tmp_name))
}

/// Writes `bytes` to `path` atomically: the bytes go to a temporary file
/// `.<name>.<pid>.<n>.tmp` of its own in the same directory, are flushed
/// and synced to disk, and the temporary file is then renamed over `path`.
/// A reader sees either the old file or the whole new one, never a partial
/// or empty write, even with several writers at once (the last rename
/// wins); a crash leaves at most the temporary file.
///
/// # Errors
/// [`Error::Io`] naming the file that could not be created, written, synced
/// or renamed; the temporary file is removed on failure.
///
/// # Example
/// ```
/// let dir = std::env::temp_dir().join(format!("vnn-doc-atomic-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("out.txt");
/// vnn::fsutil::write_atomic(&path, b"first").unwrap();
/// vnn::fsutil::write_atomic(&path, b"second").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"second");
/// assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let tmp = temp_sibling(path)?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let write = || -> Result<()> {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.flush().map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io(path))?;
        Ok(())
    };
    let result = write();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else {
        sync_parent(path);
    }
    result
}

/// Best effort: syncs the directory holding `path` so the rename itself is
/// durable. Directories cannot be opened for syncing on every platform, so
/// failures are ignored.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Reads the whole regular file at `path`, of at most `limit` bytes: a
/// directory, a device (`/dev/zero`), a FIFO or a socket is refused at once
/// without being opened for reading, the size is checked before reading,
/// and the read stops one byte past `limit`, so a file growing meanwhile
/// cannot pass it. The loaders of model and checkpoint files read through
/// it; errors are [`Error::Model`] naming the file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Model`] when it is
/// not a regular file or has more than `limit` bytes.
///
/// # Example
/// ```
/// use std::path::Path;
/// let e = vnn::fsutil::read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err();
/// assert!(e.to_string().contains("not a regular file"));
/// let e = vnn::fsutil::read_regular(Path::new("."), 1 << 20).unwrap_err();
/// assert!(e.to_string().contains("is a directory"));
/// ```
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let refuse = |msg: String| Error::Model {
        path: path.to_path_buf(),
        tensor: None,
        msg,
    };
    let meta = fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(refuse("is a directory, not a model file".into()));
    }
    if !meta.is_file() {
        return Err(refuse(
            "is not a regular file (a device, FIFO or socket): model and checkpoint files must be regular files".into(),
        ));
    }
    if meta.len() > limit {
        let len = meta.len();
        return Err(refuse(format!(
            "the file has {len} bytes, more than the limit of {limit} bytes"
        )));
    }
    let file = File::open(path).map_err(io)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(refuse(format!(
            "the file grew past the limit of {limit} bytes while being read"
        )));
    }
    Ok(bytes)
}

/// How long [`open_with_timeout`] waits for a FIFO's writer.
pub const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens `path` for reading; a FIFO (or another file whose `open` may
/// block, such as a device) is opened in a helper thread, given up on after
/// `timeout` (`Ok(None)`: no writer came). The helper thread stays blocked
/// in `open` until a writer comes or the process ends.
///
/// # Errors
/// The operating system's error when `open` fails.
///
/// # Example
/// ```
/// use std::time::Duration;
/// let file = vnn::fsutil::open_with_timeout(std::path::Path::new("/dev/null"), Duration::from_secs(1)).unwrap();
/// assert!(file.is_some());
/// ```
pub fn open_with_timeout(
    path: &Path,
    timeout: std::time::Duration,
) -> std::io::Result<Option<File>> {
    let regular = fs::metadata(path).is_ok_and(|m| m.is_file() || m.is_dir());
    if regular {
        return File::open(path).map(Some);
    }
    let (send, receive) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = send.send(File::open(owned));
    });
    match receive.recv_timeout(timeout) {
        Ok(result) => result.map(Some),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn writers_on_threads_leave_one_whole_file_and_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("vnn-atomic-threads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        let contents: Vec<Vec<u8>> = (0..6u8).map(|t| vec![t; 100_000 + t as usize]).collect();
        write_atomic(&path, &contents[0]).unwrap();
        std::thread::scope(|scope| {
            for bytes in &contents {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, bytes).unwrap();
                    }
                });
            }
            // A reader always sees one writer's whole file.
            scope.spawn(|| {
                for _ in 0..200 {
                    let seen = std::fs::read(&path).unwrap();
                    assert!(
                        contents.contains(&seen),
                        "a partial file of {} bytes",
                        seen.len()
                    );
                }
            });
        });
        assert!(contents.contains(&std::fs::read(&path).unwrap()));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["model.safetensors"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
