//! What the UI knows about the run, built only from [`WorkerEvent`]s: the layers, the latest snapshot, the
//! whole metric history, the hints, change markers and messages for the user. Changes the user asks for are
//! applied here ahead of the worker ([`TrainingView::request`]) and confirmed or undone when it answers.

use std::time::Instant;

use crate::app::series::RunSeries;
use crate::app::timeline::Timeline;
use crate::arch::{ImageShape, LayerSettings};
use crate::config::TrainConfig;
use crate::diagnose::Hint;
use crate::protocol::{Command, RunState, SeedRuns, Thumbnail, WorkerEvent};
use crate::snapshot::{LayerInfo, MetricRow, Snapshot};

/// Metric rows the view keeps (about 4 MB); older ones live on only in the decimated plot series.
pub const KEPT_ROWS: usize = 20_000;

/// How serious a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something worked (an export).
    Info,
    /// A request was refused; nothing changed.
    Warning,
    /// Training stopped: divergence or a failed step.
    Error,
}

/// A message shown in the banner until dismissed.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// How serious.
    pub severity: Severity,
    /// What happened and what to do.
    pub text: String,
    /// When it arrived (informational messages fade after a while).
    pub at: Instant,
}

/// How long an informational message stays in the banner.
pub const INFO_MESSAGE_SECS: f32 = 6.0;

/// What the user dismissed in the banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dismiss {
    /// The divergence notice.
    Divergence,
    /// The message at this index of [`TrainingView::messages`].
    Message(usize),
}

/// A step where the user changed something, drawn as a vertical line on the metric plots.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// The first step with the change.
    pub step: u64,
    /// What changed, e.g. "lr 0.1" or "conv1: sigmoid, conv2: sigmoid +4 more".
    pub label: String,
    /// Changes at this step, and how many of them the label lists.
    changes: usize,
    listed: usize,
}

/// The longest a marker's label grows by listing the changes made at its step.
const MARKER_LABEL_CHARS: usize = 40;

/// The UI's picture of the run.
#[derive(Debug)]
pub struct TrainingView {
    /// Layers input to output (with the UI's optimistic settings applied).
    pub layers: Vec<LayerInfo>,
    /// The configuration the net was built from, with live changes applied (requested ones at once).
    pub config: TrainConfig,
    /// The same, with only the changes the worker confirmed: what a refused change falls back to.
    pub confirmed: TrainConfig,
    /// The settings of the layers with weights as the worker confirmed them.
    pub(crate) confirmed_layers: Vec<LayerSettings>,
    /// Changes sent and not yet answered.
    unanswered: usize,
    /// Input image shape.
    pub input: ImageShape,
    /// Class names.
    pub class_names: Vec<String>,
    /// Training / test examples.
    pub train_len: usize,
    /// Test examples.
    pub test_len: usize,
    /// Where the data came from.
    pub data_source: String,
    /// The newest snapshot.
    pub snapshot: Option<Box<Snapshot>>,
    /// When it arrived.
    pub snapshot_at: Option<Instant>,
    /// Counts snapshots, so panels can tell a new one from the one they drew.
    pub snapshot_generation: u64,
    /// The newest metric rows (at most [`KEPT_ROWS`] plus a little): the hints, trends and status bar read
    /// these; the plots draw the whole run from [`TrainingView::series`], so memory stays flat on long runs.
    pub rows: Vec<MetricRow>,
    /// The run's first row (throughput over the whole run).
    pub first_row: Option<MetricRow>,
    /// Counts the nets announced, so panels can tell a new run from more rows of the same one.
    pub run_generation: u64,
    /// Running or paused.
    pub run_state: RunState,
    /// Steps taken (from the newest row, snapshot or state event).
    pub step: u64,
    /// Change markers since the last reset.
    pub markers: Vec<Marker>,
    /// Messages for the banner.
    pub messages: Vec<Message>,
    /// Whether the worker thread has ended.
    pub stopped: bool,
    /// The last divergence (step, message) until the net is restored or reset.
    pub diverged: Option<(u64, String)>,
    /// A reset was sent and its net has not been announced yet: layer indices would address the old net.
    pub reset_pending: bool,
    /// The first test images, for the probe picker.
    pub thumbnails: Vec<Thumbnail>,
    /// What the diagnosis rules say about the recent steps.
    pub hints: Vec<Hint>,
    /// A data or probe load under way, named.
    pub loading: Option<String>,
    /// What the worker is preparing (GPU kernels compiling), while it lasts.
    pub warmup: Option<String>,
    /// The rows' plot series, decimated as they arrive.
    pub series: RunSeries,
    /// Set by a restore until the next step's row arrives: the newest rows describe thrown-away weights.
    pub restored: Option<Restored>,
    /// The newest checkpoint written: its step and file.
    pub last_saved: Option<(u64, std::path::PathBuf)>,
    /// The recorded snapshots, and the one shown instead of the live one.
    pub timeline: Timeline,
    /// The folder of recorded runs the Run panel lists (`None`: no list).
    pub runs_dir: Option<std::path::PathBuf>,
    /// The folder the run training now records into, which the list leaves out.
    pub current_run: Option<std::path::PathBuf>,
    /// The test split's confusion matrix at the last evaluation.
    pub confusion: Option<Box<crate::snapshot::Confusion>>,
    /// A regression head's scatter, residuals and pinned share at the last evaluation.
    pub regression: Option<Box<crate::snapshot::RegressionEval>>,
    /// Arm B of an A/B comparison (its own view, fed with the worker's `ArmB` events), while one runs.
    pub arm_b: Option<Box<TrainingView>>,
    /// The step arm B was forked at.
    pub fork_step: Option<u64>,
    /// The run's settings (index 0) and arm B's (1) repeated over other seeds, as far as they got.
    pub seed_runs: [Option<Box<SeedRuns>>; 2],
}

