//! One run of a task at a time: runs of the same task share names (the demo's database, the
//! leftovers a check sweeps), so a second one must not start while the first holds the lock.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// An exclusive lock on a file, held until dropped (the kernel releases it if the task dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock on `dir/.lock` (creating `dir`), or fails at once saying who holds it.
    pub fn acquire(dir: &Path, task: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(".lock");
        let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => {
                anyhow::bail!("another {task} is running ({} is held)", path.display())
            }
            Err(TryLockError::Error(error)) => {
                Err(error).with_context(|| format!("lock {}", path.display()))
            }
        }
    }

    /// [`RunLock::acquire`] on `dir`, then an empty `dir/logs` (each run's logs replace the
    /// last run's); the lock and that directory.
    pub fn with_fresh_logs(dir: &Path, task: &str) -> anyhow::Result<(Self, PathBuf)> {
        let lock = Self::acquire(dir, task)?;
        let log_dir = dir.join("logs");
        if log_dir.exists() {
            std::fs::remove_dir_all(&log_dir)
                .with_context(|| format!("remove {}", log_dir.display()))?;
        }
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("create {}", log_dir.display()))?;
        Ok((lock, log_dir))
    }
}
