//! Files sent over gRPC in pieces (checkpoints, the data set): read one piece ahead, so that the
//! last piece is known and can carry the whole file's sha256, received into a file hashed on the
//! way, and never held whole in memory.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bytes per piece (gRPC's default message limit is 4 MiB).
pub const PIECE: usize = 1 << 20;

/// Reads `path` in pieces of up to `PIECE` bytes and hands each to `send`, the last one with the
/// file's sha256 (hex) beside it; an empty file gives one empty last piece. Stops early, without
/// error, when `send` returns false (the receiver went away). Blocking: run it on a blocking
/// thread.
pub fn for_each_piece(path: &Path, mut send: impl FnMut(Vec<u8>, Option<String>) -> bool) -> std::io::Result<()> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let mut buf = vec![0u8; PIECE];
        let n = read_full(&mut f, &mut buf)?;
        buf.truncate(n);
        hasher.update(&buf);
        if n == 0 {
            let sha = hex::encode(hasher.finalize());
            send(pending.unwrap_or_default(), Some(sha));
            return Ok(());
        }
        if let Some(p) = pending.replace(buf)
            && !send(p, None)
        {
            return Ok(());
        }
    }
}

/// Fills `buf` as far as the file allows (a short read only at the end).
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A file being received piece by piece: each piece is written and hashed as it comes.
pub struct Receiving {
    /// Where the pieces go.
    file: File,
    /// The sha256 of what was written so far.
    hasher: Sha256,
    /// Bytes written so far.
    bytes: u64,
}

impl Receiving {
    /// Creates (or truncates) `path` to receive into.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Receiving { file: File::create(path)?, hasher: Sha256::new(), bytes: 0 })
    }

    /// Appends one piece.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.hasher.update(data);
        self.file.write_all(data)?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Flushes the file to disk and returns its sha256 (hex) and length.
    pub fn finish(self) -> std::io::Result<(String, u64)> {
        self.file.sync_all()?;
        Ok((hex::encode(self.hasher.finalize()), self.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(len: usize) -> Vec<(usize, Option<String>)> {
        let path = std::env::temp_dir().join(format!("gridsweep-pieces-{}-{len}", std::process::id()));
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let copy = path.with_extension("copy");
        let mut got = Vec::new();
        let mut receiving = Receiving::create(&copy).unwrap();
        for_each_piece(&path, |p, sha| {
            receiving.write(&p).unwrap();
            got.push((p.len(), sha));
            true
        })
        .unwrap();
        let (sha, bytes) = receiving.finish().unwrap();
        assert_eq!((bytes, std::fs::read(&copy).unwrap()), (len as u64, data.clone()));
        let _ = (std::fs::remove_file(&path), std::fs::remove_file(&copy));
        assert_eq!(got.last().and_then(|g| g.1.clone()), Some(sha));
        assert_eq!(got.last().and_then(|g| g.1.clone()), Some(hex::encode(Sha256::digest(&data))));
        got
    }

    #[test]
    fn the_last_piece_carries_the_sha_and_only_it() {
        assert_eq!(pieces(0).len(), 1);
        let exact = pieces(2 * PIECE);
        assert_eq!(exact.iter().map(|g| g.0).collect::<Vec<_>>(), [PIECE, PIECE]);
        let more = pieces(2 * PIECE + 5);
        assert_eq!(more.iter().map(|g| g.0).collect::<Vec<_>>(), [PIECE, PIECE, 5]);
        assert!(more[..2].iter().all(|g| g.1.is_none()));
    }

    #[test]
    fn a_missing_file_is_an_error_and_a_gone_receiver_stops_reading() {
        assert!(for_each_piece(Path::new("/nonexistent/gridsweep"), |_, _| true).is_err());
        let path = std::env::temp_dir().join(format!("gridsweep-pieces-stop-{}", std::process::id()));
        std::fs::write(&path, vec![1u8; 3 * PIECE]).unwrap();
        let mut calls = 0;
        for_each_piece(&path, |_, _| {
            calls += 1;
            false
        })
        .unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(calls, 1);
    }
}
