//! The training worker thread: owns a [`Trainer`], drains [`Command`]s before every step, and reports
//! through [`WorkerEvent`]s without ever waiting for the receiver.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use crate::data::DataSplit;
use crate::snapshot::MetricRow;
use crate::train::cadence::SnapshotCadence;
use crate::train::command::{Command, RunState, SharedData, WorkerEvent};
use crate::train::config::{BackendKind, TrainConfig};
use crate::train::trainer::{StepOutcome, TrainError, Trainer};

/// How often batched metric rows are sent while training runs.
pub const METRICS_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The worker evaluates the test split at most once per this many seconds of training per second of
/// evaluation (so evaluation costs at most ≈ 4 % of the time), and no more often than `test_every` steps.
pub const EVAL_TIME_BUDGET_FACTOR: f64 = 25.0;

/// Called after events were sent, e.g. to wake the UI (`egui::Context::request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Everything the worker thread starts from.
pub(crate) struct WorkerSetup {
    pub config: TrainConfig,
    pub data: Arc<DataSplit>,
    pub backend: BackendKind,
    pub start_paused: bool,
    pub commands: Receiver<Command>,
    pub events: Sender<WorkerEvent>,
    pub snapshot_unread: Arc<AtomicBool>,
    pub waker: Waker,
}

struct Worker {
    trainer: Option<Trainer>,
    data: Arc<DataSplit>,
    backend: BackendKind,
    running: bool,
    steps_left: u32,
    rows: Vec<MetricRow>,
    last_flush: Instant,
    snapshots: SnapshotCadence,
    events: Sender<WorkerEvent>,
    snapshot_unread: Arc<AtomicBool>,
    waker: Waker,
    /// Step and training seconds at the last evaluation, and how long it took.
    last_eval: (u64, f64, f64),
    /// A GPU net was built and has not finished its first step: kernels are still being compiled.
    warming_up: bool,
}

/// Text of a caught panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

impl Worker {
    fn send(&self, event: WorkerEvent) {
        // A receiver that is gone means the UI closed; the Stop that follows ends this thread.
        self.events.send(event).ok();
    }

    fn step_count(&self) -> u64 {
        self.trainer.as_ref().map_or(0, Trainer::step_count)
    }

