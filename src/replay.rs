//! Replaying a recorded run: a [`WorkerLink`] that hands the window the run's history instead of a live worker
//! — the net, every metric row, hint and change, the timeline's snapshots (left on disk, read back when
//! chosen) and the last snapshot on show, and an A/B run's arm B (its rows, hints and last snapshot) — so every
//! panel works from the record. Nothing trains: commands are answered with how to continue the run from its last
//! checkpoint.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::history::{HistoryError, history_path, read_history};
use crate::protocol::{Command, RunState, WorkerEvent, WorkerLink};
use crate::train::checkpoint::CHECKPOINT_EXTENSION;

/// Starts a live worker that continues the run from the given checkpoint (the caller knows the data, the
/// run folder and the window's waker).
pub type StartLive = Box<dyn FnOnce(PathBuf) -> std::io::Result<Box<dyn WorkerLink>>>;

/// A recorded run, played back; Play (or Step) continues it live from its newest checkpoint when it has one.
pub struct Replay {
    pending: VecDeque<WorkerEvent>,
    /// What to tell a user who asks it to train.
    continue_hint: String,
    /// The newest checkpoint in the run folder.
    checkpoint: Option<PathBuf>,
    /// How to start training from it, until it is used.
    start_live: Option<StartLive>,
    /// The live worker once training continues: every command and event goes through it from then on.
    live: Option<Box<dyn WorkerLink>>,
}

/// What a replay holds, for the message the window shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Recorded snapshots on the timeline.
    pub snapshots: usize,
    /// The last recorded step.
    pub last_step: u64,
    /// The newest checkpoint in the run folder, to continue from.
    pub checkpoint: Option<PathBuf>,
    /// What was dropped at a torn end, if anything.
    pub torn: Option<String>,
}

impl Replay {
    /// Reads the run at `run` (a run folder or its history file).
    pub fn open(run: &Path) -> Result<(Replay, ReplaySummary), HistoryError> {
        let history_path = history_path(run);
        let history = read_history(&history_path)?;
        let folder = history_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let checkpoint = newest_checkpoint(&folder);
        // Only the last net of the record is replayed: an earlier one's snapshots belong to another net.
        let start = history.events.iter().rposition(|e| matches!(e, WorkerEvent::Started(_))).unwrap_or(0);
        let last_snapshot = history.events.iter().rposition(|e| matches!(e, WorkerEvent::Snapshot(_)));
        let last_b_snapshot = history.events.iter().rposition(is_arm_b_snapshot);
        let mut pending = VecDeque::new();
        let (mut snapshots, mut last_step) = (0, 0);
        for (index, (event, offset)) in history.events.into_iter().zip(history.offsets).enumerate().skip(start) {
            match event {
                WorkerEvent::Snapshot(snapshot) => {
                    snapshots += 1;
                    last_step = last_step.max(snapshot.step);
                    let step = snapshot.step;
                    pending.push_back(WorkerEvent::Recorded { step, history: history_path.clone(), offset });
                    if Some(index) == last_snapshot {
                        pending.push_back(WorkerEvent::Snapshot(snapshot));
                    }
                }
                WorkerEvent::Metrics(rows) => {
                    last_step = last_step.max(rows.last().map_or(0, |r| r.step));
                    pending.push_back(WorkerEvent::Metrics(rows));
                }
                // The timeline moves arm A; arm B's panels show its last recorded snapshot.
                WorkerEvent::ArmB(_) if is_arm_b_snapshot(&event) && Some(index) != last_b_snapshot => {}
                // Old saves would only fill the banner; the newest checkpoint is named in the replay's notice.
                WorkerEvent::Saved { .. } => {}
                other => pending.push_back(other),
            }
        }
        pending.push_back(WorkerEvent::State { state: RunState::Paused, step: last_step });
        let continue_hint = match &checkpoint {
            Some(path) => format!("continue it with `convscope --resume {}`", path.display()),
            None => "its folder has no checkpoint to continue from".to_owned(),
        };
        let torn = history.torn.map(|(offset, what)| format!("{what} at byte {offset}"));
        let summary = ReplaySummary { snapshots, last_step, checkpoint, torn };
        let replay =
            Replay { pending, continue_hint, checkpoint: summary.checkpoint.clone(), start_live: None, live: None };
        Ok((replay, summary))
    }

    /// Lets Play or Step continue the run live from its newest checkpoint, through `start`.
    pub fn continue_with(mut self, start: StartLive) -> Replay {
        if let Some(checkpoint) = &self.checkpoint {
            self.continue_hint = format!("press Play to continue training from {}", checkpoint.display());
            self.start_live = Some(start);
        }
        self
    }
}

fn is_arm_b_snapshot(event: &WorkerEvent) -> bool {
    matches!(event, WorkerEvent::ArmB(inner) if matches!(inner.as_ref(), WorkerEvent::Snapshot(_)))
}

/// The checkpoint with the highest step in `folder`.
fn newest_checkpoint(folder: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(folder).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == CHECKPOINT_EXTENSION))
        .max_by_key(|p| {
            // checkpoint-step000100.ckpt: by the step, which outgrows its six digits on long runs.
            let name = p.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.rsplit("step").next().and_then(|digits| digits.parse::<u64>().ok()).unwrap_or(0)
        })
}

impl WorkerLink for Replay {
    fn send(&mut self, command: Command) {
        if let Some(live) = self.live.as_mut() {
            return live.send(command);
        }
        if matches!(command, Command::Resume | Command::Step(_))
            && let (Some(checkpoint), Some(start)) = (self.checkpoint.clone(), self.start_live.take())
        {
            match start(checkpoint.clone()) {
                Ok(live) => {
                    let text = format!("continuing the recorded run from {}", checkpoint.display());
                    self.pending.push_back(WorkerEvent::Notice(text));
                    self.live = Some(live);
                    return;
                }
                Err(error) => self.continue_hint = format!("training could not start: {error}"),
            }
        }
        let reason = format!("this is a recorded run, nothing trains here: {}", self.continue_hint);
        self.pending.push_back(WorkerEvent::Rejected { command, reason });
    }

    fn try_recv(&mut self) -> Option<WorkerEvent> {
        self.pending.pop_front().or_else(|| self.live.as_mut()?.try_recv())
    }
}
