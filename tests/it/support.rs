//! Shared helpers: the embedded data, configs, and scratch folders.

use convscope::app::{ConvscopeApp, State};
use egui_kittest::Harness;
use std::path::PathBuf;
use std::process::{Command, Output};
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

/// A test that needs something the machine lacks (a display, a Vulkan driver): skipped with the reason printed
/// when run by hand, but failed when `CONVSCOPE_TESTS_MUST_RUN` is set, as `scripts/test.sh` sets it after
/// installing what the tests need, so CI never passes a test that did not run.
pub fn cannot_run(reason: &str) {
    if std::env::var_os("CONVSCOPE_TESTS_MUST_RUN").is_some() {
        panic!("this test must run here (CONVSCOPE_TESTS_MUST_RUN is set), but {reason}");
    }
    println!("skipped: {reason}");
}

/// Runs the binary with `args` on two compute threads and waits for it.
pub fn convscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convscope"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("run convscope")
}

/// Its standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON summary `train` prints as its last stdout line.
pub fn last_json_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().expect("a JSON line on stdout");
    serde_json::from_str(line).expect("the last stdout line is JSON")
}

/// The real window on `fake` (events queued on it arrive in the first frames), `size` points large.
pub fn window_on(fake: &convscope::app::FakeWorker, size: eframe::egui::Vec2) -> Harness<'static, ConvscopeApp> {
    let app = ConvscopeApp::new(State::default(), Box::new(fake.clone()));
    let mut harness = Harness::builder().with_size(size).build_ui_state(|ui, app: &mut ConvscopeApp| app.draw(ui), app);
    harness.run_steps(3);
    harness
}
