//! Writing output files whole or not at all, and the errors of doing so that the tables, plots
//! and report share.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An output directory or file that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output directory could not be created.
    #[error("cannot create the output directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file could not be written, renamed into place or removed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<(), OutputError> {
    fs::create_dir_all(dir).map_err(|source| OutputError::CreateDir { path: dir.to_owned(), source })
}

/// `write_atomic`, its error naming the file; returns the file's path.
pub fn write_output(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, OutputError> {
    let path = dir.join(name);
    write_atomic(dir, name, bytes).map_err(|source| OutputError::Write { path: path.clone(), source })?;
    Ok(path)
}

/// Writes `bytes` to `dir/.name.tmp`, flushes it to disk and renames it to `dir/name`, so a
/// reader never sees a half-written file; the temporary file is removed on failure.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    };
    write().inspect_err(|_| {
        // Best effort: the temporary file is ours and useless now.
        let _ = fs::remove_file(&tmp);
    })
}
