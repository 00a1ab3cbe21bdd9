//! The protocol between the window and the training worker: [`Command`]s in, [`WorkerEvent`]s out, and the
//! plain data they carry. Everything here is serialisable data — no burn, no egui, no data-set handles — so
//! the window can be driven by a fake in tests and a run could be recorded or replayed. Every change a command
//! makes takes effect at the next step; the worker answers it with [`WorkerEvent::Applied`] (carrying that
//! step's number) or [`WorkerEvent::Rejected`] (saying why), and [`Command::describe`] is the one place that
//! words a change for the log and the plots' markers.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::arch::ImageShape;
use crate::config::{Setting, TrainConfig};
use crate::diagnose::Hint;
use crate::snapshot::{Confusion, LayerInfo, MetricRow, RegressionEval, Snapshot};

/// What the UI (or a test, or the command line) asks the worker to do. Sent over an unbounded channel: sending
/// never blocks, and the worker drains every pending command before each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Stop stepping after the current step; the worker then waits for commands.
    Pause,
    /// Train continuously again.
    Resume,
    /// Run this many steps, then pause (from running or paused).
    Step(u32),
    /// Train continuously at this pace (steps asked for with [`Command::Step`] run at once).
    SetPace(Pace),
    /// Change a live setting from the next step on (learning rate, activation of a layer, …).
    Change(Setting),
    /// Use this test-set image as the probe for activation maps.
    SetProbe(usize),
    /// Load this image file (on the worker's loader thread) and use it as the probe instead of a test image.
    LoadProbeImage(PathBuf),
    /// Go back to the last healthy weights and optimiser state (kept every few steps in memory), e.g. after
    /// a divergence; with `halve_lr`, also halve the learning rate. The step counter keeps counting.
    RestoreHealthy {
        /// Also halve the learning rate.
        halve_lr: bool,
    },
    /// Throw the net away and build a new one from this configuration (its seed and spec).
    Reset(Box<TrainConfig>),
    /// Load other data (on the worker's loader thread; training goes on meanwhile), then build a new net for
    /// its input shape and class count from `config`. If it cannot be loaded or the net does not fit it, the
    /// current data and net stay.
    LoadData {
        /// What to load.
        request: DataRequest,
        /// What to build on it.
        config: Box<TrainConfig>,
    },
    /// Forget a data or probe load that is still under way (its result is dropped when it arrives).
    CancelLoad,
    /// Write a checkpoint of the run as it stands: to this file, or (`None`) into the run folder as
    /// `checkpoint-stepNNNNNN.ckpt`. Answered with [`WorkerEvent::Saved`] naming the file.
    SaveCheckpoint(Option<PathBuf>),
    /// Continue the run in this checkpoint file on the current data (its net replaces the running one, exactly
    /// where it stopped); refused, saying what differs, when it does not fit the data.
    OpenCheckpoint(PathBuf),
    /// Start an A/B comparison: arm B becomes an exact copy of the running net (weights, optimiser state, batch
    /// order, generators, step) with these changes, and from then on both arms train in lockstep on the same
    /// batches. A fork while arm B exists replaces it. Answered with [`WorkerEvent::ArmB`]`(Started)`.
    Fork(Vec<Setting>),
    /// Fork from a past step (one on the timeline): arm B is the run as it was after `step` (rebuilt from the
    /// nearest copy the worker kept before it, repeating the steps and live changes in between), with
    /// `changes`. It is announced at that step, catches up with arm A while training runs (A waits), and
    /// then both train in lockstep. At the run's own step this is [`Command::Fork`].
    ForkAt {
        /// The step after which the run is copied.
        step: u64,
        /// Arm B's changes, made at that step.
        changes: Vec<Setting>,
    },
    /// Change a live setting of arm B from its next step on (refused when there is no arm B).
    ChangeB(Setting),
    /// End an A/B comparison: closing B drops it; closing A makes B the run (its history goes on).
    CloseArm(Arm),
    /// Train the settings of the run (and of arm B, in an A/B run) from scratch with `seeds` other seeds, for
    /// `steps` steps each, on a thread of its own beside the live run, to draw the band their loss curves make.
    /// Answered by [`WorkerEvent::SeedRuns`] as each run finishes. A new request replaces one under way; 0 seeds
    /// stops it.
    RepeatOverSeeds {
        /// Other seeds to train with (each arm's settings with each).
        seeds: u32,
        /// Steps each run trains.
        steps: u64,
    },
    /// End the worker thread.
    Stop,
}

