//! The CIFAR-10 binary set as both sides know it: its folder name, its files and their official
//! md5 sums, and the check that a folder holds exactly those files. The coordinator verifies its
//! copy before serving (so a missing or damaged set is its operator's error at start, not a job
//! failure later); the worker verifies what it fetched or was given.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// The folder the archive unpacks to.
pub const SET_DIR: &str = "cifar-10-batches-bin";

/// The official files and their md5 sums.
pub const MD5: [(&str, &str); 6] = [
    ("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
    ("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
    ("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
    ("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
    ("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
    ("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),
];

/// Why a folder is not a verified CIFAR-10 set.
#[derive(Debug, thiserror::Error)]
pub enum CifarError {
    /// A file is missing.
    #[error("{}: missing", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file's content is not the official one.
    #[error("{}: md5 {actual}, expected {expected}", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Its md5.
        actual: String,
        /// The official md5.
        expected: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// `dir` itself when it holds the files, else `dir/cifar-10-batches-bin` when that exists.
pub fn resolve_dir(dir: &Path) -> PathBuf {
    if dir.join(MD5[5].0).exists() || !dir.join(SET_DIR).exists() { dir.to_owned() } else { dir.join(SET_DIR) }
}

/// md5 of a file, hex.
pub fn md5_file(path: &Path) -> Result<String, CifarError> {
    let io = |source| CifarError::Io { path: path.to_owned(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Checks every official file in `dir` against its md5.
pub fn verify(dir: &Path) -> Result<(), CifarError> {
    for (name, expected) in MD5 {
        let path = dir.join(name);
        if !path.exists() {
            return Err(CifarError::Missing { path });
        }
        let actual = md5_file(&path)?;
        if actual != expected {
            return Err(CifarError::Checksum { path, actual, expected: expected.to_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_the_set_names_the_first_missing_file() {
        let dir = std::env::temp_dir().join(format!("gridsweep-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = verify(&dir).unwrap_err();
        assert!(matches!(&err, CifarError::Missing { path } if path.ends_with("data_batch_1.bin")), "{err}");
        std::fs::write(dir.join("data_batch_1.bin"), b"not cifar").unwrap();
        let err = verify(&dir).unwrap_err();
        assert!(err.to_string().contains("expected 5dd7e06a14cb22eb9f671a540d1b7c25"), "{err}");
        assert_eq!(resolve_dir(&dir), dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
