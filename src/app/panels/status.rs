//! The status bar: training speed, the UI's own frame time, how old the snapshot on screen is and what
//! snapshots cost training.

use std::collections::VecDeque;
use std::time::Instant;

use eframe::egui::{self, RichText};

use crate::app::outbox::Outbox;
use crate::app::panels::Panel;
use crate::app::view::TrainingView;
use crate::snapshot::SNAPSHOT_BUDGET;

/// Frames whose CPU time is kept for the percentile.
pub const FRAME_WINDOW: usize = 300;

/// Frame-time statistics and the status line.
#[derive(Default)]
pub struct StatusBar {
    frame_cpu_ms: VecDeque<f32>,
    /// Every frame's CPU time since start (for `--frame-stats`).
    pub all_frames_ms: Vec<f32>,
    /// The UI thread's own CPU time from one frame to the next (layout, tessellation, painting and swap,
    /// without time spent waiting), for `--frame-stats`.
    pub thread_cpu_ms: Vec<f32>,
    thread_clock: Option<cpu_time::ThreadTime>,
    /// When the window saw which step, over the last few seconds: the rate a learner watches.
    seen: VecDeque<(Instant, u64)>,
}

/// Seconds of wall time the watched rate is measured over.
const WATCHED_SECS: f32 = 3.0;

/// The `p`-th percentile (0..=100) of `values`, or `None` when empty.
pub fn percentile(values: impl IntoIterator<Item = f32>, p: f32) -> Option<f32> {
    let mut sorted: Vec<f32> = values.into_iter().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f32::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() - 1) as f32).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

impl StatusBar {
    /// Records the CPU time egui spent on the previous frame.
    pub fn record_frame(&mut self, cpu_seconds: Option<f32>) {
        let now = cpu_time::ThreadTime::try_now().ok();
        if let (Some(previous), Some(now)) = (self.thread_clock, now) {
            self.thread_cpu_ms.push(now.duration_since(previous).as_secs_f32() * 1000.0);
        }
        self.thread_clock = now;
        if let Some(seconds) = cpu_seconds {
            let ms = seconds * 1000.0;
            if self.frame_cpu_ms.len() == FRAME_WINDOW {
                self.frame_cpu_ms.pop_front();
            }
            self.frame_cpu_ms.push_back(ms);
            self.all_frames_ms.push(ms);
        }
    }

    /// Steps per second of wall time over the last few seconds, as the window saw them arrive (at a pace, the
    /// pace; paused, zero).
    fn watched_rate(&mut self, view: &TrainingView) -> Option<f64> {
        let now = Instant::now();
        if self.seen.back().is_none_or(|&(_, step)| step != view.step) {
            self.seen.push_back((now, view.step));
        }
        while self.seen.front().is_some_and(|(at, _)| now.duration_since(*at).as_secs_f32() > WATCHED_SECS) {
            self.seen.pop_front();
        }
        let &(first_at, first_step) = self.seen.front()?;
        let span = now.duration_since(first_at).as_secs_f64();
        (span > 0.5).then(|| view.step.saturating_sub(first_step) as f64 / span)
    }

    /// Steps per second over the last two seconds of training time.
    pub fn steps_per_sec(view: &TrainingView) -> Option<f64> {
        let last = view.rows.last()?;
        let window_start = last.elapsed_secs - 2.0;
        let first = view.rows.iter().rev().take_while(|r| r.elapsed_secs >= window_start).last()?;
        let seconds = last.elapsed_secs - first.elapsed_secs;
        (seconds > 0.0).then(|| (last.step - first.step) as f64 / seconds)
    }
}

impl Panel for StatusBar {
    /// Draws the status line.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, _out: &mut Outbox) {
        ui.horizontal(|ui| {
            // What the learner watches (the pace, when there is one) and, on hover, what a step costs.
            let label = match self.watched_rate(view) {
                Some(rate) => {
                    let each = if view.arm_b.is_some() { " in each of 2 arms" } else { "" };
                    format!("{rate:.0} steps/s · {:.0} images/s{each}", rate * view.config.batch_size as f64)
                }
                None => "— steps/s".to_owned(),
            };
            let compute = Self::steps_per_sec(view).map_or_else(String::new, |rate| {
                format!("Training computes {rate:.0} steps/s when it runs flat out (time spent in steps only).")
            });
            ui.label(label).on_hover_text(format!("Steps the window saw arrive over the last {WATCHED_SECS:.0} s. {compute}"));
            ui.separator();
            let p50 = percentile(self.frame_cpu_ms.iter().copied(), 50.0).unwrap_or(0.0);
            let p95 = percentile(self.frame_cpu_ms.iter().copied(), 95.0).unwrap_or(0.0);
            ui.label(format!("UI frame {p50:.1} ms (p95 {p95:.1})")).on_hover_text("CPU time egui spends per frame (layout, tessellation, painting), median and 95th percentile over the last 300 frames.");
            ui.separator();
            let age = view.snapshot_at.map(|t| Instant::now().duration_since(t).as_secs_f32());
            ui.label(match age {
                Some(age) => format!("snapshot {:.1} s old", age),
                None => "no snapshot yet".into(),
            });
            // What watching costs the live run, also while the timeline shows an old snapshot.
            if let Some(snapshot) = view.live_snapshot().filter(|s| s.gap_secs > 0.0) {
                let (cost_ms, gap_ms) = (snapshot.cost_secs * 1000.0, snapshot.gap_secs * 1000.0);
                ui.label(format!("{cost_ms:.1} ms every {gap_ms:.0} ms ({:.1} %)", 100.0 * cost_ms / gap_ms))
                    .on_hover_text(format!(
                        "What watching costs training: each snapshot's step takes this much longer than a plain \
                         step, and one is taken this often. Costly snapshots (big nets, a GPU) come less often, so \
                         that they never take more than {:.0} % of training time.",
                        100.0 * SNAPSHOT_BUDGET
                    ));
            }
            ui.separator();
            ui.label(RichText::new(format!("{} · {} train / {} test", view.data_source, view.train_len, view.test_len)).small());
        });
    }
}
