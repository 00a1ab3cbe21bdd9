//! Training: the configuration, the synchronous [`Trainer`], and the worker thread that runs it behind a
//! [`WorkerHandle`] — [`Command`]s in, [`WorkerEvent`]s out. Never imports egui: the UI wakes through a
//! plain callback.

pub mod activity;
pub mod cadence;
pub mod command;
pub mod config;
pub mod presets;
pub mod stats;
pub mod trainer;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

pub use command::{Command, RunState, SharedData, WorkerEvent};
pub use config::{BackendKind, OptimizerKind, TrainConfig};
pub use trainer::{StepOutcome, TrainError, Trainer};
pub use worker::{METRICS_FLUSH_INTERVAL, Waker};

use crate::data::DataSplit;

/// How the compute threads are scheduled against the rest of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputePriority {
    /// The operating system's default (headless training and benchmarks).
    #[default]
    Normal,
    /// Slightly below the window's threads (nice +5 on Linux), so painting a frame never waits behind a
    /// training step; training still gets every cycle the window does not use.
    Background,
}

/// Niceness of [`ComputePriority::Background`] threads.
pub const BACKGROUND_NICE: i32 = 5;

/// Runs `work` with burn's CPU kernels limited to `threads` compute threads (`None`: rayon's default, which
/// honours `RAYON_NUM_THREADS`). The pool's threads are named `convscope-compute-N`.
pub fn with_compute_threads<T: Send>(
    threads: Option<usize>,
    priority: ComputePriority,
    work: impl FnOnce() -> T + Send,
) -> std::io::Result<T> {
    let mut builder = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .thread_name(|i| format!("convscope-compute-{i}"));
    if priority == ComputePriority::Background {
        builder = builder.start_handler(|_| lower_current_thread_priority());
    }
    let pool = builder.build().map_err(std::io::Error::other)?;
    Ok(pool.install(work))
}

/// Raises the calling thread's niceness to [`BACKGROUND_NICE`] (Linux applies it to this thread alone and
/// needs no privilege to lower a priority). Elsewhere, and if refused, the thread keeps its priority.
fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE).ok();
}

/// Options for [`WorkerHandle::spawn`].
pub struct WorkerOptions {
    /// Backend to compute on.
    pub backend: BackendKind,
    /// Compute threads (`None`: rayon's default).
    pub threads: Option<usize>,
    /// Scheduling of the compute threads.
    pub priority: ComputePriority,
    /// Wait for [`Command::Resume`] or [`Command::Step`] before the first step.
    pub start_paused: bool,
    /// Called whenever events were sent.
    pub waker: Waker,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            backend: BackendKind::default(),
            threads: None,
            priority: ComputePriority::Normal,
            start_paused: false,
            waker: Arc::new(|| {}),
        }
    }
}

/// The UI's side of a running worker thread. Dropping it stops the thread and waits for it.
pub struct WorkerHandle {
    commands: Sender<Command>,
    events: Receiver<WorkerEvent>,
    snapshot_unread: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker thread `convscope-trainer`, which builds the net from `config` and trains on `data`.
    pub fn spawn(config: TrainConfig, data: Arc<DataSplit>, options: WorkerOptions) -> std::io::Result<WorkerHandle> {
        let (command_tx, command_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let snapshot_unread = Arc::new(AtomicBool::new(false));
        let setup = worker::WorkerSetup {
            config,
            data,
            backend: options.backend,
            start_paused: options.start_paused,
            commands: command_rx,
            events: event_tx.clone(),
            snapshot_unread: snapshot_unread.clone(),
            waker: options.waker.clone(),
        };
        let (threads, priority) = (options.threads, options.priority);
        let thread = std::thread::Builder::new().name("convscope-trainer".into()).spawn(move || {
            if let Err(error) = with_compute_threads(threads, priority, move || worker::run(setup)) {
                event_tx
                    .send(WorkerEvent::Failed {
                        step: 0,
                        message: format!("could not start the compute threads: {error}"),
                    })
                    .ok();
                (options.waker)();
            }
        })?;
        Ok(WorkerHandle { commands: command_tx, events: event_rx, snapshot_unread, thread: Some(thread) })
    }

    /// Sends a command; never blocks. Returns `false` when the worker has ended.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// A sender that panels can keep and clone.
    pub fn sender(&self) -> Sender<Command> {
        self.commands.clone()
    }

    /// The next pending event, if any; never blocks.
    pub fn try_recv(&self) -> Option<WorkerEvent> {
        let event = self.events.try_recv().ok()?;
        Some(self.mark_read(event))
    }

    /// The next event, waiting at most `timeout` (for tests and headless use).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<WorkerEvent> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Some(self.mark_read(event)),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    fn mark_read(&self, event: WorkerEvent) -> WorkerEvent {
        if matches!(event, WorkerEvent::Snapshot(_)) {
            self.snapshot_unread.store(false, Ordering::Release);
        }
        event
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.commands.send(Command::Stop).ok();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}
