//! The window's side of the worker thread: starting it, commands in and events out over unbounded channels
//! (never blocking), and stopping it when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::TrainConfig;
use crate::data::DataSplit;
use crate::protocol::{Command, WorkerEvent, WorkerLink};
use crate::train::threads::with_compute_threads;

use super::{Inbox, Worker, WorkerOptions};

/// The UI's side of a running worker thread. Dropping it stops the thread and waits for it.
pub struct WorkerHandle {
    inbox: Sender<Inbox>,
    events: Receiver<WorkerEvent>,
    snapshot_unread: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker thread `convscope-trainer`, which builds the net from `config` and trains on `data`.
    pub fn spawn(config: TrainConfig, data: Arc<DataSplit>, options: WorkerOptions) -> std::io::Result<WorkerHandle> {
        let (inbox_tx, inbox_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let snapshot_unread = Arc::new(AtomicBool::new(false));
        let worker = Worker::new(data, &options, inbox_tx.clone(), event_tx.clone(), snapshot_unread.clone());
        let (threads, priority, start_paused) = (options.threads, options.priority, options.start_paused);
        let thread = std::thread::Builder::new().name("convscope-trainer".into()).spawn(move || {
            let waker = worker.waker.clone();
            let ran = with_compute_threads(threads, priority, move || worker.run(config, start_paused, &inbox_rx));
            if let Err(error) = ran {
                let message = format!("could not start the compute threads: {error}");
                event_tx.send(WorkerEvent::Failed { step: 0, message }).ok();
                waker();
            }
        })?;
        Ok(WorkerHandle { inbox: inbox_tx, events: event_rx, snapshot_unread, thread: Some(thread) })
    }

    /// Sends a command; never blocks. Returns `false` when the worker has ended.
    pub fn send(&self, command: Command) -> bool {
        self.inbox.send(Inbox::Command(command)).is_ok()
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

impl WorkerLink for WorkerHandle {
    fn send(&mut self, command: Command) {
        // A worker that is gone has already reported why; nothing more to do here.
        WorkerHandle::send(self, command);
    }

    fn try_recv(&mut self) -> Option<WorkerEvent> {
        WorkerHandle::try_recv(self)
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.inbox.send(Inbox::Command(Command::Stop)).ok();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}