/// One arm of an A/B comparison: A is the run as it was, B its fork.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    #[default]
    A,
    B,
}

impl Arm {
    /// Both arms, A first.
    pub const BOTH: [Arm; 2] = [Arm::A, Arm::B];

    /// "A" or "B".
    pub fn name(self) -> &'static str {
        match self {
            Arm::A => "A",
            Arm::B => "B",
        }
    }
}

impl Command {
    /// A short description for messages and markers; `layer_names` are the names of the layers with weights.
    pub fn describe(&self, layer_names: &[String]) -> String {
        match self {
            Command::Pause => "pause".into(),
            Command::Resume => "resume".into(),
            Command::Step(n) => format!("step {n}"),
            Command::SetPace(pace) => format!("pace {pace}"),
            Command::Change(setting) => setting.label(layer_names),
            Command::SetProbe(index) => format!("probe image {index}"),
            Command::LoadProbeImage(path) => format!("probe {}", path.display()),
            Command::RestoreHealthy { halve_lr: true } => "restore and halve the rate".into(),
            Command::RestoreHealthy { halve_lr: false } => "restore".into(),
            Command::Reset(_) => "reset".into(),
            Command::LoadData { request, .. } => format!("load {}", request.path.display()),
            Command::CancelLoad => "cancel the load".into(),
            Command::SaveCheckpoint(Some(path)) => format!("save {}", path.display()),
            Command::SaveCheckpoint(None) => "save a checkpoint".into(),
            Command::OpenCheckpoint(path) => format!("open {}", path.display()),
            Command::Fork(changes) if changes.is_empty() => "fork an unchanged arm B".into(),
            Command::Fork(changes) => {
                let changes: Vec<String> = changes.iter().map(|s| s.label(layer_names)).collect();
                format!("fork arm B: {}", changes.join(", "))
            }
            Command::ForkAt { step, changes } => {
                let changes: Vec<String> = changes.iter().map(|s| s.label(layer_names)).collect();
                let with = if changes.is_empty() { String::new() } else { format!(": {}", changes.join(", ")) };
                format!("fork arm B from step {step}{with}")
            }
            Command::ChangeB(setting) => format!("B: {}", setting.label(layer_names)),
            Command::CloseArm(arm) => format!("close arm {}", arm.name()),
            Command::RepeatOverSeeds { seeds: 0, .. } => "stop repeating over seeds".into(),
            Command::RepeatOverSeeds { seeds, steps } => format!("repeat over {seeds} seeds, {steps} steps each"),
            Command::Stop => "stop".into(),
        }
    }
}

/// How fast the worker trains while running: as fast as it can, or at most a number of steps a second so a
/// learner can watch. Pacing never batches up: a late step is not followed by a burst of catch-up steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Pace {
    /// Every step as soon as the last one is done.
    Full,
    /// At most this many steps a second.
    PerSecond(f32),
}

/// The window's default pace: the first epoch of the embedded digits (250 steps of 32) takes about 8 s.
pub const WATCHABLE_PACE: Pace = Pace::PerSecond(30.0);

/// Slowest and fastest paced rate, in steps a second.
pub const PACE_RANGE: (f32, f32) = (0.5, 1000.0);

impl Pace {
    /// The time one step gets at this pace (`None`: no wait).
    pub fn interval(self) -> Option<std::time::Duration> {
        match self {
            Pace::Full => None,
            Pace::PerSecond(rate) => {
                std::time::Duration::try_from_secs_f32(1.0 / rate.clamp(PACE_RANGE.0, PACE_RANGE.1)).ok()
            }
        }
    }

