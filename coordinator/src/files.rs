//! Writing output files whole or not at all.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

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
