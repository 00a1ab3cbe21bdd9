//! What a loader skipped and decided on the way: files that are not usable images, empty class folders,
//! and notes such as the size images were resized to. Loads report instead of failing.

use std::fmt;
use std::path::{Path, PathBuf};

/// How many skipped entries the summary line names before "and N more".
pub(crate) const LISTED_SKIPS: usize = 3;
/// Class folders are searched this deep.
pub(crate) const MAX_DEPTH: usize = 16;
/// A folder walk reads at most this many entries: far more than any image data set here holds, and a bound
/// on time and memory when the wrong folder (say `/`) is given.
pub(crate) const MAX_ENTRIES: usize = 1_000_000;
/// Decoder messages are cut to this many characters in the summary line.
const MAX_REASON_CHARS: usize = 80;

/// Why a file or folder was left out of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The content is not in any image format (decided by content, not by the extension).
    NotAnImage,
    /// An image format this build does not decode (TIFF, AVIF, …).
    Unsupported(String),
    /// A recognised image that fails to decode: truncated or damaged.
    Corrupt(String),
    /// Larger than the decoder's limits.
    TooLarge(String),
    /// The file or folder could not be read.
    Unreadable(String),
    /// A class folder with no files.
    EmptyClassFolder,
    /// A class folder none of whose files could be used.
    NoUsableImages,
    /// A file or folder that is not inside a class folder.
    OutsideClassFolder,
    /// A test class folder whose class has no training images.
    NoTrainingClass,
    /// Nested deeper than the search goes.
    TooDeep,
    /// A FIFO, device or socket: never opened, since reading one could block or never end.
    NotRegular(&'static str),
    /// A file or folder already listed under another path (a link to it, or a link back up the tree).
    SeenBefore(PathBuf),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnImage => write!(f, "not an image"),
            Self::Unsupported(detail) => write!(f, "unsupported image format: {detail}"),
            Self::Corrupt(detail) => write!(f, "corrupt: {detail}"),
            Self::TooLarge(detail) => write!(f, "too large: {detail}"),
            Self::Unreadable(detail) => write!(f, "cannot read: {detail}"),
            Self::EmptyClassFolder => write!(f, "empty class folder"),
            Self::NoUsableImages => write!(f, "class folder with no usable image"),
            Self::OutsideClassFolder => write!(f, "not inside a class folder"),
            Self::NoTrainingClass => write!(f, "test class with no training images"),
            Self::TooDeep => write!(f, "nested more than {MAX_DEPTH} folders deep"),
            Self::NotRegular(kind) => write!(f, "{kind}, not a regular file"),
            Self::SeenBefore(first) => write!(f, "the same as {}, reached again through a link", first.display()),
        }
    }
}

/// One file or folder that a load left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Full path of the file or folder.
    pub path: PathBuf,
    pub reason: SkipReason,
    /// A whole folder (an empty class, say) rather than one file.
    pub is_folder: bool,
}

/// What a load did besides returning data: what it skipped and the choices it made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The path the load started from; skipped paths are shown relative to it.
    pub root: PathBuf,
    /// Skipped files and folders, sorted by path.
    pub skipped: Vec<Skipped>,
    /// Decisions worth telling the user: the image size and channels chosen, options ignored.
    pub notes: Vec<String>,
}

impl LoadReport {
    /// An empty report for a load that started at `root`.
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf(), ..Self::default() }
    }

    /// One line such as "skipped 3 files: a.txt (not an image), b.png (corrupt: …), … and 1 more",
    /// or `None` when nothing was skipped.
    pub fn skipped_summary(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let folders = self.skipped.iter().filter(|skipped| skipped.is_folder).count();
        let files = self.skipped.len() - folders;
        let count = match (files, folders) {
            (files, 0) => plural(files, "file"),
            (0, folders) => plural(folders, "folder"),
            (files, folders) => format!("{} and {}", plural(files, "file"), plural(folders, "folder")),
        };
        let mut listed = self
            .skipped
            .iter()
            .take(LISTED_SKIPS)
            .map(|skipped| format!("{} ({})", self.display_path(&skipped.path), shorten(&skipped.reason.to_string())))
            .collect::<Vec<_>>()
            .join(", ");
        if self.skipped.len() > LISTED_SKIPS {
            listed.push_str(&format!(", … and {} more", self.skipped.len() - LISTED_SKIPS));
        }
        Some(format!("skipped {count}: {listed}"))
    }

    /// `path` relative to the root when it lies inside it, for messages.
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .ok()
            .filter(|rest| !rest.as_os_str().is_empty())
            .unwrap_or(path)
            .display()
            .to_string()
    }

    pub(crate) fn skip(&mut self, path: &Path, reason: SkipReason, is_folder: bool) {
        self.skipped.push(Skipped { path: path.to_path_buf(), reason, is_folder });
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text)),
        None => text.to_owned(),
    }
}
