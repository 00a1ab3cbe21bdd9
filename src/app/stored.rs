//! The settings file eframe restores before the first frame (egui's memory, the window's geometry, the app's
//! `State`): checked and repaired before the window opens, so a value out of range — written by hand, by an
//! older build, or by a crash — never takes the start-up down. `--fresh` moves the file aside instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use eframe::egui;

/// eframe's name for the app, which names its folder in the user's data directory.
pub const APP_ID: &str = "convscope";
/// The zoom factors the window accepts from the file (egui's own settings offer 0.1–10; winit fails to open a
/// window when a huge zoom scales its size beyond what the screen allows).
const ZOOM_RANGE: std::ops::RangeInclusive<f32> = 0.25..=4.0;
/// Window sizes and positions beyond this many points are not a real screen's.
const MAX_GEOMETRY: f64 = 100_000.0;
/// A settings file larger than this is not one this program wrote (egui's memory is a few hundred KiB at most).
const MAX_SETTINGS_BYTES: u64 = 16 << 20;
/// egui runs at most this many layout passes a frame; more only slows every frame.
const MAX_PASSES: usize = 4;

/// The settings file eframe reads (`~/.local/share/convscope/app.ron` on Linux).
pub fn settings_path() -> Option<PathBuf> {
    eframe::storage_dir(APP_ID).map(|dir| dir.join("app.ron"))
}

/// Makes the settings file at `path` safe to start from, returning what was changed, for the user. `fresh`
/// moves it aside (the window then starts from the defaults and saves a new one on exit); otherwise values
/// out of range are clamped or reset. The original of a changed file is kept beside it.
pub fn check_settings(path: &Path, fresh: bool) -> Vec<String> {
    if !path.exists() {
        return Vec::new();
    }
    if fresh {
        let kept = unused_name(path, "ron.before-fresh");
        return match std::fs::rename(path, &kept) {
            Ok(()) => vec![format!("started fresh; the previous settings are kept in {}", kept.display())],
            Err(error) => vec![format!("could not move the saved settings aside ({error}); they were not used")],
        };
    }
    if std::fs::metadata(path).is_ok_and(|metadata| metadata.len() > MAX_SETTINGS_BYTES) {
        return set_aside(path, "it is far larger than any settings file this program writes");
    }
    let text = match crate::files::read_regular(path).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        _ => return set_aside(path, "it could not be read as text"),
    };
    let Ok(mut entries) = ron::from_str::<HashMap<String, String>>(&text) else {
        return set_aside(path, "it is not a settings file this version can read");
    };
    let mut changes = Vec::new();
    if let Some(memory) = entries.get("egui") {
        match repair_memory(memory) {
            Ok(None) => {}
            Ok(Some((repaired, what))) => {
                entries.insert("egui".into(), repaired);
                changes.extend(what);
            }
            Err(what) => {
                entries.remove("egui");
                changes.push(what);
            }
        }
    }
    if entries.get("window").is_some_and(|window| !geometry_is_sane(window)) {
        entries.remove("window");
        changes.push("the saved window size or position was off any screen; the default size is used".into());
    }
    if changes.is_empty() {
        return changes;
    }
    let kept = unused_name(path, "ron.bad");
    let saved = std::fs::copy(path, &kept)
        .map_err(|error| error.to_string())
        .and_then(|_| ron::to_string(&entries).map_err(|error| error.to_string()))
        .and_then(|text| crate::files::write_atomically(path, text.as_bytes()).map_err(|error| error.to_string()));
    let tail = match saved {
        Ok(()) => format!(" (the original is kept in {})", kept.display()),
        Err(error) => format!(" (the repaired file could not be written: {error})"),
    };
    changes.into_iter().map(|change| format!("saved settings: {change}{tail}")).collect()
}

/// `path` with `extension`, or with `extension.2`, `.3`… when that is taken: a kept copy is never overwritten.
fn unused_name(path: &Path, extension: &str) -> PathBuf {
    let first = path.with_extension(extension);
    (2..1000)
        .map(|n| path.with_extension(format!("{extension}.{n}")))
        .find(|candidate| !candidate.exists())
        .filter(|_| first.exists())
        .unwrap_or(first)
}

/// Moves an unreadable settings file aside, so the window starts from the defaults.
fn set_aside(path: &Path, why: &str) -> Vec<String> {
    let kept = unused_name(path, "ron.bad");
    match std::fs::rename(path, &kept) {
        Ok(()) => vec![format!("the saved settings were not used: {why}; the file is kept as {}", kept.display())],
        Err(error) => vec![format!("the saved settings were not used: {why} (moving it aside failed: {error})")],
    }
}

