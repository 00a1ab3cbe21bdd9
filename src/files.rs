//! Files the program reads and writes: regular files only on the way in (a FIFO, a device or a socket named
//! like a data file must never block or stream for ever), and whole files or whole rows on the way out (a
//! reader never sees half an image or a torn row, whatever happens to the disk).

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// What a path that is neither a regular file nor a folder is, for messages: "a FIFO (named pipe)".
pub fn special_kind(metadata: &Metadata) -> Option<&'static str> {
    let kind = metadata.file_type();
    if kind.is_file() || kind.is_dir() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_char_device() {
            return Some("a character device");
        }
        if kind.is_block_device() {
            return Some("a block device");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Which file or folder on disk a path leads to, whatever links lead there: two paths with the same id are one
/// file, which is how a walk sees each folder and file once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId(#[cfg(unix)] (u64, u64), #[cfg(not(unix))] PathBuf);

impl FileId {
    /// The id of `path`, whose (link-followed) metadata is `metadata`.
    #[cfg_attr(unix, allow(unused_variables))]
    pub fn of(path: &Path, metadata: &Metadata) -> FileId {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileId((metadata.dev(), metadata.ino()))
        }
        #[cfg(not(unix))]
        {
            FileId(fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
        }
    }
}

/// The error for a path that is not a regular file: says what it is and that only files are read.
fn not_regular(kind: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("it is {kind}, not a regular file, so it is not read"))
}

/// Opens `path` for reading if it is a regular file (links followed). The type is checked before `open`, and
/// the open itself does not wait (`O_NONBLOCK`, which regular files ignore), so a FIFO swapped in between
/// cannot block it either; the handle's type is checked again.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let metadata = fs::metadata(path)?;
    if metadata.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "it is a folder, not a file"));
    }
    if let Some(kind) = special_kind(&metadata) {
        return Err(not_regular(kind));
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if let Some(kind) = special_kind(&file.metadata()?) {
        return Err(not_regular(kind));
    }
    Ok(file)
}

/// Reads a whole regular file (see [`open_regular`]); a file too large for memory is an error, not an abort.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len).map_err(|_| {
        io::Error::new(io::ErrorKind::OutOfMemory, format!("{len} bytes is more than this machine can hold"))
    })?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`: a reader sees the
/// old file or the whole new one, never a part, and a failed write (full disk, read-only folder) leaves
/// nothing behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let written = (|| {
        // create_new: never write through a link someone planted at the temporary's predictable name.
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, path)?;
        // The rename itself is durable once the folder is synced (best effort: not every system allows it).
        if let Ok(folder) = File::open(dir) {
            folder.sync_all().ok();
        }
        Ok(())
    })();
    if written.is_err() {
        fs::remove_file(&temporary).ok();
    }
    written
}

/// An append-only text file written in whole rows: rows are buffered, and each flush writes them in one call;
/// if that write fails part-way (a full disk), the file is cut back to its last whole row before the error is
/// returned, so a reader never sees a torn row.
pub struct RowFile {
    path: PathBuf,
    file: File,
    /// Bytes on disk that end with a whole row.
    written: u64,
    pending: String,
}

/// Buffered rows beyond this are written at once.
const ROW_BUFFER: usize = 8 * 1024;

impl RowFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> io::Result<RowFile> {
        let file = File::create(path)?;
        Ok(RowFile { path: path.to_path_buf(), file, written: 0, pending: String::new() })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one or more whole rows (each ending in a newline); writes them when the buffer is full.
    pub fn push(&mut self, rows: &str) -> io::Result<()> {
        self.pending.push_str(rows);
        if self.pending.len() >= ROW_BUFFER { self.flush() } else { Ok(()) }
    }

    /// Writes every queued row.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.file.write_all(self.pending.as_bytes()) {
            Ok(()) => {
                self.written += self.pending.len() as u64;
                self.pending.clear();
                Ok(())
            }
            Err(error) => {
                // Cut the torn tail off; if even that fails the error below still tells the user.
                if self.file.set_len(self.written).is_ok() {
                    use std::io::Seek;
                    self.file.seek(io::SeekFrom::Start(self.written)).ok();
                }
                self.pending.clear();
                Err(error)
            }
        }
    }
}

impl Drop for RowFile {
    fn drop(&mut self) {
        self.flush().ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("convscope-files-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_without_blocking() {
        let error = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(error.to_string().contains("a character device"), "{error}");
        let dir = scratch("fifo");
        let fifo = dir.join("x.png");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // Opening a FIFO for reading would block until a writer comes; this returns at once.
        let error = read_regular(&fifo).unwrap_err();
        assert!(error.to_string().contains("FIFO"), "{error}");
        assert_eq!(open_regular(&dir).unwrap_err().kind(), io::ErrorKind::IsADirectory);
        fs::remove_dir_all(dir).ok();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_never_leaves_a_torn_row() {
        // /dev/full accepts opens and fails every write with "no space left on device".
        let dir = scratch("rows");
        let full = dir.join("metrics.csv");
        std::os::unix::fs::symlink("/dev/full", &full).unwrap();
        let mut rows = RowFile::create(&full).unwrap();
        rows.push("step,loss\n").unwrap();
        let error = rows.flush().unwrap_err();
        assert_eq!(error.raw_os_error(), Some(28), "{error}");

        let path = dir.join("fine.csv");
        let mut rows = RowFile::create(&path).unwrap();
        rows.push("a,b\n").unwrap();
        rows.push("1,2\n").unwrap();
        drop(rows);
        assert_eq!(fs::read_to_string(&path).unwrap(), "a,b\n1,2\n");

        // An atomic write whose rename fails (a folder where the file should go) leaves no temporary behind.
        let blocked = dir.join("x.png");
        fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomically(&blocked, b"png").is_err());
        write_atomically(&dir.join("y.png"), b"png").unwrap();
        assert_eq!(fs::read(dir.join("y.png")).unwrap(), b"png");
        let mut names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["fine.csv", "metrics.csv", "x.png", "y.png"], "no temporary file is left");
        fs::remove_dir_all(dir).ok();
    }
}
