//! The UI's connection to a training worker, behind a trait so tests can drive the real panels with a fake.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::train::{Command, WorkerEvent, WorkerHandle};

/// What the UI needs from a worker: send a command, take the next event. Neither may block.
pub trait WorkerLink {
    /// Queues a command for the worker.
    fn send(&mut self, command: Command);
    /// The next pending event, if any.
    fn try_recv(&mut self) -> Option<WorkerEvent>;
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

/// A stand-in worker for UI tests: records every command and replays events the test queues.
#[derive(Clone, Default)]
pub struct FakeWorker {
    /// Every command the UI sent, in order.
    pub sent: Arc<Mutex<Vec<Command>>>,
    /// Events the UI will receive on its next frames.
    pub pending: Arc<Mutex<VecDeque<WorkerEvent>>>,
}

impl FakeWorker {
    /// Queues an event for the UI.
    pub fn push(&self, event: WorkerEvent) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.push_back(event);
        }
    }

    /// The commands sent so far.
    pub fn sent(&self) -> Vec<Command> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl WorkerLink for FakeWorker {
    fn send(&mut self, command: Command) {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(command);
        }
    }

    fn try_recv(&mut self) -> Option<WorkerEvent> {
        self.pending.lock().ok()?.pop_front()
    }
}
