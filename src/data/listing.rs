//! Listing an image folder: its class folders (with `train/` and `test/` parts when present) and the files
//! under them, walked once each (links followed, but never twice to one place) to a bounded depth and entry
//! count, hidden entries left out.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::data::idx_dir::describe_entries;
use crate::data::report::{LISTED_SKIPS, MAX_DEPTH, MAX_ENTRIES};
use crate::data::{DataError, LoadReport, SkipReason};
use crate::files::{self, FileId};

const TRAIN_FOLDER: &str = "train";
/// Sub-folder names that, next to `train/`, hold the test part.
const TEST_FOLDERS: [&str; 2] = ["test", "val"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Train,
    Test,
}

/// A file that may be an image of the class folder at `folder`.
pub(crate) struct Candidate {
    pub(crate) path: PathBuf,
    pub(crate) folder: usize,
    pub(crate) part: Part,
}

pub(crate) struct ClassFolder {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
}

pub(crate) struct TestFolder {
    pub(crate) path: PathBuf,
    pub(crate) class_folder: usize,
}

/// The class folders and the files under them, train files before test files.
pub(crate) struct Listing {
    pub(crate) train_root: PathBuf,
    pub(crate) test_root: Option<PathBuf>,
    pub(crate) class_folders: Vec<ClassFolder>,
    pub(crate) test_folders: Vec<TestFolder>,
    pub(crate) candidates: Vec<Candidate>,
    /// The root's own entries, for the no-usable-class message.
    pub(crate) root_entries: Vec<String>,
}

pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) is_dir: bool,
    /// A FIFO, device or socket (links followed): listed, never opened.
    special: Option<&'static str>,
    /// `None` for a dangling link, whose read then reports it.
    id: Option<FileId>,
}

/// One walk over a data folder: every folder and file is listed once, however many links lead to it (so a
/// link loop ends, and no image lands in both train and test), and the walk stops at [`MAX_ENTRIES`].
struct Walk<'r> {
    report: &'r mut LoadReport,
    seen: HashMap<FileId, PathBuf>,
    entries: usize,
    root: PathBuf,
}

impl Walk<'_> {
    /// A folder's entries sorted by name, hidden ones (".DS_Store", ".git") left out silently.
    fn read_entries(&mut self, dir: &Path) -> Result<Vec<Entry>, io::Error> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(io::Error::other(TooManyEntries));
            }
            let file_name = entry.file_name();
            if file_name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = entry.path();
            // Follows links, so a linked class folder counts as a folder.
            let metadata = std::fs::metadata(&path).ok();
            let id = metadata.as_ref().map(|metadata| FileId::of(&path, metadata));
            let is_dir = metadata.as_ref().is_some_and(std::fs::Metadata::is_dir);
            let special = metadata.as_ref().and_then(files::special_kind);
            entries.push((file_name, Entry { name: String::new(), path, is_dir, special, id }));
        }
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(entries
            .into_iter()
            .map(|(file_name, entry)| Entry { name: file_name.to_string_lossy().into_owned(), ..entry })
            .collect())
    }

    /// Marks `entry` as listed; false (and reported) when another path already led to it.
    fn first_visit(&mut self, entry: &Entry) -> bool {
        let Some(id) = entry.id.clone() else { return true };
        match self.seen.get(&id) {
            Some(first) => {
                let first = self.report.display_path(first).into();
                self.report.skip(&entry.path, SkipReason::SeenBefore(first), entry.is_dir);
                false
            }
            None => {
                self.seen.insert(id, entry.path.clone());
                true
            }
        }
    }

    /// Marks a folder read without an entry (the root, `train/`) as listed.
    fn enter(&mut self, dir: &Path) {
        if let Ok(metadata) = std::fs::metadata(dir) {
            self.seen.entry(FileId::of(dir, &metadata)).or_insert_with(|| dir.to_path_buf());
        }
    }

    fn io_error(&self, path: &Path, source: io::Error) -> DataError {
        if source.get_ref().is_some_and(|inner| inner.is::<TooManyEntries>()) {
            return DataError::TooManyEntries { dir: self.root.clone(), limit: MAX_ENTRIES };
        }
        DataError::Io { path: path.to_path_buf(), source }
    }

    /// Every file under `dir`, depth first in name order; unreadable folders are reported, not fatal.
    fn collect_files(&mut self, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
        let mut files = Vec::new();
        let mut pending = vec![(dir.to_path_buf(), 0usize)];
        while let Some((folder, depth)) = pending.pop() {
            let entries = match self.read_entries(&folder) {
                Ok(entries) => entries,
                Err(error) if error.get_ref().is_some_and(|inner| inner.is::<TooManyEntries>()) => {
                    return Err(self.io_error(&folder, error));
                }
                Err(error) => {
                    self.report.skip(&folder, SkipReason::Unreadable(error.to_string()), true);
                    continue;
                }
            };
            let mut sub_folders = Vec::new();
            for entry in entries {
                if !self.first_visit(&entry) {
                    continue;
                }
                if let Some(kind) = entry.special {
                    self.report.skip(&entry.path, SkipReason::NotRegular(kind), false);
                } else if !entry.is_dir {
                    files.push(entry.path);
                } else if depth + 1 > MAX_DEPTH {
                    self.report.skip(&entry.path, SkipReason::TooDeep, true);
                } else {
                    sub_folders.push((entry.path, depth + 1));
                }
            }
            // Reversed so the stack pops sub-folders in name order.
            pending.extend(sub_folders.into_iter().rev());
        }
        Ok(files)
    }
}