    /// Parses `full` or a number of steps a second, e.g. `30` or `2.5`.
    pub fn parse(text: &str) -> Result<Pace, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("full") {
            return Ok(Pace::Full);
        }
        match text.parse::<f32>() {
            Ok(rate) if (PACE_RANGE.0..=PACE_RANGE.1).contains(&rate) => Ok(Pace::PerSecond(rate)),
            _ => Err(format!(
                "`{text}` is not a pace: give steps per second from {} to {}, or `full`",
                PACE_RANGE.0, PACE_RANGE.1
            )),
        }
    }
}

impl std::fmt::Display for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pace::Full => f.write_str("full speed"),
            Pace::PerSecond(rate) => write!(f, "{rate} steps/s"),
        }
    }
}

/// Data to load, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRequest {
    /// An IDX folder, CIFAR batches or an image folder.
    pub path: PathBuf,
    /// Image folders: resize every image to N×N (`None`: the most common size, at most 64).
    pub image_size: Option<usize>,
    /// Image folders: 1 for grey, 3 for RGB (`None`: from the images).
    pub channels: Option<usize>,
    /// Class count for label files whose labels are not 0..K−1 (`None`: from the data).
    pub classes: Option<usize>,
}

impl DataRequest {
    /// A request for `path` with every option left to the loader.
    pub fn path(path: impl Into<PathBuf>) -> DataRequest {
        DataRequest { path: path.into(), image_size: None, channels: None, classes: None }
    }
}

/// The data a run trains on, as its run folder records it (`data.json`), so that Play on a replay of the run
/// loads the same data again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataOrigin {
    /// The data set as the user named it (`None`: the embedded MNIST subset).
    pub request: Option<DataRequest>,
    /// Regression targets read from a file (`--targets`).
    #[serde(default)]
    pub targets: Option<PathBuf>,
    /// The seed its train/test split was drawn with (for data without a test part).
    pub split_seed: u64,
}

/// Whether the worker is stepping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// Training continuously.
    Running,
    /// Waiting for commands.
    Paused,
}

/// One test image for the probe picker, as bytes in the data's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// Channels × height × width.
    pub shape: ImageShape,
    /// C×H×W bytes, channel planes one after the other.
    pub pixels: Vec<u8>,
}

/// What a newly built net trains on and looks like: sent once per build (start, reset, new data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Layers input to output, the output layer last.
    pub layers: Vec<LayerInfo>,
    /// The configuration it was built from.
    pub config: TrainConfig,
    /// Input image shape.
    pub input: ImageShape,
    /// Class names, index = class.
    pub class_names: Vec<String>,
    /// Training examples.
    pub train_len: usize,
    /// Test examples.
    pub test_len: usize,
    /// Where the data came from.
    pub data_source: String,
    /// The first test images, for the probe picker.
    pub thumbnails: Vec<Thumbnail>,
    /// The step the net starts from: 0 for a new net; a resumed run's, or the step an arm B was forked at.
    #[serde(default)]
    pub step: u64,
}

/// One arm's settings trained from scratch with other seeds ([`Command::RepeatOverSeeds`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRuns {
    /// Whose settings.
    pub arm: Arm,
    /// The seeds asked for.
    pub asked: u32,
    /// Steps each run trains.
    pub steps: u64,
    /// The runs finished so far, in the order of their seeds.
    pub runs: Vec<SeedCurve>,
}

/// One finished run of [`SeedRuns`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedCurve {
    /// Its seed.
    pub seed: u64,
    /// The training loss of every step from 1 (shorter when it diverged).
    pub losses: Vec<f32>,
    /// Test accuracy (a regression's R²) after its last step.
    pub test: Option<f32>,
    /// The step at which it diverged and stopped, if it did.
    pub diverged_at: Option<u64>,
}

