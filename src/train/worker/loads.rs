//! The worker's loads: data sets and probe images read on loader threads while training goes on, a newer
//! load superseding an older one, and what a finished load becomes (a new net on new data, or the probe).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::TrainConfig;
use crate::data::Loaded;
use crate::protocol::{Command, DataOrigin, DataRequest, WorkerEvent};
use crate::train::error::TrainError;
use crate::train::loader::{self, LoadResult};

use super::{Inbox, Refused, Worker};

/// A load under way: its id (a newer load or a cancel makes its result stale) and the command that asked.
pub(super) struct PendingLoad {
    pub(super) id: u64,
    pub(super) command: Command,
}

impl Worker {
    /// Hands a data or probe load to a loader thread; a newer load supersedes one under way.
    pub(super) fn start_load(&mut self, command: Command) {
        self.loads_started += 1;
        let id = self.loads_started;
        let inbox = self.inbox.clone();
        let deliver = move |result| {
            inbox.send(Inbox::Loaded { id, result }).ok();
        };
        let started = match &command {
            Command::LoadData { request, config } => loader::load_data(request.clone(), config.seed, deliver),
            Command::LoadProbeImage(path) => match self.driver.as_ref() {
                Some(driver) => loader::load_probe(path.clone(), driver.trainer().data().test.shape(), deliver),
                None => return self.answer(command, Err(TrainError::NoNet.into())),
            },
            _ => Ok(()),
        };
        match started {
            Ok(()) => {
                self.send(WorkerEvent::Loading(Some(command.describe(&[]))));
                // A probe load supersedes a data load: a fork waiting for that data is made on this net now.
                let data_superseded = !matches!(command, Command::LoadData { .. })
                    && self.load.as_ref().is_some_and(|l| matches!(l.command, Command::LoadData { .. }));
                self.load = Some(PendingLoad { id, command });
                if data_superseded {
                    self.fork_after_load();
                }
                (self.waker)();
            }
            Err(error) => self.answer(command, Err(Refused::Loader(error))),
        }
    }

    pub(super) fn cancel_load(&mut self) -> Result<(), Refused> {
        match self.load.take() {
            Some(_) => {
                if let Some(checkpoint) = self.resume.take() {
                    self.cannot_resume(&checkpoint, "loading its data was cancelled");
                }
                self.send(WorkerEvent::Loading(None));
                self.fork_after_load();
                Ok(())
            }
            None => Err(Refused::NothingLoading),
        }
    }

    /// Takes a finished load: new data is built on (if the net fits it), a probe image becomes the probe.
    pub(super) fn loaded(&mut self, command: Command, result: LoadResult) {
        self.send(WorkerEvent::Loading(None));
        // The data of a run to continue: the worker asked for it at start-up, not the window.
        let resuming = self.resume.is_some();
        let outcome = match (&command, result) {
            (Command::LoadData { request, config }, LoadResult::Data(data)) => match (*data, self.resume.take()) {
                (Ok(loaded), Some(checkpoint)) => self.resume_on(loaded, &checkpoint),
                (Ok(loaded), None) => self.train_on(loaded, request, config),
                (Err(error), checkpoint) => {
                    if let Some(checkpoint) = checkpoint {
                        self.cannot_resume(
                            &checkpoint,
                            &format!("its data {} could not be loaded ({error})", request.path.display()),
                        );
                    }
                    Err(error.into())
                }
            },
            (_, LoadResult::Probe { name, pixels }) => match (pixels, self.driver.as_mut()) {
                (Ok(pixels), Some(driver)) => {
                    let own = driver.trainer_mut().set_probe_image(pixels.clone(), name.clone());
                    // Both arms look at the same probe.
                    match self.arm_b.as_mut() {
                        Some(arm) => own.and_then(|()| arm.trainer_mut().set_probe_image(pixels, name)),
                        None => own,
                    }
                    .map_err(Refused::from)
                }
                (Ok(_), None) => Err(TrainError::NoNet.into()),
                (Err(error), _) => Err(error.into()),
            },
            (_, LoadResult::Data(_)) => Err(Refused::WrongLoad),
        };
        let data_load = matches!(command, Command::LoadData { .. });
        if resuming && outcome.is_err() {
            // `cannot_resume` has said what went wrong and how to go on; the window never sent this load, so a
            // second line refusing it would only repeat that.
            (self.waker)();
        } else {
            self.answer(command, outcome);
        }
        if data_load {
            self.fork_after_load();
        }
    }

    /// Builds a net from `config` on newly loaded data and says what was loaded; the current run stays when
    /// the net does not fit.
    fn train_on(&mut self, loaded: Loaded, request: &DataRequest, config: &TrainConfig) -> Result<(), Refused> {
        let notice = loaded_notice(&loaded, &request.path);
        let source_name = loaded.split.train.source().to_string();
        self.flush();
        let origin = DataOrigin { request: Some(request.clone()), targets: None, split_seed: config.seed };
        let previous = self.saving.origin.replace(origin);
        self.build(config.clone(), Arc::new(loaded.split)).map_err(|error| {
            self.saving.origin = previous;
            Refused::DoesNotFit { source_name, error }
        })?;
        self.send(WorkerEvent::Notice(notice));
        Ok(())
    }

    /// Starts loading the data the worker was told to wait for; once it has arrived the checkpoint `resume`
    /// continues on it, or (without one) a net is built from `config`.
    pub(super) fn load_pending_data(&mut self, config: TrainConfig, resume: Option<PathBuf>) {
        let Some(request) = self.data_pending.take() else { return };
        // The split must be the one the run was trained on.
        let seed = self.saving.origin.as_ref().map_or(config.seed, |origin| origin.split_seed);
        self.resume = resume;
        self.start_load(Command::LoadData { request, config: Box::new(TrainConfig { seed, ..config }) });
    }

    /// Continues the checkpoint at `checkpoint` on the data that was loaded for it.
    fn resume_on(&mut self, loaded: Loaded, checkpoint: &Path) -> Result<(), Refused> {
        self.flush();
        self.data = Arc::new(loaded.split);
        let opened = self.open_checkpoint(checkpoint);
        if let Err(error) = &opened {
            self.cannot_resume(checkpoint, &error.to_string());
        }
        opened
    }

    /// Says that the run waiting for its data cannot continue, and what to do.
    fn cannot_resume(&mut self, checkpoint: &Path, why: &str) {
        let message = format!(
            "cannot continue from {}: {why}; put the data back where it was, or start `convscope --data PATH --resume {}`",
            checkpoint.display(),
            checkpoint.display()
        );
        self.send(WorkerEvent::Failed { step: 0, message });
    }
}

/// What the window says of a loaded data set: what it is, and what was skipped.
fn loaded_notice(loaded: &Loaded, path: &Path) -> String {
    let mut notice = format!("loaded {}", loaded.describe(path));
    for line in loaded.report.skipped_summary().iter().chain(&loaded.report.notes) {
        notice.push_str(&format!("; {line}"));
    }
    notice
}