/// What the window shows between a restore and the next step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restored {
    /// The first step taken from the restored weights.
    pub next_step: u64,
    /// Loss and running train accuracy of the restored weights, once the worker's snapshot of them arrives.
    pub figures: Option<(f32, f32)>,
}

impl TrainingView {
    /// An empty view waiting for the worker's first events.
    pub fn new(config: TrainConfig) -> Self {
        TrainingView {
            layers: Vec::new(),
            confirmed: config.clone(),
            confirmed_layers: Vec::new(),
            unanswered: 0,
            config,
            input: ImageShape { channels: 1, height: 28, width: 28 },
            class_names: Vec::new(),
            train_len: 0,
            test_len: 0,
            data_source: String::new(),
            snapshot: None,
            snapshot_at: None,
            snapshot_generation: 0,
            rows: Vec::new(),
            first_row: None,
            run_generation: 0,
            run_state: RunState::Paused,
            step: 0,
            markers: Vec::new(),
            messages: Vec::new(),
            stopped: false,
            diverged: None,
            reset_pending: false,
            thumbnails: Vec::new(),
            hints: Vec::new(),
            loading: None,
            warmup: None,
            series: RunSeries::default(),
            restored: None,
            last_saved: None,
            timeline: Timeline::default(),
            runs_dir: None,
            current_run: None,
            confusion: None,
            regression: None,
            arm_b: None,
            fork_step: None,
            seed_runs: [None, None],
        }
    }

    /// The configuration with every live change, including each hidden layer's current activation.
    pub fn live_config(&self) -> TrainConfig {
        let activations: Vec<_> = self
            .layers
            .iter()
            .filter(|l| l.weighted_index.is_some() && !l.output)
            .filter_map(|l| l.settings.map(|s| s.activation))
            .collect();
        let mut config = self.config.clone();
        if !activations.is_empty() {
            config.layer_activations = activations;
        }
        config
    }

    /// Forgets what the user dismissed.
    pub fn dismiss(&mut self, dismissed: Option<Dismiss>) {
        match dismissed {
            Some(Dismiss::Divergence) => self.diverged = None,
            Some(Dismiss::Message(index)) if index < self.messages.len() => {
                self.messages.remove(index);
            }
            _ => {}
        }
    }

    /// Lets informational messages fade after [`INFO_MESSAGE_SECS`].
    pub fn expire_messages(&mut self) {
        self.messages.retain(|m| m.severity != Severity::Info || m.at.elapsed().as_secs_f32() < INFO_MESSAGE_SECS);
    }

    /// Adds a message to the banner.
    pub fn message(&mut self, severity: Severity, text: impl Into<String>) {
        self.messages.push(Message { severity, text: text.into(), at: Instant::now() });
    }

    /// Names of the layers with weights, input to output.
    pub fn weighted_names(&self) -> Vec<String> {
        self.layers.iter().filter(|l| l.weighted_index.is_some()).map(|l| l.name.clone()).collect()
    }

    /// The layer with weights at `index`.
    pub fn weighted_layer(&self, index: usize) -> Option<&LayerInfo> {
        self.layers.iter().find(|l| l.weighted_index == Some(index))
    }

