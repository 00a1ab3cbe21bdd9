//! The native file and folder dialogs behind every Browse… button: opened on their own thread (they block), so
//! the window keeps painting, and a dialog that could not open at all says so instead of doing nothing.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use eframe::egui::{self, Color32, RichText};

/// A dialog that comes back empty sooner than this never opened: no person cancels that fast.
const NO_DIALOG_WITHIN: Duration = Duration::from_millis(400);

/// What a native dialog picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// A folder.
    Folder,
    /// A file.
    File,
}

/// How a dialog ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Picked(PathBuf),
    Cancelled,
    /// The desktop has no dialog service (rfd then returns at once).
    Unavailable,
}

impl Outcome {
    /// What an empty-or-not answer after `open_for` means.
    fn of(picked: Option<PathBuf>, open_for: Duration) -> Outcome {
        match picked {
            Some(path) => Outcome::Picked(path),
            None if open_for < NO_DIALOG_WITHIN => Outcome::Unavailable,
            None => Outcome::Cancelled,
        }
    }
}

/// One Browse… button's dialog: at most one open at a time, and a note when none could open.
#[derive(Debug, Default)]
pub struct Browse {
    pending: Option<(Receiver<Outcome>, Pick)>,
    note: Option<String>,
}

impl Browse {
    /// Whether a dialog is open.
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Opens the dialog titled `title`, starting at `start` (or its folder).
    pub fn open(&mut self, ctx: &egui::Context, title: &str, start: &str, pick: Pick) {
        let (tx, rx) = mpsc::channel();
        let (start, title, ctx) = (PathBuf::from(start), title.to_owned(), ctx.clone());
        let spawned = std::thread::Builder::new().name("convscope-file-dialog".into()).spawn(move || {
            let opened = Instant::now();
            let mut dialog = rfd::FileDialog::new().set_title(title);
            let folder = if start.is_dir() { Some(start.as_path()) } else { start.parent() };
            if let Some(folder) = folder.filter(|f| f.is_dir()) {
                dialog = dialog.set_directory(folder);
            }
            let picked = match pick {
                Pick::Folder => dialog.pick_folder(),
                Pick::File => dialog.pick_file(),
            };
            tx.send(Outcome::of(picked, opened.elapsed())).ok();
            ctx.request_repaint();
        });
        self.note = None;
        match spawned {
            Ok(_) => self.pending = Some((rx, pick)),
            Err(error) => self.note = Some(format!("could not open a file dialog ({error}): type the path instead")),
        }
    }

    /// The path the user picked, once the dialog has closed with one; `None` while it is open, after a cancel,
    /// or when no dialog could open (then [`Browse::note_ui`] says so).
    pub fn picked(&mut self) -> Option<(PathBuf, Pick)> {
        let (rx, pick) = self.pending.as_ref()?;
        let outcome = match rx.try_recv() {
            Ok(outcome) => outcome,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Outcome::Cancelled,
        };
        let pick = *pick;
        self.pending = None;
        match outcome {
            Outcome::Picked(path) => return Some((path, pick)),
            Outcome::Cancelled => {}
            Outcome::Unavailable => {
                self.note = Some(
                    "No file dialog opened: this desktop has no dialog service (xdg-desktop-portal or zenity). \
                     Type the path in the field instead."
                        .to_owned(),
                );
            }
        }
        None
    }

    /// Shows why the last Browse… did nothing, if it could not open; a click hides it.
    pub fn note_ui(&mut self, ui: &mut egui::Ui) {
        let Some(note) = &self.note else { return };
        let text = RichText::new(note).small().color(Color32::from_rgb(220, 160, 60));
        if ui.add(egui::Label::new(text).wrap().sense(egui::Sense::click())).on_hover_text("Click to hide").clicked() {
            self.note = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_empty_answer_means_no_dialog_and_leaves_a_note() {
        assert_eq!(Outcome::of(None, Duration::from_millis(5)), Outcome::Unavailable);
        assert_eq!(Outcome::of(None, Duration::from_secs(3)), Outcome::Cancelled);
        let path = PathBuf::from("/tmp/x");
        assert_eq!(Outcome::of(Some(path.clone()), Duration::ZERO), Outcome::Picked(path.clone()));
        let mut browse = Browse::default();
        let (tx, rx) = mpsc::channel();
        browse.pending = Some((rx, Pick::Folder));
        assert_eq!(browse.picked(), None, "still open");
        tx.send(Outcome::Unavailable).unwrap();
        assert_eq!(browse.picked(), None);
        assert!(browse.note.as_deref().is_some_and(|n| n.contains("Type the path")), "{:?}", browse.note);
        assert!(!browse.busy());
        let (tx, rx) = mpsc::channel();
        browse.pending = Some((rx, Pick::File));
        tx.send(Outcome::Picked(path.clone())).unwrap();
        assert_eq!(browse.picked(), Some((path, Pick::File)));
    }
}