/// The marker inside the `io::Error` a walk stops with at [`MAX_ENTRIES`].
#[derive(Debug)]
struct TooManyEntries;

impl std::fmt::Display for TooManyEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {MAX_ENTRIES} entries")
    }
}

impl std::error::Error for TooManyEntries {}

pub(crate) fn list_classes(dir: &Path, report: &mut LoadReport) -> Result<Listing, DataError> {
    let mut walk = Walk { report, seen: HashMap::new(), entries: 0, root: dir.to_path_buf() };
    walk.enter(dir);
    let root_entries = walk.read_entries(dir).map_err(|source| walk.io_error(dir, source))?;
    let root_names = root_entries.iter().map(|entry| entry.name.clone()).collect();
    let find_dir = |name: &str| root_entries.iter().find(|entry| entry.is_dir && entry.name == name);
    let presplit = find_dir(TRAIN_FOLDER).zip(TEST_FOLDERS.iter().find_map(|&name| find_dir(name)));

    let (train_root, test_root, train_entries) = match presplit {
        Some((train, test)) => {
            for entry in &root_entries {
                if entry.path != train.path && entry.path != test.path {
                    walk.report.skip(&entry.path, SkipReason::OutsideClassFolder, entry.is_dir);
                }
            }
            walk.first_visit(train);
            walk.first_visit(test);
            let train_entries = walk.read_entries(&train.path).map_err(|source| walk.io_error(&train.path, source))?;
            (train.path.clone(), Some(test.path.clone()), train_entries)
        }
        None => (dir.to_path_buf(), None, root_entries),
    };

    // Every class folder is claimed before any is walked, so a link from one class into another is a repeat,
    // not a second copy of the other class's images under this label.
    let train_entries: Vec<Entry> = train_entries
        .into_iter()
        .filter(|entry| {
            if !entry.is_dir {
                walk.report.skip(&entry.path, SkipReason::OutsideClassFolder, false);
                return false;
            }
            walk.first_visit(entry)
        })
        .collect();
    let mut class_folders = Vec::new();
    let mut candidates = Vec::new();
    for entry in train_entries {
        let folder = class_folders.len();
        for path in walk.collect_files(&entry.path)? {
            candidates.push(Candidate { path, folder, part: Part::Train });
        }
        class_folders.push(ClassFolder { name: entry.name, path: entry.path });
    }

    let mut test_folders = Vec::new();
    if let Some(test_root) = &test_root {
        for entry in walk.read_entries(test_root).map_err(|source| walk.io_error(test_root, source))? {
            if !entry.is_dir {
                walk.report.skip(&entry.path, SkipReason::OutsideClassFolder, false);
                continue;
            }
            if !walk.first_visit(&entry) {
                continue;
            }
            match class_folders.iter().position(|folder| folder.name == entry.name) {
                Some(class_folder) => {
                    for path in walk.collect_files(&entry.path)? {
                        candidates.push(Candidate { path, folder: class_folder, part: Part::Test });
                    }
                    test_folders.push(TestFolder { path: entry.path, class_folder });
                }
                None => walk.report.skip(&entry.path, SkipReason::NoTrainingClass, true),
            }
        }
    }
    Ok(Listing { train_root, test_root, class_folders, test_folders, candidates, root_entries: root_names })
}

pub(crate) fn no_usable_class(dir: &Path, listing: &Listing, report: &mut LoadReport) -> DataError {
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let mut found = if listing.class_folders.is_empty() {
        format!("it has no sub-folders ({})", describe_entries(&listing.root_entries))
    } else {
        let names: Vec<String> = listing.class_folders.iter().map(|folder| folder.name.clone()).collect();
        format!("none of its {} sub-folders ({}) holds a usable image", names.len(), list_names(&names))
    };
    if let Some(summary) = report.skipped_summary() {
        found.push_str(&format!("; {summary}"));
    }
    DataError::NoUsableClass { dir: dir.to_path_buf(), found }
}

pub(crate) fn list_names(names: &[String]) -> String {
    let mut listed = names.iter().take(LISTED_SKIPS * 2).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > LISTED_SKIPS * 2 {
        listed.push_str(&format!(" and {} more", names.len() - LISTED_SKIPS * 2));
    }
    listed
}