/// egui's memory with its options clamped: `Ok(None)` when nothing needed changing, `Err` (reset it) when it
/// does not parse.
fn repair_memory(text: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let mut memory: egui::Memory =
        ron::from_str(text).map_err(|_| "egui's saved state could not be read; it was reset".to_owned())?;
    let options = &mut memory.options;
    let mut changes = Vec::new();
    let zoom = options.zoom_factor;
    if !zoom.is_finite() || !ZOOM_RANGE.contains(&zoom) {
        options.zoom_factor = if zoom.is_finite() { zoom.clamp(*ZOOM_RANGE.start(), *ZOOM_RANGE.end()) } else { 1.0 };
        changes.push(format!("zoom factor {zoom} is out of range; set to {}", options.zoom_factor));
    }
    if options.max_passes.get() > MAX_PASSES {
        options.max_passes = std::num::NonZeroUsize::MIN.saturating_add(MAX_PASSES - 1);
        changes.push(format!("at most {MAX_PASSES} layout passes a frame"));
    }
    // Any other number that is not finite (tessellation, click distances…) resets the options it sits in.
    let value = ron::to_string(&*options).map_err(|error| error.to_string())?;
    if !numbers_within(&ron::from_str::<ron::Value>(&value).map_err(|error| error.to_string())?, f64::MAX) {
        let zoom_factor = memory.options.zoom_factor;
        memory.options = egui::Options::default();
        memory.options.zoom_factor = zoom_factor;
        changes.push("drawing and input options held a number that is not finite; reset".into());
    }
    if changes.is_empty() {
        return Ok(None);
    }
    Ok(Some((ron::to_string(&memory).map_err(|error| error.to_string())?, changes)))
}

/// Whether every number in the saved window geometry is finite and of screen size.
fn geometry_is_sane(text: &str) -> bool {
    ron::from_str::<ron::Value>(text).is_ok_and(|value| numbers_within(&value, MAX_GEOMETRY))
}

/// Whether every number in `value` is finite and no larger than `limit`.
fn numbers_within(value: &ron::Value, limit: f64) -> bool {
    match value {
        ron::Value::Number(number) => number.into_f64().is_finite() && number.into_f64().abs() <= limit,
        ron::Value::Seq(items) => items.iter().all(|item| numbers_within(item, limit)),
        ron::Value::Map(map) => {
            map.iter().all(|(key, value)| numbers_within(key, limit) && numbers_within(value, limit))
        }
        ron::Value::Option(Some(inner)) => numbers_within(inner, limit),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("convscope-stored-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("app.ron")
    }

    fn write(path: &Path, zoom: f32, window: &str) {
        let mut memory = egui::Memory::default();
        memory.options.zoom_factor = zoom;
        let mut entries = HashMap::new();
        entries.insert("egui".to_owned(), ron::to_string(&memory).unwrap());
        entries.insert("window".to_owned(), window.to_owned());
        entries.insert("app".to_owned(), "(config: (lr: 0.5))".to_owned());
        std::fs::write(path, ron::to_string(&entries).unwrap()).unwrap();
    }

    fn read(path: &Path) -> HashMap<String, String> {
        ron::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn out_of_range_settings_are_clamped_and_the_original_kept() {
        let path = scratch("zoom");
        write(&path, 1000.0, "(inner_size_points: Some((x: 1e12, y: 800.0)))");
        let changes = check_settings(&path, false);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes[0].contains("zoom factor 1000 is out of range; set to 4"), "{changes:?}");
        let entries = read(&path);
        let memory: egui::Memory = ron::from_str(&entries["egui"]).unwrap();
        assert_eq!(memory.options.zoom_factor, 4.0);
        assert!(!entries.contains_key("window"));
        assert_eq!(entries["app"], "(config: (lr: 0.5))", "the app's own settings are left alone");
        assert!(path.with_extension("ron.bad").exists());
        // A sane file is left exactly as it is.
        let before = std::fs::read(&path).unwrap();
        assert!(check_settings(&path, false).is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_garbled_file_is_set_aside_and_fresh_moves_it() {
        let path = scratch("garbled");
        std::fs::write(&path, "{\"egui\": \"(options: (zoom_factor: 1e400".as_bytes()).unwrap();
        let changes = check_settings(&path, false);
        assert!(changes[0].contains("not a settings file"), "{changes:?}");
        assert!(!path.exists() && path.with_extension("ron.bad").exists());

        write(&path, 1.0, "()");
        let changes = check_settings(&path, true);
        assert!(changes[0].starts_with("started fresh"), "{changes:?}");
        assert!(!path.exists() && path.with_extension("ron.before-fresh").exists());
        assert!(check_settings(&path, false).is_empty(), "no file, nothing to say");
        // A second --fresh keeps the first kept copy.
        write(&path, 2.0, "()");
        check_settings(&path, true);
        assert!(path.with_extension("ron.before-fresh").exists() && path.with_extension("ron.before-fresh.2").exists());
    }
}
