//! Shared helpers: the embedded data, configs, and scratch folders.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use convscope::config::TrainConfig;
use convscope::data::{self, DataSplit};

/// The embedded MNIST subset, parsed once per test binary.
pub fn mnist() -> Arc<DataSplit> {
    static DATA: OnceLock<Arc<DataSplit>> = OnceLock::new();
    DATA.get_or_init(|| Arc::new(data::embedded_mnist().expect("embedded MNIST parses"))).clone()
}

/// The reference configuration with tweaks.
pub fn config(change: impl FnOnce(&mut TrainConfig)) -> TrainConfig {
    let mut config = TrainConfig { test_every: 0, ..TrainConfig::default() };
    change(&mut config);
    config
}

/// A fresh, empty folder under the system temp dir, unique to this process and `tag`.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convscope-it-{}-{tag}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The asset folder holding the real MNIST IDX files.
pub fn asset_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/mnist")
}
