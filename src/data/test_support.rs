//! Helpers shared by the data layer's tests: scratch folders and the real asset files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::read::GzDecoder;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh folder under the system temp dir, removed again on drop.
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    pub(crate) fn new(tag: &str) -> Self {
        let unique = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("convscope-data-test-{}-{tag}-{unique}", std::process::id()));
        // A leftover from an earlier crashed run with the same pid must not leak into this one.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn asset_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist").join(name)
}

/// Decompresses a real asset independently of the code under test.
pub(crate) fn gunzip_asset(name: &str) -> Vec<u8> {
    let compressed = std::fs::read(asset_path(name)).expect("read asset");
    let mut raw = Vec::new();
    GzDecoder::new(compressed.as_slice()).read_to_end(&mut raw).expect("gunzip asset");
    raw
}
