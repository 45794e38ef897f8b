//! The data set kept on the training device across the jobs of one worker process: a sweep's
//! jobs all train on the same set, and copying 50,000 + 10,000 images to the device (and
//! reading and checking 180 MB from disk) for every job is wasted work. [`load`] returns the
//! set from the cache when the same files are asked for on the same device, else loads it and
//! replaces the cached one (one set at a time: a second would hold device memory that no job
//! uses).
//!
//! A set's identity is its resolved folder (canonical path), the device, whether it is
//! synthetic, and the size and modification time of each of its six files: a set rewritten in
//! place (`worker data synth` again, a new fetch) is loaded afresh, without hashing the files
//! every job. The returned `Dataset` shares the cached tensors' storage (shallow clones);
//! training only reads them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use tch::Device;

use super::{DataError, Dataset, SYNTHETIC_MARKER, Split, TEST_FILE, TRAIN_FILES, io_err, resolve_dir};

/// What makes two loads the same set on the same device.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    /// The set's folder, canonical.
    dir: PathBuf,
    /// Where the tensors live.
    device: Device,
    /// Whether the folder holds the synthetic marker.
    synthetic: bool,
    /// (bytes, modification time) of each training file then the test file.
    files: Vec<(u64, Option<SystemTime>)>,
}

/// The set loaded last, with its key.
static CACHE: Mutex<Option<(Key, Dataset)>> = Mutex::new(None);

/// The identity of the set in `dir` (or `dir/cifar-10-batches-bin`) on `device`; a missing file
/// is `DataError::Missing`, as loading would say.
fn key(dir: &Path, device: Device) -> Result<Key, DataError> {
    let dir = resolve_dir(dir);
    let dir = std::fs::canonicalize(&dir).map_err(|_| DataError::Missing { path: dir.clone() })?;
    let mut files = Vec::with_capacity(TRAIN_FILES.len() + 1);
    for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
        let path = dir.join(name);
        let meta = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DataError::Missing { path }),
            r => r.map_err(io_err(&path))?,
        };
        files.push((meta.len(), meta.modified().ok()));
    }
    let synthetic = dir.join(SYNTHETIC_MARKER).exists();
    Ok(Key { dir, device, synthetic, files })
}

impl Dataset {
    /// The same set, its tensors sharing this one's storage.
    fn share(&self) -> Dataset {
        let split = |s: &Split| Split { images: s.images.shallow_clone(), labels: s.labels.shallow_clone() };
        Dataset { train: split(&self.train), test: split(&self.test), synthetic: self.synthetic, dir: self.dir.clone() }
    }
}

/// The set in `dir` on `device`, from the cache when it is the one loaded last (same files, same
/// device), else loaded with [`super::load`] and cached in place of the last.
pub fn load(dir: &Path, device: Device) -> Result<Dataset, DataError> {
    let key = key(dir, device)?;
    // A panic while loading poisons nothing that matters: the entry is replaced or reused whole.
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((k, set)) = cache.as_ref()
        && *k == key
    {
        return Ok(set.share());
    }
    // Drop the old set first, so that two sets never sit on the device together.
    *cache = None;
    let set = super::load(&key.dir, device)?;
    let shared = set.share();
    *cache = Some((key, set));
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gridsweep-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_same_set_comes_from_the_cache_and_another_does_not() {
        let (a, b) = (scratch("a"), scratch("b"));
        let dir_a = super::super::synth::write(&a, 20, 10, 1).unwrap();
        super::super::synth::write(&b, 20, 10, 2).unwrap();
        let first = load(&a, Device::Cpu).unwrap();
        // The parent folder or the set's own folder: the same set, the same storage.
        for again in [load(&a, Device::Cpu).unwrap(), load(&dir_a, Device::Cpu).unwrap()] {
            assert_eq!(again.train.images.data_ptr(), first.train.images.data_ptr());
            assert_eq!(again.test.labels.data_ptr(), first.test.labels.data_ptr());
        }
        let other = load(&b, Device::Cpu).unwrap();
        assert_ne!(other.train.images.data_ptr(), first.train.images.data_ptr());
        assert!(!other.train.images.equal(&first.train.images), "seed 2's images are seed 1's");
        // The set rewritten in place (another seed): loaded afresh, with the new contents.
        let before = load(&b, Device::Cpu).unwrap();
        assert_eq!(before.train.images.data_ptr(), other.train.images.data_ptr());
        std::thread::sleep(std::time::Duration::from_millis(20));
        super::super::synth::write(&b, 20, 10, 1).unwrap();
        let rewritten = load(&b, Device::Cpu).unwrap();
        assert_ne!(rewritten.train.images.data_ptr(), before.train.images.data_ptr());
        assert!(rewritten.train.images.equal(&first.train.images));
        // A missing set is the loader's error, naming the file.
        let gone = scratch("gone");
        let err = load(&gone, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        for d in [a, b] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