/// What the worker reports. Control events and metric rows are never dropped; a snapshot is only sent
/// once the previous one was received, so the newest always wins and an idle UI costs the worker nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerEvent {
    /// A net was built (at start, after every reset and on new data).
    Started(Box<RunInfo>),
    /// Logged steps, in order, since the last such event.
    Metrics(Vec<MetricRow>),
    /// The newest snapshot.
    Snapshot(Box<Snapshot>),
    /// What the diagnosis rules make of the recent steps, whenever it changes (empty: nothing looks wrong).
    Hints(Vec<Hint>),
    /// The worker started or stopped stepping.
    State {
        /// Running or paused.
        state: RunState,
        /// Steps taken so far.
        step: u64,
    },
    /// A command took effect; `effective_step` is the first step that uses it.
    Applied {
        /// The command as received.
        command: Command,
        /// The first step run with the change.
        effective_step: u64,
    },
    /// A command could not be applied (bad layer index, bad value, data that cannot be loaded, a spec that
    /// does not fit); nothing changed.
    Rejected {
        /// The command as received.
        command: Command,
        /// Why, and what would work.
        reason: String,
    },
    /// A data or probe load started (`Some`, naming what) or ended (`None`).
    Loading(Option<String>),
    /// Something worth telling the user that needs no action (what a load found and skipped).
    Notice(String),
    /// The runs of a [`Command::RepeatOverSeeds`] finished so far, for one arm's settings.
    SeedRuns(Box<SeedRuns>),
    /// The snapshot of `step` was recorded into the run's history at `offset` (the timeline reads it back from
    /// there, so the window keeps no old snapshots in memory).
    Recorded {
        /// The snapshot's step.
        step: u64,
        /// The history file.
        history: PathBuf,
        /// The record's byte offset.
        offset: u64,
    },
    /// A checkpoint was written (on request, automatically, or as the window closed).
    Saved {
        /// The step it holds.
        step: u64,
        /// The file.
        path: PathBuf,
    },
    /// Something failed but training goes on (a test evaluation or a statistic could not be computed): each
    /// distinct message is sent once.
    Warning {
        /// The step it happened at.
        step: u64,
        /// What failed and what it means.
        message: String,
    },
    /// The loss or a gradient was not finite, or the loss exploded, at `step`: the update was skipped and
    /// training paused.
    Diverged {
        /// The step whose update was skipped.
        step: u64,
        /// What went wrong, where, and what to try.
        message: String,
    },
    /// A step failed (a panic inside burn is caught here); training paused, the net is as before the step.
    Failed {
        /// The step that failed.
        step: u64,
        /// What went wrong.
        message: String,
    },
    /// GPU kernels are being compiled (`Some`, with what to tell the user) or are ready (`None`): the first
    /// steps on a GPU backend can take tens of seconds, which the window shows as a state, not a freeze.
    Warmup {
        /// What is going on, while it lasts.
        message: Option<String>,
    },
    /// The test split's confusion matrix, after every evaluation.
    Confusion(Box<Confusion>),
    /// A regression head's test-split predictions against targets, after every evaluation.
    Regression(Box<RegressionEval>),
    /// What happened in arm B of an A/B comparison, as the same events arm A sends: `Started` at the fork (the
    /// step it was taken at is the run's step), then its rows, snapshots, hints, divergence or failure.
    ArmB(Box<WorkerEvent>),
    /// An arm was closed; after A closes, B's events come as the run's own.
    ArmClosed(Arm),
    /// The worker thread ended.
    Stopped {
        /// Steps taken in all.
        step: u64,
    },
}

/// Called after events were sent, e.g. to wake the UI (`egui::Context::request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What the window needs from a worker: send a command, take the next event. Neither may block.
pub trait WorkerLink {
    /// Queues a command for the worker.
    fn send(&mut self, command: Command);
    /// The next pending event, if any.
    fn try_recv(&mut self) -> Option<WorkerEvent>;
}
