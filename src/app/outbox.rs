//! What the panels ask for during a frame: commands for the worker and actions for the window. The window
//! drains it once per frame, applying each command to the view ahead of the worker
//! ([`TrainingView::request`](crate::app::view::TrainingView::request)) and sending it.

use crate::config::Setting;
use crate::protocol::Command;

/// Requests collected from the panels during one frame.
#[derive(Debug, Default)]
pub struct Outbox {
    commands: Vec<Command>,
    export: bool,
    timelapse: bool,
    show: Option<Show>,
    open_run: Option<std::path::PathBuf>,
}

/// Which snapshot the panels show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// The timeline's recorded snapshot at this index.
    Recorded(usize),
    /// The newest, as it arrives.
    Live,
}

impl Outbox {
    /// Sends `command` to the worker at the end of the frame.
    pub fn send(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Changes a live setting: shown at once, confirmed or undone when the worker answers.
    pub fn change(&mut self, setting: Setting) {
        self.send(Command::Change(setting));
    }

    /// Exports the images at the end of the frame.
    pub fn export(&mut self) {
        self.export = true;
    }

    /// Writes a timelapse GIF of the run's recorded snapshots into the export folder (in the background).
    pub fn timelapse(&mut self) {
        self.timelapse = true;
    }

    /// Whether a timelapse was asked for (once).
    pub fn take_timelapse(&mut self) -> bool {
        std::mem::take(&mut self.timelapse)
    }

    /// Shows a recorded snapshot, or the live one again, from the next frame.
    pub fn show(&mut self, show: Show) {
        self.show = Some(show);
    }

    /// Takes everything asked for: the commands in order, and whether to export.
    pub fn take(&mut self) -> (Vec<Command>, bool) {
        (std::mem::take(&mut self.commands), std::mem::take(&mut self.export))
    }

    /// Replays the recorded run in this folder instead of the current one.
    pub fn open_run(&mut self, run: std::path::PathBuf) {
        self.open_run = Some(run);
    }

    /// Takes the run asked to be opened, if any.
    pub fn take_open_run(&mut self) -> Option<std::path::PathBuf> {
        self.open_run.take()
    }

    /// Takes the snapshot asked to be shown, if any.
    pub fn take_show(&mut self) -> Option<Show> {
        self.show.take()
    }
}