    /// Takes in one event from the worker.
    pub fn apply(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Started(info) => self.started(*info),
            WorkerEvent::Metrics(rows) => self.take_rows(rows),
            WorkerEvent::Snapshot(snapshot) => {
                self.step = self.step.max(snapshot.step);
                // The worker's settings are the truth; changes still on their way stay shown.
                self.confirmed_layers = snapshot.layers.iter().map(|l| l.settings).collect();
                if self.unanswered == 0 {
                    self.show_confirmed_layers();
                }
                // The worker answers a restore, then sends the restored net's snapshot.
                if let Some(restored) = self.restored.as_mut() {
                    restored.figures = Some((snapshot.loss, snapshot.train_accuracy));
                }
                self.snapshot_at = Some(Instant::now());
                if self.timeline.shown.is_some() {
                    // An old snapshot is on show: the live one waits.
                    self.timeline.parked = Some(snapshot);
                } else {
                    self.snapshot = Some(snapshot);
                    self.snapshot_generation += 1;
                }
            }
            WorkerEvent::Hints(hints) => self.hints = hints,
            WorkerEvent::Loading(what) => self.loading = what,
            WorkerEvent::Notice(text) => self.message(Severity::Info, text),
            WorkerEvent::Recorded { step, history, offset } => self.timeline.recorded(step, history, offset),
            WorkerEvent::Saved { step, path } => {
                self.message(Severity::Info, format!("saved step {step} to {}", path.display()));
                self.last_saved = Some((step, path));
            }
            WorkerEvent::Warning { step, message } => {
                self.message(Severity::Warning, format!("step {step}: {message}"))
            }
            WorkerEvent::State { state, step } => {
                if let Some(b) = self.arm_b.as_mut() {
                    b.run_state = state;
                    // Training goes on: B's divergence is behind it (as Play clears A's banner's cause).
                    if state == RunState::Running {
                        b.diverged = None;
                    }
                }
                self.run_state = state;
                self.step = self.step.max(step);
            }
            WorkerEvent::Confusion(confusion) => self.confusion = Some(confusion),
            WorkerEvent::Regression(eval) => self.regression = Some(eval),
            WorkerEvent::ArmB(event) => self.arm_b_event(*event),
            WorkerEvent::ArmClosed(arm) => self.arm_closed(arm),
            WorkerEvent::SeedRuns(runs) => {
                let index = usize::from(runs.arm == crate::protocol::Arm::B);
                self.seed_runs[index] = Some(runs);
            }
            event @ (WorkerEvent::Applied { command: Command::ChangeB(_), .. }
            | WorkerEvent::Rejected { command: Command::ChangeB(_), .. }) => {
                if !self.answered_arm_b(&event)
                    && let WorkerEvent::Rejected { command, reason } = event
                {
                    self.message(Severity::Warning, format!("{}: {reason}", command.describe(&self.weighted_names())));
                }
            }
            WorkerEvent::Applied { command, effective_step } => self.applied(&command, effective_step),
            WorkerEvent::Rejected { command, reason } => {
                if matches!(command, Command::Reset(_) | Command::LoadData { .. }) {
                    self.reset_pending = false;
                }
                if matches!(command, Command::Change(_)) {
                    self.unanswered = self.unanswered.saturating_sub(1);
                }
                self.message(Severity::Warning, format!("{}: {reason}", command.describe(&self.weighted_names())));
                // Undo what was applied ahead of the worker: the confirmed values are the truth.
                self.config = self.confirmed.clone();
                self.show_confirmed_layers();
            }
            WorkerEvent::Diverged { step, message } => {
                // The banner says what went wrong; hints about the steps before it would only distract.
                self.hints.clear();
                self.diverged = Some((step, message));
            }
            WorkerEvent::Failed { message, .. } => self.message(Severity::Error, message),
            WorkerEvent::Warmup { message } => self.warmup = message,
            WorkerEvent::Stopped { .. } => self.stopped = true,
        }
    }

    /// Logged steps: into the plots' series and the window of kept rows.
    fn take_rows(&mut self, rows: Vec<MetricRow>) {
        if let Some(last) = rows.last() {
            self.step = self.step.max(last.step);
            if self.restored.is_some_and(|r| last.step >= r.next_step) {
                self.restored = None;
            }
        }
        for row in &rows {
            self.series.push(row);
        }
        if self.first_row.is_none() {
            self.first_row = rows.first().cloned();
        }
        self.rows.extend(rows);
        // Drop the oldest rows in chunks, so this is rare and cheap.
        if self.rows.len() > KEPT_ROWS + KEPT_ROWS / 8 {
            self.rows.drain(..self.rows.len() - KEPT_ROWS);
        }
    }

    /// A new net: everything shown so far belonged to the old one.
    fn started(&mut self, info: crate::protocol::RunInfo) {
        self.confirmed_layers = info.layers.iter().filter_map(|l| l.settings).collect();
        self.layers = info.layers;
        self.confirmed = info.config.clone();
        self.config = info.config;
        self.unanswered = 0;
        self.input = info.input;
        self.class_names = info.class_names;
        self.train_len = info.train_len;
        self.test_len = info.test_len;
        self.data_source = info.data_source;
        self.thumbnails = info.thumbnails;
        self.seed_runs = [None, None];
        self.rows.clear();
        self.first_row = None;
        self.run_generation += 1;
        self.series = RunSeries::default();
        self.markers.clear();
        self.hints.clear();
        self.snapshot = None;
        self.confusion = None;
        self.regression = None;
        self.step = 0;
        self.diverged = None;
        self.restored = None;
        self.timeline.clear();
        self.reset_pending = false;
    }

    /// Shows the recorded snapshot `index` of the timeline in every panel (the live one waits aside).
    pub fn show_recorded(&mut self, index: usize, snapshot: Box<Snapshot>) {
        if self.timeline.shown.is_none() {
            self.timeline.parked = self.snapshot.take();
        }
        self.timeline.shown = Some(index);
        self.snapshot = Some(snapshot);
        self.snapshot_generation += 1;
    }

    /// The newest live snapshot, even while the timeline shows an old one.
    pub fn live_snapshot(&self) -> Option<&Snapshot> {
        if self.timeline.shown.is_some() { self.timeline.parked.as_deref() } else { self.snapshot.as_deref() }
    }

    /// Back to the live snapshot.
    pub fn go_live(&mut self) {
        if self.timeline.shown.take().is_some() {
            if let Some(live) = self.timeline.parked.take() {
                self.snapshot = Some(live);
            }
            self.snapshot_generation += 1;
        }
    }

    /// The settings of the layers with weights as shown now, input to output.
    pub fn layer_settings(&self) -> Vec<LayerSettings> {
        self.layers.iter().filter_map(|l| l.settings).collect()
    }

    fn set_layer_settings(&mut self, settings: &[LayerSettings]) {
        for (info, settings) in self.layers.iter_mut().filter(|l| l.settings.is_some()).zip(settings) {
            info.settings = Some(*settings);
        }
    }

    fn show_confirmed_layers(&mut self) {
        let confirmed = self.confirmed_layers.clone();
        self.set_layer_settings(&confirmed);
    }

    /// Applies what `command` asks for ahead of the worker, so the window shows it at once; the worker's
    /// answer confirms it or undoes it. Called for every command the window sends.
    pub fn request(&mut self, command: &Command) {
        match command {
            Command::Change(setting) => {
                let mut layers = self.layer_settings();
                // A change the rules refuse is still sent: the worker's refusal explains it to the user.
                if setting.apply(&mut self.config, &mut layers).is_ok() {
                    self.set_layer_settings(&layers);
                }
                self.unanswered += 1;
            }
            Command::SetProbe(index) => self.config.probe_index = *index,
            Command::Reset(_) | Command::LoadData { .. } => self.reset_pending = true,
            Command::ChangeB(_) => self.request_arm_b(command),
            _ => {}
        }
    }

    fn applied(&mut self, command: &Command, effective_step: u64) {
        let label = match command {
            Command::Change(setting) => {
                self.unanswered = self.unanswered.saturating_sub(1);
                let mut layers = self.confirmed_layers.clone();
                if setting.apply(&mut self.confirmed, &mut layers).is_ok() {
                    self.confirmed_layers = layers;
                }
                Some(setting.label(&self.weighted_names()))
            }
            Command::SetProbe(index) => {
                self.config.probe_index = *index;
                self.confirmed.probe_index = *index;
                None
            }
            Command::RestoreHealthy { halve_lr } => {
                self.diverged = None;
                self.restored = Some(Restored { next_step: effective_step, figures: None });
                if *halve_lr {
                    self.confirmed.lr /= 2.0;
                    self.config.lr = self.confirmed.lr;
                }
                Some(if *halve_lr { format!("restored, lr {:.3e}", self.config.lr) } else { "restored".to_string() })
            }
            // A new repeat replaces the runs of the last one.
            Command::RepeatOverSeeds { seeds, .. } if *seeds > 0 => {
                self.seed_runs = [None, None];
                None
            }
            // A new run on new data starts from step 1: nothing to mark.
            _ => None,
        };
        if let Some(label) = label {
            self.mark(effective_step, label);
        }
    }

    /// Adds a change marker; changes that take effect at the same step share one line and one label
    /// ("conv1: relu, conv2: relu"; past [`MARKER_LABEL_CHARS`] the rest is counted, not listed).
    fn mark(&mut self, step: u64, label: String) {
        match self.markers.last_mut().filter(|m| m.step == step) {
            Some(marker) => {
                marker.changes += 1;
                let fits = marker.label.chars().count() + label.chars().count() + 2 <= MARKER_LABEL_CHARS;
                if marker.changes == marker.listed + 1 && fits {
                    marker.label = format!("{}, {label}", marker.label);
                    marker.listed += 1;
                } else {
                    let listed = marker.label.split(" +").next().unwrap_or_default().to_owned();
                    marker.label = format!("{listed} +{} more", marker.changes - marker.listed);
                }
            }
            None => self.markers.push(Marker { step, label, changes: 1, listed: 1 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_keeps_a_bounded_window_of_rows_and_the_whole_run_in_the_series() {
        let mut view = TrainingView::new(TrainConfig::default());
        let row = |step: u64| MetricRow {
            step,
            epoch: 0,
            loss: 1.0,
            train_accuracy: 0.5,
            test_accuracy: 0.5,
            test_step: 0,
            lr: 0.01,
            grad_norms: vec![1.0],
            elapsed_secs: step as f64,
            step_secs: step as f64,
            stats: Vec::new(),
            train_regression: None,
            test_regression: None,
        };
        for chunk in 0..30u64 {
            view.apply(WorkerEvent::Metrics((chunk * 10_000 + 1..=(chunk + 1) * 10_000).map(row).collect()));
            assert!(view.rows.len() <= KEPT_ROWS + KEPT_ROWS / 8 + 10_000);
        }
        assert_eq!(view.rows.last().map(|r| r.step), Some(300_000));
        assert_eq!(view.first_row.as_ref().map(|r| r.step), Some(1), "the run's start is remembered");
        let points = view.series.loss.points();
        assert_eq!(points.first().map(|p| p[0]), Some(1.0), "the plot still starts at step 1");
        assert!(points.len() <= 4 * crate::app::series::PLOT_BUCKETS + 2);
    }

    #[test]
    fn changes_at_one_step_share_a_marker_and_a_long_list_is_counted() {
        let mut view = TrainingView::new(TrainConfig::default());
        for layer in 0..6 {
            let setting = crate::config::Setting::Activation { layer, activation: crate::arch::Activation::Relu };
            view.apply(WorkerEvent::Applied { command: Command::Change(setting), effective_step: 40 });
        }
        view.apply(WorkerEvent::Applied {
            command: Command::Change(crate::config::Setting::LearningRate(0.5)),
            effective_step: 41,
        });
        let labels: Vec<(u64, &str)> = view.markers.iter().map(|m| (m.step, m.label.as_str())).collect();
        assert_eq!(labels, [(40, "layer 0: relu, layer 1: relu +4 more"), (41, "lr 5.000e-1")]);
    }

    #[test]
    fn a_refused_change_falls_back_to_the_confirmed_value() {
        let mut view = TrainingView::new(TrainConfig::default());
        // The window applies the rate ahead of the worker; the worker confirms one rate and refuses another.
        let change = |lr| Command::Change(crate::config::Setting::LearningRate(lr));
        view.request(&change(0.5));
        assert_eq!(view.config.lr, 0.5, "shown at once");
        view.apply(WorkerEvent::Applied { command: change(0.5), effective_step: 3 });
        assert_eq!(view.markers.len(), 1);
        assert_eq!(view.markers[0].step, 3);
        view.request(&change(2.0));
        assert_eq!(view.config.lr, 2.0);
        view.apply(WorkerEvent::Rejected { command: change(2.0), reason: "must be positive".into() });
        assert_eq!(view.config.lr, 0.5, "back to the last confirmed rate");
        assert_eq!(view.messages.len(), 1);
        assert!(view.messages[0].text.contains("must be positive"));
    }
}
