//! The two message types between the window and the training worker: [`Command`] in, [`WorkerEvent`] out.
//! Every change a command makes takes effect at the next step, and the worker answers it with
//! [`WorkerEvent::Applied`] carrying that step's number.

use serde::{Deserialize, Serialize};

use crate::arch::Activation;
use crate::data::{DataSplit, ImageShape};
use crate::snapshot::{LayerInfo, MetricRow, Snapshot};
use crate::train::config::{OptimizerKind, TrainConfig};

/// What the UI (or a test, or the CLI) asks the worker to do. Sent over an unbounded channel: sending never
/// blocks, and the worker drains every pending command before each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Stop stepping after the current step; the worker then waits for commands.
    Pause,
    /// Train continuously again.
    Resume,
    /// Run this many steps, then pause (from running or paused).
    Step(u32),
    /// Use this learning rate from the next step on.
    SetLearningRate(f64),
    /// Use this momentum factor from the next step on (keeps the velocity).
    SetMomentum(f64),
    /// Use this L2 weight decay from the next step on.
    SetWeightDecay(f64),
    /// Use this many examples per step from the next step on.
    SetBatchSize(usize),
    /// Switch the update rule; the new optimiser starts with fresh state (velocities, moments).
    SetOptimizer(OptimizerKind),
    /// Switch the activation of a layer with weights (index among them, input to output). The weights
    /// stay exactly as they are.
    SetActivation {
        /// Index among the layers with weights.
        layer: usize,
        /// The new nonlinearity.
        activation: Activation,
    },
    /// Switch a layer's bias on or off; its value is kept while it is off.
    SetBias {
        /// Index among the layers with weights.
        layer: usize,
        /// Whether the bias is added.
        enabled: bool,
    },
    /// Switch a hidden layer's batch-norm on or off; its parameters are kept while it is off.
    SetBatchNorm {
        /// Index among the layers with weights.
        layer: usize,
        /// Whether batch-norm runs before the activation.
        enabled: bool,
    },
    /// Use this test-set image as the probe for activation maps.
    SetProbe(usize),
    /// Go back to the last healthy weights and optimiser state (kept every few steps in memory), e.g. after
    /// a divergence; with `halve_lr`, also halve the learning rate. The step counter keeps counting.
    RestoreHealthy {
        /// Also halve the learning rate.
        halve_lr: bool,
    },
    /// Throw the net away and build a new one from this configuration (its seed and spec).
    Reset(Box<TrainConfig>),
    /// Train on other data from now on: build a new net for its input shape and class count from this
    /// configuration. If the net cannot be built for it, the current data and net stay.
    #[serde(skip)]
    LoadData {
        /// The loaded data (the UI loads it on a thread of its own; the worker never waits for a disk).
        data: SharedData,
        /// What to build.
        config: Box<TrainConfig>,
    },
    /// Use this image (C×H×W bytes in the data's shape, e.g. a file the user dropped) as the probe instead
    /// of a test image; `label` is its class when known.
    #[serde(skip)]
    SetProbeImage {
        /// The pixels, converted like the training data.
        pixels: Vec<u8>,
        /// What it shows, for display (e.g. the file name).
        name: String,
    },
    /// End the worker thread.
    Stop,
}

/// A data set shared between the UI and the worker. Two handles are equal when they point at the same data.
#[derive(Debug, Clone)]
pub struct SharedData(pub std::sync::Arc<DataSplit>);

impl PartialEq for SharedData {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Whether the worker is stepping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// Training continuously.
    Running,
    /// Waiting for commands.
    Paused,
}

/// What the worker reports. Control events and metric rows are never dropped; a snapshot is only sent
/// once the previous one was received, so the newest always wins and an idle UI costs the worker nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// A net was built (at start and after every reset): its layers and data.
    Started {
        /// Layers input to output, the output layer last.
        layers: Vec<LayerInfo>,
        /// The configuration it was built from.
        config: Box<TrainConfig>,
        /// Input image shape.
        input: ImageShape,
        /// Class names, index = class.
        class_names: Vec<String>,
        /// Training examples.
        train_len: usize,
        /// Test examples.
        test_len: usize,
        /// Where the data came from.
        data_source: String,
        /// The data itself, for thumbnails and probes.
        data: SharedData,
    },
    /// Logged steps, in order, since the last such event.
    Metrics(Vec<MetricRow>),
    /// The newest snapshot.
    Snapshot(Box<Snapshot>),
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
    /// A command could not be applied (bad layer index, bad value, a spec that does not fit); nothing changed.
    Rejected {
        /// The command as received.
        command: Command,
        /// Why, and what would work.
        reason: String,
    },
    /// The loss or a gradient was not finite at `step`: the update was skipped and training paused.
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
    /// The worker thread ended.
    Stopped {
        /// Steps taken in all.
        step: u64,
    },
}
