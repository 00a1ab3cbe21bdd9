//! convscope's fuzz targets ([`targets`]: one harness per parser, run by the AFL++ entry points in
//! `src/bin/`) and the helpers they share: checksum fix-ups (so mutated bodies get past the CRC-32
//! checks into the parsing behind them) and per-process scratch files for the path-based entry points.

use std::path::{Path, PathBuf};

pub mod targets;

/// The checkpoint signature (`src/train/checkpoint.rs`).
pub const CHECKPOINT_SIGNATURE: &[u8; 8] = b"CSCKPT\r\n";
/// The history signature (`src/history.rs`).
pub const HISTORY_SIGNATURE: &[u8; 8] = b"CSHIST\r\n";
/// The format both files are at.
pub const FORMAT: u32 = 1;

/// `body` followed by the little-endian CRC-32 of `body`: a checkpoint whose checksum is right.
pub fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(body.len() + 4);
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    bytes
}

/// A whole checkpoint around `header` (JSON) and the two records, checksum included.
pub fn checkpoint_around(header: &[u8], model: &[u8], optimizer: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(header.len() + model.len() + optimizer.len() + 40);
    body.extend_from_slice(CHECKPOINT_SIGNATURE);
    body.extend_from_slice(&FORMAT.to_le_bytes());
    for part in [header, model, optimizer] {
        body.extend_from_slice(&(part.len() as u64).to_le_bytes());
        body.extend_from_slice(part);
    }
    with_crc(&body)
}

/// Rewrites the CRC field of every history record in `bytes` (after the 12-byte head) whose payload fits in
/// the input, walking the records as the reader does; stops at the first that does not fit.
pub fn fix_history_checksums(bytes: &mut [u8]) {
    let mut at = HISTORY_SIGNATURE.len() + 4;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let start = at + 8;
        let Some(end) = start.checked_add(len).filter(|&end| end <= bytes.len()) else {
            return;
        };
        let checksum = crc32fast::hash(&bytes[start..end]);
        bytes[at + 4..at + 8].copy_from_slice(&checksum.to_le_bytes());
        at = end;
    }
}

/// A history file of one record holding `payload` (MessagePack), header and checksum right.
pub fn history_around(payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(payload.len() + 20);
    bytes.extend_from_slice(HISTORY_SIGNATURE);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A folder of this process's own under /dev/shm (RAM; the temporary folder elsewhere), made empty.
pub fn scratch_dir(target: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let dir = base.join(format!("convscope-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the scratch folder could not be made");
    dir
}

/// Empties `dir` (files and folders inside it), keeping `dir` itself.
pub fn clear_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                let _ = std::fs::remove_dir_all(&path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}
