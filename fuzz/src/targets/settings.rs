//! The window's stored-settings checker (`src/app/stored.rs`, `check_settings`): eframe's `app.ron` parsed as
//! RON, egui's memory decoded, clamped and re-encoded, the window geometry checked, the file repaired or moved
//! aside. It works on a path: each input is written as `app.ron` in an emptied folder under /dev/shm.
//! A checked file must be one the window can start from: checking it again finds nothing to change.

use convscope::app::stored::check_settings;

/// The harness: one-time set-up, then a closure run on every input.
pub fn setup() -> impl FnMut(&[u8]) + std::panic::RefUnwindSafe {
    let dir = crate::scratch_dir("settings");
    let path = dir.join("app.ron");
    move |data: &[u8]| {
        crate::clear_dir(&dir);
        std::fs::write(&path, data).expect("the scratch file could not be written");
        let changes = check_settings(&path, false);
        if !changes.is_empty() && path.exists() {
            let again = check_settings(&path, false);
            assert!(again.is_empty(), "a repaired settings file still needs repair: {changes:?} then {again:?}");
        }
    }
}
