//! `worker data synth`: a learnable synthetic set in CIFAR-10's binary layout, for tests and
//! offline demos. Each class has a fixed coarse colour pattern (4x4 cells of 8x8 pixels, so a
//! 4-pixel crop shift keeps it recognisable); an image is its class pattern plus pixel noise.
//! Deterministic in the seed; marked with a `SYNTHETIC` file so it is never taken for CIFAR-10.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{DataError, RECORD, SET_DIR, SYNTHETIC_MARKER, TEST_FILE, TRAIN_FILES, io_err};

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `train` training and `test` test images into `dest/cifar-10-batches-bin/` and returns
/// that folder. The training images are spread over the five batch files.
pub fn write(dest: &Path, train: usize, test: usize, seed: u64) -> Result<PathBuf, DataError> {
    if train < TRAIN_FILES.len() || test == 0 {
        return Err(DataError::Fetch(format!(
            "synthetic set needs --train >= 5 and --test >= 1, got {train} and {test}"
        )));
    }
    let dir = dest.join(SET_DIR);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut rng = Rng(seed ^ 0x5EED_CAFE);
    // Class patterns: 10 classes x 3 channels x 4 x 4 cells, values in [-1, 1].
    let patterns: Vec<f64> = (0..10 * 3 * 16).map(|_| rng.unit() * 2.0 - 1.0).collect();
    let image = |label: u8, rng: &mut Rng, out: &mut Vec<u8>| {
        out.push(label);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let p = patterns[(label as usize * 3 + c) * 16 + (y / 8) * 4 + x / 8];
                    let v = 128.0 + 70.0 * p + 60.0 * (rng.unit() - 0.5);
                    out.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
    };
    let per_file = train.div_ceil(TRAIN_FILES.len());
    let mut written = 0;
    for f in TRAIN_FILES {
        let n = per_file.min(train - written).max(1);
        let mut buf = Vec::with_capacity(n * RECORD);
        for _ in 0..n {
            image((rng.next() % 10) as u8, &mut rng, &mut buf);
        }
        write_file(&dir.join(f), &buf)?;
        written += n;
    }
    let mut buf = Vec::with_capacity(test * RECORD);
    for _ in 0..test {
        image((rng.next() % 10) as u8, &mut rng, &mut buf);
    }
    write_file(&dir.join(TEST_FILE), &buf)?;
    let marker = format!("{{\"train\": {written}, \"test\": {test}, \"seed\": {seed}}}\n");
    write_file(&dir.join(SYNTHETIC_MARKER), marker.as_bytes())?;
    Ok(dir)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let mut f = std::fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))
}
