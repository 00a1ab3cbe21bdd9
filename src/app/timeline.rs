//! The timeline: the snapshots recorded in the run's history (their steps and where each record is), and which
//! one the window shows instead of the live one. Old snapshots stay on disk; one is read back when chosen.

use std::path::PathBuf;

use crate::history::{HistoryError, read_record};
use crate::protocol::WorkerEvent;
use crate::snapshot::Snapshot;

/// A recorded snapshot: its step and its record's byte offset in the history file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelinePoint {
    /// The snapshot's step.
    pub step: u64,
    /// Where its record starts.
    pub offset: u64,
}

/// The recorded snapshots of the current net, and the one shown when the window is not live.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The history file the points are in.
    pub history: Option<PathBuf>,
    /// Recorded snapshots, oldest first.
    pub points: Vec<TimelinePoint>,
    /// The point shown instead of the live snapshot (`None`: live).
    pub shown: Option<usize>,
    /// The newest live snapshot, kept aside while an old one is shown.
    pub(crate) parked: Option<Box<Snapshot>>,
}

impl Timeline {
    /// Notes a snapshot recorded into `history` at `offset`.
    pub fn recorded(&mut self, step: u64, history: PathBuf, offset: u64) {
        if self.history.as_ref() != Some(&history) {
            self.points.clear();
            self.history = Some(history);
        }
        self.points.push(TimelinePoint { step, offset });
    }

    /// The step shown when not live.
    pub fn shown_step(&self) -> Option<u64> {
        self.shown.and_then(|i| self.points.get(i)).map(|p| p.step)
    }

    /// Reads point `index`'s snapshot back from the history.
    pub fn load(&self, index: usize) -> Result<Box<Snapshot>, TimelineError> {
        let point = self.points.get(index).ok_or(TimelineError::NoPoint(index))?;
        let history = self.history.as_ref().ok_or(TimelineError::NoPoint(index))?;
        match read_record(history, point.offset)? {
            WorkerEvent::Snapshot(snapshot) => Ok(snapshot),
            _ => Err(TimelineError::NotASnapshot(point.step)),
        }
    }

    /// Forgets everything (a new net).
    pub fn clear(&mut self) {
        *self = Timeline::default();
    }
}

/// Why an old snapshot could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// There is no such point.
    #[error("there is no recorded snapshot number {0}")]
    NoPoint(usize),
    /// The history could not be read there.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The record there is not a snapshot.
    #[error("the history's record for step {0} is not a snapshot")]
    NotASnapshot(u64),
}
