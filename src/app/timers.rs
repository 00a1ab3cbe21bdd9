//! The window's timed actions: `--screenshot` after a delay, `--quit-after` with `--frame-stats`, the
//! frame statistics they write, and `--frame-log`'s line every minute for soak runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eframe::egui;
use serde::Serialize;

use crate::export::{self, ExportError};

/// Frame statistics written by `--frame-stats`.
#[derive(Debug, Serialize)]
pub struct FrameStats {
    /// Frames measured.
    pub frames: usize,
    /// Median egui CPU time per frame, ms.
    pub cpu_ms_p50: f32,
    /// 95th percentile, ms.
    pub cpu_ms_p95: f32,
    /// Median CPU time of the UI thread per frame (it excludes waiting, e.g. for a software rasteriser), ms.
    pub thread_cpu_ms_p50: f32,
    /// 95th percentile of the same, ms.
    pub thread_cpu_ms_p95: f32,
    /// Training steps during the run.
    pub steps: u64,
    /// Training images per second over the time spent in training steps (what `convscope bench` measures).
    pub images_per_sec: f64,
    /// Images per second over all compute time, test evaluations included.
    pub images_per_sec_with_evaluation: f64,
}

/// When to take the screenshot and when to close.
#[derive(Default)]
pub struct Timers {
    /// Where and when to save a screenshot (then close).
    pub screenshot: Option<(PathBuf, Instant)>,
    requested: bool,
    done: Arc<AtomicBool>,
    /// When to close the window.
    pub quit_at: Option<Instant>,
    /// Where to write the frame statistics on closing.
    pub frame_stats: Option<PathBuf>,
    /// Where and how often to append a line of frame statistics (`--frame-log`, for soak runs).
    pub frame_log: Option<FrameLog>,
}

/// `--frame-log`: a JSON line of the frames since the last line, every `every`.
pub struct FrameLog {
    /// The file the lines are appended to.
    pub path: PathBuf,
    /// Time between lines.
    pub every: Duration,
    /// When the next line is due.
    pub next_at: Instant,
    /// The first frame the next line covers.
    pub from_frame: usize,
}

impl Timers {
    /// Whether the window closes this frame (so the frame statistics are due).
    pub fn quit_due(&self) -> bool {
        self.quit_at.is_some_and(|at| Instant::now() >= at)
    }

    /// The first frame of the frame log's next line, when that line is due.
    pub fn frame_log_due(&self) -> Option<usize> {
        self.frame_log.as_ref().filter(|log| Instant::now() >= log.next_at).map(|log| log.from_frame)
    }

    /// Appends `stats` to the frame log; the next line starts at frame `next_from`.
    pub fn log_frames(&mut self, stats: FrameStats, next_from: usize) {
        let Some(log) = self.frame_log.as_mut() else { return };
        log.next_at += log.every;
        log.from_frame = next_from;
        let appended = serde_json::to_string(&stats).map_err(std::io::Error::other).and_then(|line| {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log.path)?;
            file.write_all(format!("{line}\n").as_bytes())
        });
        if let Err(error) = appended {
            eprintln!("convscope: could not append to {}: {error}", log.path.display());
            self.frame_log = None;
        }
    }

    /// Takes the screenshot or closes the window when due; `stats` are written on closing.
    pub fn tick(&mut self, ctx: &egui::Context, stats: Option<FrameStats>) {
        if let Some((path, at)) = &self.screenshot {
            if Instant::now() >= *at && !self.requested {
                self.requested = true;
                let path = path.clone();
                let done = self.done.clone();
                let waker = ctx.clone();
                ctx.request_screenshot(move |image| {
                    if let Err(error) = save_screenshot(&image, &path) {
                        eprintln!("convscope: {error}");
                    }
                    done.store(true, Ordering::Release);
                    waker.request_repaint();
                });
            }
            if self.done.load(Ordering::Acquire) {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            // The callback does not repaint by itself: keep frames coming until it has run.
            ctx.request_repaint_after(Duration::from_millis(50));
        }
        if self.quit_at.is_some() {
            if let (Some(stats), Some(path)) = (stats, &self.frame_stats) {
                let written = serde_json::to_string(&stats)
                    .map_err(std::io::Error::other)
                    .and_then(|json| std::fs::write(path, json));
                if let Err(error) = written {
                    eprintln!("convscope: could not write {}: {error}", path.display());
                }
            }
            if self.quit_due() {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }
}

fn save_screenshot(image: &egui::ColorImage, path: &Path) -> Result<(), ExportError> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or(ExportError::Nothing("the screenshot's pixel count does not match its size"))?;
    let rgb = image::DynamicImage::ImageRgba8(buffer).to_rgb8();
    export::write_file(path, &export::encode_png(&rgb, "the screenshot")?)
}
