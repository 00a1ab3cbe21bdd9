//! The training worker thread: owns a [`Driver`], drains [`Command`]s before every step, hands loads to its
//! loader threads, and reports through [`WorkerEvent`]s without ever waiting for the receiver.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use crate::config::{BackendKind, TrainConfig};
use crate::data::DataSplit;
use crate::diagnose::Hint;
use crate::history::{HISTORY_FILE, Recorded, Recorder};
use crate::protocol::{Command, DataRequest, Pace, RunState, Waker, WorkerEvent};
use crate::snapshot::MetricRow;
use crate::train::cadence::SnapshotCadence;
use crate::train::driver::{Driven, Driver, Evaluation};
use crate::train::error::{TrainError, catch_panic};
use crate::train::loader::LoadResult;

mod arms;
mod checkpoints;
mod handle;
mod loads;
mod options;
mod refused;
mod repeats;
mod rewind;

use arms::ArmB;
use checkpoints::Saving;
pub use checkpoints::{AUTOSAVE_INTERVAL, AUTOSAVES_KEPT};
pub use handle::WorkerHandle;
use loads::PendingLoad;
pub use options::WorkerOptions;
use refused::Refused;

/// How often batched metric rows are sent while training runs.
pub const METRICS_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Test images sent with every new net for the probe picker.
pub const PROBE_THUMBNAILS: usize = 24;

/// What reaches the worker thread: the UI's commands and its own loader threads' results.
enum Inbox {
    Command(Command),
    Loaded { id: u64, result: LoadResult },
}

struct Worker {
    driver: Option<Driver>,
    /// Arm B of an A/B comparison: a fork stepping in lockstep after `driver`.
    arm_b: Option<ArmB>,
    /// A fork asked for while data was loading: made once the load is done.
    fork_after_load: Option<Vec<crate::config::Setting>>,
    data: Arc<DataSplit>,
    backend: BackendKind,
    running: bool,
    steps_left: u32,
    rows: Vec<MetricRow>,
    last_flush: Instant,
    snapshots: SnapshotCadence,
    events: Sender<WorkerEvent>,
    inbox: Sender<Inbox>,
    snapshot_unread: Arc<AtomicBool>,
    waker: Waker,
    /// A GPU net was built and has not finished its first step: kernels are still being compiled.
    warming_up: bool,
    load: Option<PendingLoad>,
    loads_started: u64,
    pace: Pace,
    /// When the next paced step may start.
    next_step_at: Option<Instant>,
    /// The hints last sent, and whether rows arrived since they were computed.
    hints: (Vec<Hint>, bool),
    /// Where and when checkpoints are written.
    saving: Saving,
    /// The run's history file (with a run folder); behind a cell because every send records.
    recorder: RefCell<Option<Recorder>>,
    /// The checkpoint to start from, until the start (or, with data pending, until the data has arrived).
    resume: Option<PathBuf>,
    /// The data to load before the first net is built, until it is asked for.
    data_pending: Option<DataRequest>,
    /// A fault test's panic, for the first net built.
    panic_at_step: Option<u64>,
    /// Copies of the run kept for forks from a past step.
    rewind: rewind::Rewind,
    /// The run's settings being repeated over other seeds, if they are.
    seed_repeat: Option<crate::train::seeds::SeedRepeat>,
}

impl Worker {
    fn new(
        data: Arc<DataSplit>,
        options: &WorkerOptions,
        inbox: Sender<Inbox>,
        events: Sender<WorkerEvent>,
        snapshot_unread: Arc<AtomicBool>,
    ) -> Worker {
        Worker {
            driver: None,
            arm_b: None,
            fork_after_load: None,
            data,
            backend: options.backend,
            running: false,
            steps_left: 0,
            rows: Vec::new(),
            last_flush: Instant::now(),
            snapshots: SnapshotCadence::default(),
            events,
            inbox,
            snapshot_unread,
            waker: options.waker.clone(),
            warming_up: false,
            load: None,
            loads_started: 0,
            pace: options.pace,
            next_step_at: None,
            hints: (Vec::new(), false),
            saving: Saving::new(options.run_dir.clone(), options.autosave, options.data_origin.clone()),
            // Snapshots thinned as the run grows, so an hour costs little more disk than ten minutes.
            recorder: RefCell::new(options.run_dir.as_ref().map(|dir| Recorder::new(dir.join(HISTORY_FILE), true))),
            resume: options.resume.clone(),
            data_pending: options.data_origin.as_ref().and_then(|o| o.request.clone()).filter(|_| options.data_pending),
            panic_at_step: options.panic_at_step,
            rewind: rewind::Rewind::default(),
            seed_repeat: None,
        }
    }

