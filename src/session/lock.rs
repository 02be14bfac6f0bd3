//! One run per folder: the lock file [`LOCK_FILE`] of a run folder.
//!
//! The lock is an operating-system lock on the open file
//! ([`File::try_lock`]), so it ends with the process that holds it, even
//! when that process is killed: the file a killed run leaves behind does
//! not block a new run or a resume. The holder writes its process id into
//! the file for the message of a refused run. The file stays in the folder
//! after the run (removing it could let two later runs lock two different
//! files of the same name).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The name of the lock file in a run folder.
pub const LOCK_FILE: &str = ".vnn.lock";

/// The lock of a run folder, held until it is dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of the run folder `dir` (which exists), or refuses at
    /// once when another run holds it.
    ///
    /// # Errors
    /// [`Error::Busy`] naming the folder and the holder's process id;
    /// [`Error::Io`] when the lock file cannot be opened, locked or written.
    pub(crate) fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match try_lock(&mut file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Busy {
                    dir: dir.to_path_buf(),
                    pid: holder(&mut file),
                })
            }
            // A platform or file system without file locks: run unlocked,
            // as before locks existed.
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        let pid = format!("{}\n", std::process::id());
        file.write_all(pid.as_bytes()).map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

/// Tries the lock. When the file names this process as its holder, the
/// lock may be one this process has just released but a child it is
/// starting still shares (a forked child holds the parent's open files
/// until it executes its program), so it tries again for up to
/// [`SAME_PROCESS_WAIT`] before giving up.
fn try_lock(file: &mut File) -> std::result::Result<(), TryLockError> {
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock)
                if holder(file) == Some(std::process::id())
                    && start.elapsed() < SAME_PROCESS_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// How long a lock that names this process as its holder is waited for.
const SAME_PROCESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The process id the holder wrote into the lock file (none while it has
/// not written it yet).
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("vnn-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = RunLock::acquire(&dir).unwrap();
        match RunLock::acquire(&dir) {
            Err(Error::Busy { dir: d, pid }) => {
                assert_eq!((d, pid), (dir.clone(), Some(std::process::id())));
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        let again = RunLock::acquire(&dir).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
