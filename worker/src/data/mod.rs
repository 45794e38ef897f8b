//! CIFAR-10 in its binary layout (`cifar-10-batches-bin/`: five `data_batch_N.bin` and
//! `test_batch.bin`, records of 1 label byte + 3072 pixel bytes, channel-major): loading onto the
//! training device as one u8 tensor per split, fetching the real files, writing a synthetic set,
//! batched augmentation, and (`cache`) the set kept on the device across a worker's jobs.

pub mod augment;
pub mod cache;
pub mod fetch;
pub mod synth;

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

/// The folder name of the binary set inside a data directory.
pub use gridsweep_proto::cifar::SET_DIR;
/// Training files, in order.
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";
/// Bytes per record: label + 3 x 32 x 32 pixels.
pub const RECORD: usize = 1 + IMAGE;
/// Pixel bytes per image.
pub const IMAGE: usize = 3 * 32 * 32;
/// Records in each official file.
pub const OFFICIAL_RECORDS: usize = 10_000;
/// The marker `worker data synth` leaves, so a synthetic set is never taken for the real one.
pub const SYNTHETIC_MARKER: &str = "SYNTHETIC";

/// Why a data set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file the layout requires is absent.
    #[error("{path}: missing (expected the CIFAR-10 binary layout; run `worker data fetch --dest DIR`)")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file whose size is not what the layout requires.
    #[error("{path}: {actual} bytes, expected {expected} (truncated or not a CIFAR-10 batch file)")]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// Its size.
        actual: u64,
        /// What it must be ("30730000" or "a positive multiple of 3073").
        expected: String,
    },
    /// A record whose label is not a class.
    #[error("{path}: record {record} has label {label}, expected 0..9 (corrupt file)")]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Record index.
        record: usize,
        /// The byte found.
        label: u8,
    },
    /// A file whose checksum differs from the official one.
    #[error("{path}: md5 {actual}, expected {expected} (corrupt or incomplete download)")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// What it hashes to.
        actual: String,
        /// The official sum.
        expected: String,
    },
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A download or unpacking step that failed.
    #[error("fetching CIFAR-10: {0}")]
    Fetch(String),
    /// A libtorch failure while moving the data.
    #[error("moving the data set to {device:?}: {source}")]
    Torch {
        /// Target device.
        device: Device,
        /// The cause.
        source: tch::TchError,
    },
}

impl From<gridsweep_proto::cifar::CifarError> for DataError {
    fn from(e: gridsweep_proto::cifar::CifarError) -> Self {
        use gridsweep_proto::cifar::CifarError;
        match e {
            CifarError::Missing { path } => DataError::Missing { path },
            CifarError::Checksum { path, actual, expected } => DataError::Checksum { path, actual, expected },
            CifarError::Io { path, source } => DataError::Io { path, source },
        }
    }
}

/// Shorthand for an I/O error on `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_owned(), source }
}

/// One split on the training device.
#[derive(Debug)]
pub struct Split {
    /// u8 `[N, 3, 32, 32]`.
    pub images: Tensor,
    /// i64 `[N]`.
    pub labels: Tensor,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` images (all when `n` is larger).
    pub fn take(&self, n: i64) -> Split {
        let n = n.min(self.len());
        Split { images: self.images.narrow(0, 0, n), labels: self.labels.narrow(0, 0, n) }
    }
}

/// The whole set on the training device.
#[derive(Debug)]
pub struct Dataset {
    /// 50,000 images for the real set.
    pub train: Split,
    /// 10,000 images for the real set.
    pub test: Split,
    /// Whether this is a set made by `worker data synth`.
    pub synthetic: bool,
    /// The `cifar-10-batches-bin` folder it came from.
    pub dir: PathBuf,
}

/// `dir` itself when it holds the files, else `dir/cifar-10-batches-bin` (as the coordinator
/// resolves its `--data`).
pub use gridsweep_proto::cifar::resolve_dir;

/// Loads the set in `dir` (or `dir/cifar-10-batches-bin`) onto `device`. The real set's files
/// must each hold exactly 10,000 records; a synthetic set (with its marker) any positive number.
pub fn load(dir: &Path, device: Device) -> Result<Dataset, DataError> {
    let dir = resolve_dir(dir);
    let synthetic = dir.join(SYNTHETIC_MARKER).exists();
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in TRAIN_FILES {
        read_file(&dir.join(f), synthetic, &mut images, &mut labels)?;
    }
    let train = to_split(images, labels, device)?;
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    read_file(&dir.join(TEST_FILE), synthetic, &mut images, &mut labels)?;
    let test = to_split(images, labels, device)?;
    Ok(Dataset { train, test, synthetic, dir })
}

/// Appends one file's pixels and labels, checking size and labels.
fn read_file(path: &Path, synthetic: bool, images: &mut Vec<u8>, labels: &mut Vec<i64>) -> Result<(), DataError> {
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DataError::Missing { path: path.to_owned() }),
        r => r.map_err(io_err(path))?,
    };
    let size = meta.len();
    let ok = if synthetic { size > 0 && size % RECORD as u64 == 0 } else { size == (RECORD * OFFICIAL_RECORDS) as u64 };
    if !ok {
        let expected = if synthetic {
            format!("a positive multiple of {RECORD}")
        } else {
            (RECORD * OFFICIAL_RECORDS).to_string()
        };
        return Err(DataError::WrongSize { path: path.to_owned(), actual: size, expected });
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    images.reserve(bytes.len());
    for (record, chunk) in bytes.chunks_exact(RECORD).enumerate() {
        let label = chunk[0];
        if label > 9 {
            return Err(DataError::BadLabel { path: path.to_owned(), record, label });
        }
        labels.push(i64::from(label));
        images.extend_from_slice(&chunk[1..]);
    }
    Ok(())
}

/// Moves host buffers to one tensor pair on `device`.
fn to_split(images: Vec<u8>, labels: Vec<i64>, device: Device) -> Result<Split, DataError> {
    let n = labels.len() as i64;
    let wrap = |source| DataError::Torch { device, source };
    let images = Tensor::f_from_slice(&images).and_then(|t| t.f_view([n, 3, 32, 32])).map_err(wrap)?;
    let labels = Tensor::f_from_slice(&labels).map_err(wrap)?;
    Ok(Split {
        images: images.f_to_device(device).map_err(wrap)?,
        labels: labels.f_to_device(device).map_err(wrap)?.to_kind(Kind::Int64),
    })
}