    /// The thread's body: build, then step while active and wait for commands while idle.
    fn run(mut self, config: TrainConfig, start_paused: bool, inbox: &Receiver<Inbox>) {
        let built = match self.resume.take() {
            // The data comes first: the net is built (or resumed) when it has arrived.
            resume if self.data_pending.is_some() => {
                self.load_pending_data(config, resume);
                Ok(())
            }
            // Straight from the checkpoint: no fresh net is built first (and none trains if it cannot be used).
            Some(path) => self.open_checkpoint(&path).map_err(|e| e.to_string()),
            None => self.build(config, self.data.clone()).map_err(|e| e.to_string()),
        };
        if let Err(message) = built {
            self.send(WorkerEvent::Failed { step: 0, message });
        }
        self.set_running(!start_paused);
        'work: loop {
            if !self.active() {
                self.flush();
                // Idle: wait for the next message (this waits on the UI's wishes, never on its frames).
                let Ok(message) = inbox.recv() else { break 'work };
                if !self.receive(message) {
                    break 'work;
                }
            }
            loop {
                match inbox.try_recv() {
                    Ok(message) => {
                        if !self.receive(message) {
                            break 'work;
                        }
                    }
                    Err(TryRecvError::Disconnected) => break 'work,
                    Err(TryRecvError::Empty) => break,
                }
            }
            if !self.active() || self.step_arm_b_alone() {
                continue;
            }
            // At a pace, wait for the step's turn — still answering every message meanwhile.
            if let Some(wait) = self.paced_wait() {
                match inbox.recv_timeout(wait) {
                    Ok(message) => {
                        if !self.receive(message) {
                            break 'work;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break 'work,
                }
            }
            if let Some(interval) = self.pace.interval().filter(|_| self.running) {
                // The next step's turn counts from this one's start: a slow step is never followed by a burst.
                self.next_step_at = Some(Instant::now() + interval);
            }
            self.run_step();
            self.autosave_if_due();
        }
        self.save_before_closing();
        self.flush();
        let step = self.step_count();
        self.send(WorkerEvent::Stopped { step });
        (self.waker)();
    }

    /// How long the next step must still wait for its turn at the pace (`None`: it may run now). Steps asked
    /// for one by one run at once.
    fn paced_wait(&self) -> Option<Duration> {
        if !self.running {
            return None;
        }
        let wait = self.next_step_at?.checked_duration_since(Instant::now())?;
        (!wait.is_zero()).then_some(wait)
    }

    /// Sends `event` to the window, recording it into the run's history first.
    fn send(&self, event: WorkerEvent) {
        let follow_up = self.recorder.borrow_mut().as_mut().and_then(|recorder| match recorder.record(&event) {
            // The timeline learns where a snapshot went; other records need no word.
            Recorded::At(offset) => match &event {
                WorkerEvent::Snapshot(s) => {
                    Some(WorkerEvent::Recorded { step: s.step, history: recorder.path().to_path_buf(), offset })
                }
                _ => None,
            },
            Recorded::Failed(error) => {
                Some(WorkerEvent::Warning { step: self.step_count(), message: error.to_string() })
            }
            Recorded::Skipped => None,
        });
        // A receiver that is gone means the UI closed; the Stop that follows ends this thread.
        self.events.send(event).ok();
        if let Some(follow_up) = follow_up {
            self.events.send(follow_up).ok();
        }
    }

    fn active(&self) -> bool {
        self.driver.is_some() && (self.running || self.steps_left > 0 || self.arm_b_running_up())
    }

    fn step_count(&self) -> u64 {
        self.driver.as_ref().map_or(0, |d| d.trainer().step_count())
    }

    /// Sends the batched rows (and the hints, when they changed), then wakes the UI.
    fn flush(&mut self) {
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            self.send(WorkerEvent::Metrics(rows));
        }
        if self.hints.1
            && let Some(driver) = self.driver.as_mut()
        {
            let hints = driver.hints();
            if hints != self.hints.0 {
                self.send(WorkerEvent::Hints(hints.clone()));
            }
            self.hints = (hints, false);
        }
        self.flush_arm_b();
        self.last_flush = Instant::now();
        (self.waker)();
    }

    fn set_running(&mut self, running: bool) {
        self.running = running;
        let state = if self.active() { RunState::Running } else { RunState::Paused };
        self.flush();
        self.send(WorkerEvent::State { state, step: self.step_count() });
    }

    /// Builds a driver on `data`; on success announces it and replaces the current one (and `data` becomes the
    /// worker's data), on failure keeps the current one and returns why.
    fn build(&mut self, config: TrainConfig, data: Arc<DataSplit>) -> Result<(), TrainError> {
        if self.backend.is_gpu() {
            self.warm_up(true);
        }
        let driver = match Driver::new(config, data.clone(), self.backend, Evaluation::Budgeted) {
            Ok(driver) => driver,
            Err(error) => {
                self.warm_up(false);
                return Err(error);
            }
        };
        self.install(driver, data);
        Ok(())
    }

    /// Makes `driver` (on `data`) the running net and announces it.
    fn install(&mut self, mut driver: Driver, data: Arc<DataSplit>) {
        if let Some(step) = self.panic_at_step.take() {
            driver.trainer_mut().inject_panic_at(step);
        }
        self.drop_arm_b();
        self.rewind.restart(&driver);
        // Repeats of the old net's settings describe another net.
        self.seed_repeat = None;
        self.send(WorkerEvent::Started(Box::new(driver.trainer().run_info(PROBE_THUMBNAILS))));
        if let Err(message) = self.saving.restart(driver.trainer().step_count()) {
            self.send(WorkerEvent::Warning { step: driver.trainer().step_count(), message });
        }
        self.data = data;
        self.driver = Some(driver);
        self.hints = (Vec::new(), false);
        self.snapshots.restart();
        self.send_evaluation();
        self.send_refresh();
    }

    /// Sends what the last evaluation found besides its figures — the confusion matrix, or a regression's
    /// scatter — rows first, so it never runs ahead of them.
    fn send_evaluation(&mut self) {
        let Some(driver) = self.driver.as_ref() else { return };
        let events = driver.trainer().evaluation_events();
        if events.is_empty() {
            return;
        }
        self.flush();
        for event in events {
            self.send(event);
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
        let Some(driver) = self.driver.as_ref() else { return };
        match catch_panic("taking a snapshot", || driver.trainer().refresh_snapshot()) {
            Ok(snapshot) => {
                self.snapshot_unread.store(true, Ordering::Release);
                self.send(WorkerEvent::Snapshot(Box::new(snapshot)));
            }
            Err(error) => self.send(WorkerEvent::Failed { step: self.step_count(), message: error.to_string() }),
        }
    }

    /// Takes one inbox message; returns `false` for [`Command::Stop`].
    fn receive(&mut self, message: Inbox) -> bool {
        match message {
            Inbox::Command(Command::Stop) => false,
            Inbox::Command(command) => {
                self.handle(command);
                true
            }
            Inbox::Loaded { id, result } => {
                match self.load.take() {
                    Some(load) if load.id == id => self.loaded(load.command, result),
                    // A cancelled or superseded load: its result is dropped.
                    other => self.load = other,
                }
                true
            }
        }
    }

    /// Applies one command and answers it with `Applied` or `Rejected` (loads answer when they finish).
    fn handle(&mut self, command: Command) {
        let outcome = match &command {
            Command::Pause => {
                self.steps_left = 0;
                self.set_running(false);
                return;
            }
            Command::Resume => return self.set_running(true),
            Command::SetPace(pace) => {
                self.pace = *pace;
                self.next_step_at = None;
                Ok(())
            }
            Command::Step(0) => Err(Refused::NoSteps),
            Command::Step(n) => {
                // Steps asked for while stepping add up: two quick presses of S are two steps.
                self.steps_left = self.steps_left.saturating_add(*n);
                return self.set_running(false);
            }
            Command::LoadData { .. } | Command::LoadProbeImage(_) => return self.start_load(command),
            Command::CancelLoad => self.cancel_load(),
            Command::SaveCheckpoint(path) => self.save_requested(path.as_deref()),
            Command::OpenCheckpoint(path) => {
                self.flush();
                let path = path.clone();
                self.open_checkpoint(&path)
            }
            Command::Fork(changes) => self.fork_or_defer(changes),
            Command::ForkAt { step, changes } => self.fork_at(*step, changes),
            Command::RepeatOverSeeds { seeds, steps } => self.repeat_over_seeds(*seeds, *steps),
            Command::ChangeB(setting) => self.change_arm_b(setting),
            Command::CloseArm(arm) => self.close_arm(*arm),
            Command::Reset(config) => {
                self.flush();
                self.build((**config).clone(), self.data.clone()).map_err(Refused::from)
            }
            _ => self.change(&command).map_err(Refused::from),
        };
        self.answer(command, outcome);
    }

    /// Changes the running net (setting, probe, restore); refused when there is none.
    fn change(&mut self, command: &Command) -> Result<(), TrainError> {
        let Some(driver) = self.driver.as_mut() else {
            return Err(TrainError::NoNet);
        };
        match command {
            Command::Change(setting) => driver.change(setting),
            Command::SetProbe(index) => {
                driver.trainer_mut().set_probe(*index)?;
                // Both arms look at the same probe, so their maps and predictions compare.
                if let Some(arm) = self.arm_b.as_mut() {
                    arm.trainer_mut().set_probe(*index)?;
                }
                Ok(())
            }
            Command::RestoreHealthy { halve_lr } => {
                driver.restore(*halve_lr)?;
                // The steps thrown away cannot be repeated from an older copy.
                self.rewind.restart(driver);
                // The hints of the thrown-away steps no longer hold: the next flush sends fresh ones.
                self.hints.1 = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sends `Applied` or `Rejected` for `command`; a change that alters the picture while paused is shown at
    /// once with a fresh snapshot.
    fn answer(&mut self, command: Command, outcome: Result<(), Refused>) {
        let applied = outcome.is_ok();
        let changes_the_picture = matches!(
            command,
            Command::Change(_) | Command::SetProbe(_) | Command::LoadProbeImage(_) | Command::RestoreHealthy { .. }
        );
        let command_was = matches!(command, Command::ChangeB(_) | Command::SetProbe(_) | Command::LoadProbeImage(_))
            .then(|| command.clone());
        if let (Ok(()), Command::Change(setting)) = (&outcome, &command) {
            self.rewind.changed(self.step_count() + 1, setting);
        }
        let event = match outcome {
            Ok(()) => WorkerEvent::Applied { command, effective_step: self.step_count() + 1 },
            Err(reason) => WorkerEvent::Rejected { command, reason: reason.to_string() },
        };
        self.send(event);
        let paused = !self.running && self.steps_left == 0;
        if applied && changes_the_picture && paused {
            self.send_refresh();
        }
        if applied && paused && command_was.is_some() {
            self.refresh_arm_b();
        }
        (self.waker)();
    }

    /// Runs one step and reports it; pauses on divergence or failure.
    fn run_step(&mut self) {
        let Some(driver) = self.driver.as_mut() else { return };
        let interval = Duration::from_millis(driver.trainer().config().snapshot_interval_ms);
        let last_of_a_count = self.steps_left == 1;
        let due = self.snapshots.due(interval);
        // Only take a snapshot when the last one was read: the newest wins, and an idle UI costs nothing.
        let capture = last_of_a_count || (due && !self.snapshot_unread.load(Ordering::Acquire));
        let attempted = driver.trainer().step_count() + 1;
        let started = Instant::now();
        let outcome = driver.step(capture);
        let took = started.elapsed();
        self.steps_left = self.steps_left.saturating_sub(1);
        // Arm B attempts every step A attempts, on the batch A just drew from the same sampler state, whatever
        // either outcome, so the arms stay on the same batches; it is evaluated exactly when A was.
        let evaluated = matches!(&outcome, Ok(Driven::Updated { row, .. }) if row.test_step == row.step);
        self.step_arm_b(capture, evaluated);
        match outcome {
            Ok(Driven::Updated { row, snapshot, warnings }) => {
                if let Some(driver) = self.driver.as_ref() {
                    self.rewind.stepped(driver);
                }
                self.snapshots.step_done(took, snapshot.is_some());
                self.warm_up(false);
                for message in warnings {
                    self.send(WorkerEvent::Warning { step: row.step, message });
                }
                let evaluated = row.test_step == row.step;
                self.rows.push(row);
                self.hints.1 = true;
                if evaluated {
                    self.send_evaluation();
                }
                let snapshot_taken = snapshot.is_some();
                if let Some(mut snapshot) = snapshot {
                    snapshot.cost_secs = self.snapshots.cost().as_secs_f32();
                    snapshot.gap_secs = self.snapshots.gap(interval).as_secs_f32();
                    self.snapshot_unread.store(true, Ordering::Release);
                    self.flush();
                    self.send(WorkerEvent::Snapshot(snapshot));
                }
                if snapshot_taken {
                    (self.waker)();
                }
                if last_of_a_count && !self.running {
                    self.set_running(false);
                }
            }
            Ok(Driven::Diverged { step, message }) => {
                self.steps_left = 0;
                self.flush();
                self.send(WorkerEvent::Diverged { step, message });
                self.set_running(false);
            }
            Err(error) => self.fail(attempted, format!("{error}; the weights are as before the step")),
        }
        if self.last_flush.elapsed() >= METRICS_FLUSH_INTERVAL {
            self.flush();
        }
    }

    fn fail(&mut self, step: u64, message: String) {
        self.steps_left = 0;
        self.flush();
        self.send(WorkerEvent::Failed { step, message: format!("{message}; training paused") });
        self.set_running(false);
    }
}
