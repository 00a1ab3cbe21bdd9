//! A stand-in for the training worker, so tests drive the real window through the same
//! [`WorkerLink`] as the worker thread.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::protocol::{Command, WorkerEvent, WorkerLink};

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