    fn flush(&mut self) {
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            self.send(WorkerEvent::Metrics(rows));
        }
        self.last_flush = Instant::now();
        (self.waker)();
    }

    fn set_running(&mut self, running: bool) {
        self.running = running;
        let active = self.trainer.is_some() && (running || self.steps_left > 0);
        let state = if active { RunState::Running } else { RunState::Paused };
        self.flush();
        self.send(WorkerEvent::State { state, step: self.step_count() });
    }

    /// Builds a trainer; on success announces it and replaces the current one, on failure keeps the current
    /// one and returns why.
    fn build(&mut self, config: TrainConfig) -> Result<(), String> {
        self.build_on(config, self.data.clone())
    }

    /// [`Worker::build`] on `data`, which becomes the worker's data when the net could be built.
    fn build_on(&mut self, config: TrainConfig, data: Arc<DataSplit>) -> Result<(), String> {
        if self.backend.is_gpu() {
            self.warm_up(true);
        }
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<Trainer, TrainError> {
            let mut trainer = Trainer::new(config, data.clone(), self.backend)?;
            trainer.set_manual_evaluation();
            trainer.evaluate()?;
            Ok(trainer)
        }));
        match result {
            Ok(Ok(trainer)) => {
                // The first evaluation pays one-off warm-up costs: let the next one come at `test_every` and
                // set the time budget from its duration.
                self.last_eval = (0, 0.0, 0.0);
                let data = trainer.data();
                self.send(WorkerEvent::Started {
                    layers: trainer.layer_infos(),
                    config: Box::new(trainer.config().clone()),
                    input: data.train.shape(),
                    class_names: data.train.class_names().to_vec(),
                    train_len: data.train.len(),
                    test_len: data.test.len(),
                    data_source: data.train.source().to_string(),
                    data: SharedData(data.clone()),
                });
                self.data = data.clone();
                self.trainer = Some(trainer);
                self.snapshots.restart();
                self.send_refresh();
                Ok(())
            }
            Ok(Err(error)) => {
                self.warm_up(false);
                Err(format!("could not build the net: {error}"))
            }
            Err(payload) => {
                self.warm_up(false);
                Err(format!("building the net panicked: {}", panic_message(payload.as_ref())))
            }
        }
    }

    /// Announces that GPU kernels are being compiled (`true`) or are ready (`false`).
    fn warm_up(&mut self, active: bool) {
        if self.warming_up == active {
            return;
        }
        self.warming_up = active;
        let message = active.then(|| {
            format!(
                "compiling GPU kernels for the {} backend: the first steps take a while (about 40 s on some GPUs)",
                self.backend.name()
            )
        });
        self.send(WorkerEvent::Warmup { message });
        (self.waker)();
    }

    /// Sends a snapshot of the net as it is now (after a build, or a change while paused), so the window
    /// shows the effect of a change without a training step.
    fn send_refresh(&mut self) {
        let Some(trainer) = self.trainer.as_ref() else { return };
        match catch_unwind(AssertUnwindSafe(|| trainer.refresh_snapshot())) {
            Ok(Ok(snapshot)) => {
                self.snapshot_unread.store(true, Ordering::Release);
                self.send(WorkerEvent::Snapshot(Box::new(snapshot)));
            }
            Ok(Err(error)) => self.send(WorkerEvent::Failed { step: self.step_count(), message: error.to_string() }),
            Err(payload) => self.send(WorkerEvent::Failed {
                step: self.step_count(),
                message: format!("taking a snapshot panicked: {}", panic_message(payload.as_ref())),
            }),
        }
    }

    /// Applies one command; returns `false` for [`Command::Stop`].
    fn handle(&mut self, command: Command) -> bool {
        let outcome: Result<(), String> = match (&command, self.trainer.as_mut()) {
            (Command::Stop, _) => return false,
            (Command::Pause, _) => {
                self.steps_left = 0;
                self.set_running(false);
                return true;
            }
            (Command::Resume, _) => {
                self.set_running(true);
                return true;
            }
            (Command::Step(0), _) => Err("step needs at least one step".to_string()),
            (Command::Step(n), _) => {
                // Steps asked for while stepping add up: two quick presses of S are two steps.
                self.steps_left = self.steps_left.saturating_add(*n);
                self.set_running(false);
                return true;
            }
            (Command::Reset(config), _) => match fits(config, &self.data) {
                Ok(()) => {
                    self.flush();
                    self.build((**config).clone())
                }
                Err(reason) => Err(reason),
            },
            (Command::LoadData { data, config }, _) => match fits(config, &data.0) {
                Ok(()) => {
                    self.flush();
                    self.build_on((**config).clone(), data.0.clone())
                }
                Err(reason) => Err(format!("{}: the net does not fit this data: {reason}", data.0.train.source())),
            },
            (_, None) => Err("there is no net yet: reset with a valid configuration first".to_string()),
            (Command::SetLearningRate(lr), Some(t)) => t.set_learning_rate(*lr),
            (Command::SetMomentum(m), Some(t)) => t.set_momentum(*m),
            (Command::SetWeightDecay(w), Some(t)) => t.set_weight_decay(*w),
            (Command::SetBatchSize(b), Some(t)) => t.set_batch_size(*b),
            (Command::SetOptimizer(kind), Some(t)) => {
                t.set_optimizer(*kind);
                Ok(())
            }
            (Command::SetActivation { layer, activation }, Some(t)) => {
                t.update_layer(*layer, |s| s.activation = *activation)
            }
            (Command::SetBias { layer, enabled }, Some(t)) => t.update_layer(*layer, |s| s.bias = *enabled),
            (Command::SetBatchNorm { layer, enabled }, Some(t)) => t.update_layer(*layer, |s| s.batch_norm = *enabled),
            (Command::SetProbe(index), Some(t)) => t.set_probe(*index),
            (Command::SetProbeImage { pixels, name }, Some(t)) => t.set_probe_image(pixels.clone(), name.clone()),
            (Command::RestoreHealthy { halve_lr }, Some(t)) => match t.restore_healthy() {
                Some(_) if *halve_lr => t.set_learning_rate(t.config().lr / 2.0),
                Some(_) => Ok(()),
                None => Err(format!(
                    "no healthy state is kept yet: one is taken every {} steps while training is healthy",
                    crate::train::trainer::HEALTHY_EVERY
                )),
            },
        };
        let applied = outcome.is_ok();
        let changes_the_picture = matches!(
            command,
            Command::SetActivation { .. }
                | Command::SetBias { .. }
                | Command::SetBatchNorm { .. }
                | Command::SetProbe(_)
                | Command::SetProbeImage { .. }
                | Command::RestoreHealthy { .. }
        );
        let event = match outcome {
            Ok(()) => WorkerEvent::Applied { command, effective_step: self.step_count() + 1 },
            Err(reason) => WorkerEvent::Rejected { command, reason },
        };
        self.send(event);
        if applied && changes_the_picture && !self.running && self.steps_left == 0 {
            self.send_refresh();
        }
        (self.waker)();
        true
    }

    /// Runs one step and reports it; pauses on divergence or failure.
    fn run_step(&mut self, snapshot_interval: Duration) {
        let Some(trainer) = self.trainer.as_mut() else { return };
        let last_of_a_count = self.steps_left == 1;
        let due = self.snapshots.due(snapshot_interval);
        // Only take a snapshot when the last one was read: the newest wins, and an idle UI costs nothing.
        let capture = last_of_a_count || (due && !self.snapshot_unread.load(Ordering::Acquire));
        let attempted = trainer.step_count() + 1;
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| trainer.step(capture)));
        let took = started.elapsed();
        if self.steps_left > 0 {
            self.steps_left -= 1;
        }
        match outcome {
            Ok(Ok(StepOutcome::Updated { mut row, snapshot })) => {
                self.snapshots.step_done(took, snapshot.is_some());
                self.warm_up(false);
                if let Some(accuracy) = self.evaluate_if_due() {
                    row.test_accuracy = accuracy;
                }
                self.rows.push(row);
                if let Some(mut snapshot) = snapshot {
                    snapshot.cost_secs = self.snapshots.cost().as_secs_f32();
                    snapshot.gap_secs = self.snapshots.gap(snapshot_interval).as_secs_f32();
                    self.snapshot_unread.store(true, Ordering::Release);
                    self.flush();
                    self.send(WorkerEvent::Snapshot(snapshot));
                    (self.waker)();
                }
                if last_of_a_count && !self.running {
                    self.set_running(false);
                }
            }
            Ok(Ok(StepOutcome::Diverged { step, message })) => {
                self.steps_left = 0;
                self.flush();
                self.send(WorkerEvent::Diverged { step, message });
                self.set_running(false);
            }
            Ok(Err(error)) => self.fail(attempted, format!("{error}; the weights are as before the step")),
            Err(payload) => self.fail(
                attempted,
                format!("the step panicked: {}; the weights are as before the step", panic_message(payload.as_ref())),
            ),
        }
        if self.last_flush.elapsed() >= METRICS_FLUSH_INTERVAL {
            self.flush();
        }
    }

    /// Evaluates the test split when `test_every` steps and the time budget have both passed.
    fn evaluate_if_due(&mut self) -> Option<f32> {
        let trainer = self.trainer.as_mut()?;
        let test_every = trainer.config().test_every;
        let (at_step, at_secs, took) = self.last_eval;
        let steps_due = test_every > 0 && trainer.step_count() >= at_step + test_every;
        let time_due = trainer.step_secs() - at_secs >= EVAL_TIME_BUDGET_FACTOR * took;
        if !(steps_due && time_due) {
            return None;
        }
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| trainer.evaluate())) {
            Ok(Ok(accuracy)) => {
                self.last_eval = (trainer.step_count(), trainer.step_secs(), started.elapsed().as_secs_f64());
                Some(accuracy)
            }
            Ok(Err(error)) => {
                let (step, secs) = (trainer.step_count(), trainer.step_secs());
                self.last_eval = (step, secs, started.elapsed().as_secs_f64());
                self.fail(step, format!("evaluating the test split failed: {error}"));
                None
            }
            Err(payload) => {
                let (step, secs) = (trainer.step_count(), trainer.step_secs());
                self.last_eval = (step, secs, started.elapsed().as_secs_f64());
                self.fail(step, format!("evaluating the test split panicked: {}", panic_message(payload.as_ref())));
                None
            }
        }
    }

    fn fail(&mut self, step: u64, message: String) {
        self.steps_left = 0;
        self.flush();
        self.send(WorkerEvent::Failed { step, message: format!("{message}; training paused") });
        self.set_running(false);
    }
}

