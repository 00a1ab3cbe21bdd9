//! The real window end to end: the binary under Xvfb trains for a few seconds and reports its frame times.
//! Skipped, with the reason printed, where `xvfb-run` is not installed, unless the suite must run everything
//! (`scripts/test.sh` installs it and says so).

use std::process::Command;

use crate::support::scratch_dir;

#[test]
fn window_opens_trains_and_closes_under_xvfb() {
    if Command::new("xvfb-run").arg("--help").output().is_err() {
        crate::support::cannot_run("xvfb-run is not installed (scripts/test.sh installs it)");
        return;
    }
    let dir = scratch_dir("window");
    let stats = dir.join("frames.json");
    let runtime = dir.join("xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    // Saved settings with a zoom factor that once crashed every start-up inside winit.
    let settings = dir.join(".local/share/convscope/app.ron");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let mut memory = eframe::egui::Memory::default();
    memory.options.zoom_factor = 1000.0;
    let entries = std::collections::HashMap::from([("egui".to_owned(), ron::to_string(&memory).unwrap())]);
    std::fs::write(&settings, ron::to_string(&entries).unwrap()).unwrap();
    let output = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_convscope"))
        .args(["--quit-after", "6", "--frame-stats"])
        .arg(&stats)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", &dir)
        // The settings file must be the scratch one, whatever the caller's environment says.
        .env_remove("XDG_DATA_HOME")
        .output()
        .expect("run xvfb-run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the window failed: {stderr}");
    let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    // Frames were drawn and the net trained; how many depends on the machine, so any is enough.
    assert!(stats["frames"].as_u64().unwrap() > 1, "{stats}");
    assert!(stats["steps"].as_u64().unwrap() > 0, "the net trained while the window was open: {stats}");
    assert!(settings.with_extension("ron.bad").exists(), "the damaged settings are kept aside");
    let saved: std::collections::HashMap<String, String> =
        ron::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    let memory: eframe::egui::Memory = ron::from_str(&saved["egui"]).unwrap();
    assert!(memory.options.zoom_factor <= 4.0, "the window saved a sane zoom on exit");
}
