//! The real window end to end: the binary under Xvfb trains for a few seconds and reports its frame times.
//! Skipped, with the reason printed, where `xvfb-run` is not installed (`scripts/test.sh` installs it).

use std::process::Command;

use crate::support::scratch_dir;

#[test]
fn window_opens_trains_and_closes_under_xvfb() {
    if Command::new("xvfb-run").arg("--help").output().is_err() {
        println!("skipped: xvfb-run is not installed (scripts/test.sh installs it)");
        return;
    }
    let dir = scratch_dir("window");
    let stats = dir.join("frames.json");
    let runtime = dir.join("xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    let output = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_convscope"))
        .args(["--fresh", "--quit-after", "6", "--frame-stats"])
        .arg(&stats)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", &dir)
        .output()
        .expect("run xvfb-run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the window failed: {stderr}");
    let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(stats["frames"].as_u64().unwrap() > 5, "{stats}");
    assert!(stats["steps"].as_u64().unwrap() > 10, "the net trained while the window was open: {stats}");
}