/// The worker thread's body.
pub(crate) fn run(setup: WorkerSetup) {
    let WorkerSetup { config, data, backend, start_paused, commands, events, snapshot_unread, waker } = setup;
    let mut worker = Worker {
        trainer: None,
        data,
        backend,
        running: false,
        steps_left: 0,
        rows: Vec::new(),
        last_flush: Instant::now(),
        snapshots: SnapshotCadence::default(),
        events,
        snapshot_unread,
        waker,
        last_eval: (0, 0.0, 0.0),
        warming_up: false,
    };
    if let Err(message) = worker.build(config) {
        worker.send(WorkerEvent::Failed { step: 0, message });
    }
    worker.set_running(!start_paused);
    'work: loop {
        let active = worker.trainer.is_some() && (worker.running || worker.steps_left > 0);
        if !active {
            worker.flush();
            // Idle: wait for the next command (this waits on the UI's wishes, never on its frames).
            match commands.recv() {
                Ok(command) => {
                    if !worker.handle(command) {
                        break 'work;
                    }
                }
                Err(_) => break 'work,
            }
        }
        loop {
            match commands.try_recv() {
                Ok(command) => {
                    if !worker.handle(command) {
                        break 'work;
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break 'work,
            }
        }
        if worker.trainer.is_some() && (worker.running || worker.steps_left > 0) {
            let interval = worker
                .trainer
                .as_ref()
                .map_or(Duration::ZERO, |t| Duration::from_millis(t.config().snapshot_interval_ms));
            worker.run_step(interval);
        }
    }
    worker.flush();
    let step = worker.step_count();
    worker.send(WorkerEvent::Stopped { step });
    (worker.waker)();
}

/// Whether `config` is valid and its spec fits `data`'s input shape and class count.
fn fits(config: &TrainConfig, data: &DataSplit) -> Result<(), String> {
    config.validate()?;
    config.plan(data.train.shape(), data.train.classes()).map(|_| ()).map_err(|e| e.to_string())
}
