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
