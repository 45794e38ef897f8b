//! A program's checkpoint folder as one file, so that it travels through the same checkpoint
//! upload and download as the built-in trainer's single file: a tar archive of the folder's
//! regular files and subfolders (no links), written through a temporary name and renamed, and
//! unpacked into an empty folder before a resumed attempt starts. Both run on the blocking pool.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Why a checkpoint folder could not be packed or unpacked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The folder holds something that is neither a file nor a folder (a link, a socket).
    #[error("{}: only files and folders are kept in a checkpoint", path.display())]
    NotAFile {
        /// The entry.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackError + '_ {
    move |source| PackError::Io { path: path.to_path_buf(), source }
}

/// Writes the contents of `dir` as a tar archive at `dest` (through `dest.tmp`). Returns the
/// number of files packed.
pub(crate) fn pack(dir: &Path, dest: &Path) -> Result<usize, PackError> {
    let tmp = dest.with_extension("tmp");
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let mut builder = tar::Builder::new(BufWriter::new(file));
    builder.follow_symlinks(false);
    let mut files = 0;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        let mut entries: Vec<_> =
            std::fs::read_dir(&here).map_err(io(&here))?.collect::<Result<_, _>>().map_err(io(&here))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let name = rel.join(entry.file_name());
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                builder.append_dir(&name, &path).map_err(io(&path))?;
                stack.push(name);
            } else if kind.is_file() {
                let mut f = File::open(&path).map_err(io(&path))?;
                builder.append_file(&name, &mut f).map_err(io(&path))?;
                files += 1;
            } else {
                return Err(PackError::NotAFile { path });
            }
        }
    }
    let writer = builder.into_inner().map_err(io(&tmp))?;
    let file = writer.into_inner().map_err(|e| PackError::Io { path: tmp.clone(), source: e.into_error() })?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, dest).map_err(io(dest))?;
    Ok(files)
}

/// Unpacks the archive `src` into `dir` (which must exist and is expected empty). Entries that
/// would land outside `dir` are refused by the tar crate's `unpack_in`.
pub(crate) fn unpack(src: &Path, dir: &Path) -> Result<(), PackError> {
    let file = File::open(src).map_err(io(src))?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(io(src))? {
        let mut entry = entry.map_err(io(src))?;
        entry.unpack_in(dir).map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_round_trips() {
        let root = std::env::temp_dir().join(format!("gridsweep-pack-{}", std::process::id()));
        let (from, to) = (root.join("from"), root.join("to"));
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(from.join("state.pt"), b"model").unwrap();
        std::fs::write(from.join("sub").join("opt.bin"), [0u8, 1, 2]).unwrap();
        let archive = root.join("ck.tar");
        assert_eq!(pack(&from, &archive).unwrap(), 2);
        unpack(&archive, &to).unwrap();
        assert_eq!(std::fs::read(to.join("state.pt")).unwrap(), b"model");
        assert_eq!(std::fs::read(to.join("sub").join("opt.bin")).unwrap(), [0u8, 1, 2]);
        std::os::unix::fs::symlink(from.join("state.pt"), from.join("link")).unwrap();
        assert!(matches!(pack(&from, &archive), Err(PackError::NotAFile { .. })));
        let _ = std::fs::remove_dir_all(&root);
    }
}
