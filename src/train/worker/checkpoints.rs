//! The worker's checkpoints: saved on request, every few minutes of training into the run folder (only the
//! newest automatic ones are kept) and when the window closes; and opened to continue a run exactly where
//! it stopped, on the data the worker has.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::history::{DATA_ORIGIN_FILE, write_data_origin};
use crate::protocol::{DataOrigin, WorkerEvent};
use crate::train::checkpoint::{checkpoint_file_name, read_checkpoint};
use crate::train::driver::{Driver, Evaluation};
use crate::train::error::catch_panic;

use super::{Refused, Worker};

/// How often the worker checkpoints a running net into the run folder by itself, so a crash loses at most
/// this much training.
pub const AUTOSAVE_INTERVAL: Duration = Duration::from_secs(180);
/// Automatic checkpoints kept in the run folder; older ones are deleted (ones saved on request stay).
pub const AUTOSAVES_KEPT: usize = 3;

/// Where and when the worker saves.
pub(super) struct Saving {
    /// The run folder (`None`: nothing is saved unless a file is named).
    run_dir: Option<PathBuf>,
    /// Between automatic checkpoints (`None`: never).
    every: Option<Duration>,
    /// When the last checkpoint was written (or the net built), and its step.
    last: (Instant, u64),
    /// Automatic checkpoints written, oldest first.
    automatic: VecDeque<PathBuf>,
    /// Checkpoints saved on request: never deleted, even when an automatic one later takes the same name.
    requested: HashSet<PathBuf>,
    /// Where the data trained on came from, written into the run folder with every new net.
    pub(super) origin: Option<DataOrigin>,
}

impl Saving {
    pub(super) fn new(run_dir: Option<PathBuf>, every: Option<Duration>, origin: Option<DataOrigin>) -> Saving {
        let (automatic, requested) = (VecDeque::new(), HashSet::new());
        Saving { run_dir, every, last: (Instant::now(), 0), automatic, requested, origin }
    }

    /// A new net starts its own count, and the run folder says which data it trains on.
    pub(super) fn restart(&mut self, step: u64) -> Result<(), String> {
        self.last = (Instant::now(), step);
        match (&self.run_dir, &self.origin) {
            (Some(dir), Some(origin)) => write_data_origin(dir, origin).map_err(|error| {
                let file = dir.join(DATA_ORIGIN_FILE);
                format!(
                    "could not record the run's data in {} ({error}): Play on its replay will not find it",
                    file.display()
                )
            }),
            _ => Ok(()),
        }
    }
}

impl Worker {
    /// Saves as the user asked (to `path`, or into the run folder); that file is never deleted by the pruning
    /// of automatic ones.
    pub(super) fn save_requested(&mut self, path: Option<&Path>) -> Result<(), Refused> {
        let saved = self.save_checkpoint(path)?;
        self.saving.requested.insert(saved);
        Ok(())
    }

    /// Writes a checkpoint to `path`, or into the run folder, and says where.
    fn save_checkpoint(&mut self, path: Option<&Path>) -> Result<PathBuf, Refused> {
        let driver = self.driver.as_ref().ok_or(Refused::Train(crate::train::TrainError::NoNet))?;
        let step = driver.trainer().step_count();
        let path = match (path, &self.saving.run_dir) {
            (Some(path), _) => path.to_path_buf(),
            (None, Some(dir)) => {
                std::fs::create_dir_all(dir).map_err(|source| Refused::RunFolder { path: dir.clone(), source })?;
                dir.join(checkpoint_file_name(step))
            }
            (None, None) => return Err(Refused::NoRunFolder),
        };
        catch_panic("saving a checkpoint", || driver.trainer().save_checkpoint(&path))?;
        self.saving.last = (Instant::now(), step);
        self.send(WorkerEvent::Saved { step, path: path.clone() });
        Ok(path)
    }

    /// Saves into the run folder when a running net has trained for the autosave interval since the last
    /// checkpoint; a failure is told once and training goes on.
    pub(super) fn autosave_if_due(&mut self) {
        let Some(every) = self.saving.every else { return };
        if !self.running || self.saving.run_dir.is_none() || self.saving.last.0.elapsed() < every {
            return;
        }
        self.save_automatically();
    }

    /// Saves into the run folder if the run moved on since the last checkpoint (when the window closes).
    pub(super) fn save_before_closing(&mut self) {
        let moved_on = self.driver.as_ref().is_some_and(|d| d.trainer().step_count() > self.saving.last.1);
        if self.saving.every.is_some() && self.saving.run_dir.is_some() && moved_on {
            self.save_automatically();
        }
    }

    fn save_automatically(&mut self) {
        match self.save_checkpoint(None) {
            Ok(path) => {
                if !self.saving.automatic.contains(&path) {
                    self.saving.automatic.push_back(path);
                }
                while self.saving.automatic.len() > AUTOSAVES_KEPT {
                    if let Some(old) = self.saving.automatic.pop_front()
                        && !self.saving.requested.contains(&old)
                    {
                        std::fs::remove_file(old).ok();
                    }
                }
            }
            Err(error) => {
                // Try again after another interval rather than on every step.
                self.saving.last.0 = Instant::now();
                let step = self.step_count();
                self.send(WorkerEvent::Warning { step, message: format!("automatic checkpoint failed: {error}") });
            }
        }
    }

    /// Continues the run in the checkpoint at `path` on the worker's data, replacing the running net.
    pub(super) fn open_checkpoint(&mut self, path: &Path) -> Result<(), Refused> {
        let checkpoint = read_checkpoint(path).map_err(crate::train::TrainError::from)?;
        let config = checkpoint.config().clone();
        let driver = Driver::resume(checkpoint, config, self.data.clone(), self.backend, Evaluation::Budgeted)?;
        self.install(driver, self.data.clone());
        Ok(())
    }
}
