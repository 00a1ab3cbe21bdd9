//! A run's history on disk: the worker's events as they happened (the net, metric rows, snapshots, hints,
//! applied changes), appended to one file so any run folder can be replayed through the same
//! [`TrainingView`](crate::app::view::TrainingView) the window uses. Each record is length-prefixed and
//! checksummed, so a killed process costs only the record it was writing: the reader keeps every complete
//! record before a torn tail and says what it dropped. Snapshots are thinned as a run grows long.
//!
//! Layout: `CSHIST\r\n` · format (u32 LE) · records, each: payload length (u32 LE) · CRC-32 of the payload
//! (u32 LE) · payload (a MessagePack [`WorkerEvent`]).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::protocol::{DataOrigin, WorkerEvent};

/// The history format this build writes and reads.
pub const HISTORY_FORMAT: u32 = 1;
/// The history file's name in a run folder.
pub const HISTORY_FILE: &str = "history.bin";
const SIGNATURE: &[u8; 8] = b"CSHIST\r\n";
/// A record larger than this is taken for damage (a snapshot of the largest nets is a few MB).
const MAX_RECORD: u32 = 256 << 20;

/// Why a history could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be created or written.
    #[error("could not write the history {}: {source} — training goes on without recording", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("could not read the history {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a history file.
    #[error("{} is not a convscope history (it does not start with the history signature)", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// A history of another format.
    #[error("{} is a history of format {found}; this convscope reads format {HISTORY_FORMAT}", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
    /// An event could not be encoded (nothing was written).
    #[error("could not encode an event for the history: {0}")]
    Encode(String),
}

/// The history file `run` names: the file itself, or the run folder's [`HISTORY_FILE`].
pub fn history_path(run: &Path) -> PathBuf {
    if run.is_dir() { run.join(HISTORY_FILE) } else { run.to_path_buf() }
}

/// The run folder's record of its data: a [`DataOrigin`] as JSON.
pub const DATA_ORIGIN_FILE: &str = "data.json";

/// Records in the run folder `run_dir` which data the run trains on (replacing an earlier record). Paths are
/// made absolute, so a replay opened from another folder finds the data.
pub fn write_data_origin(run_dir: &Path, origin: &DataOrigin) -> std::io::Result<()> {
    fs::create_dir_all(run_dir)?;
    let absolute = |path: &PathBuf| std::path::absolute(path).unwrap_or_else(|_| path.clone());
    let mut origin = origin.clone();
    if let Some(request) = origin.request.as_mut() {
        request.path = absolute(&request.path);
    }
    origin.targets = origin.targets.as_ref().map(absolute);
    let json = serde_json::to_vec_pretty(&origin).map_err(std::io::Error::other)?;
    crate::files::write_atomically(&run_dir.join(DATA_ORIGIN_FILE), &json)
}

/// The data the run in `run_dir` trained on: `Ok(None)` when the folder does not say (runs recorded before
/// it did, which were all on the embedded digits), an error naming the file when it cannot be read.
pub fn read_data_origin(run_dir: &Path) -> Result<Option<DataOrigin>, String> {
    let path = run_dir.join(DATA_ORIGIN_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let read = crate::files::read_regular(&path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
    serde_json::from_slice(&read).map(Some).map_err(|e| format!("{} is damaged: {e}", path.display()))
}

/// Appends events to a history file; every record reaches the operating system before `append` returns, so a
/// killed process loses at most the record being written.
pub struct HistoryWriter {
    path: PathBuf,
    file: BufWriter<File>,
    bytes: u64,
}

impl HistoryWriter {
    /// Creates (or replaces) the history at `path` and writes its signature.
    pub fn create(path: &Path) -> Result<HistoryWriter, HistoryError> {
        let error = |source| HistoryError::Write { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(error)?;
        }
        let mut file = BufWriter::new(File::create(path).map_err(error)?);
        file.write_all(SIGNATURE).map_err(error)?;
        file.write_all(&HISTORY_FORMAT.to_le_bytes()).map_err(error)?;
        file.flush().map_err(error)?;
        Ok(HistoryWriter { path: path.to_path_buf(), file, bytes: (SIGNATURE.len() + 4) as u64 })
    }

    /// Appends one event as a record; returns the record's byte offset (for [`read_record`]).
    pub fn append(&mut self, event: &WorkerEvent) -> Result<u64, HistoryError> {
        let payload = rmp_serde::to_vec(event).map_err(|e| HistoryError::Encode(e.to_string()))?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&len| len <= MAX_RECORD)
            .ok_or_else(|| HistoryError::Encode(format!("an event of {} bytes is too large", payload.len())))?;
        let error = |source| HistoryError::Write { path: self.path.clone(), source };
        self.file.write_all(&len.to_le_bytes()).map_err(error)?;
        self.file.write_all(&crc32fast::hash(&payload).to_le_bytes()).map_err(error)?;
        self.file.write_all(&payload).map_err(error)?;
        self.file.flush().map_err(error)?;
        let offset = self.bytes;
        self.bytes += 8 + u64::from(len);
        Ok(offset)
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// A history read back: every complete record, and what was dropped at the end, if anything.
#[derive(Debug)]
pub struct History {
    /// The events, in the order they happened.
    pub events: Vec<WorkerEvent>,
    /// Each event's record offset (for [`read_record`]).
    pub offsets: Vec<u64>,
    /// A torn or damaged tail: its byte offset and what was wrong (the events before it are all there).
    pub torn: Option<(u64, String)>,
}

/// Reads the history at `path`, keeping every complete record before a torn or damaged one.
pub fn read_history(path: &Path) -> Result<History, HistoryError> {
    let bytes =
        crate::files::read_regular(path).map_err(|source| HistoryError::Read { path: path.to_path_buf(), source })?;
    parse_history(path, &bytes)
}

/// Parses the bytes of a history file (`path` names it in errors).
pub fn parse_history(path: &Path, bytes: &[u8]) -> Result<History, HistoryError> {
    let head = SIGNATURE.len() + 4;
    if bytes.len() < SIGNATURE.len() || &bytes[..SIGNATURE.len()] != SIGNATURE {
        return Err(HistoryError::Foreign { path: path.to_path_buf() });
    }
    let found = bytes.get(SIGNATURE.len()..head).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if found != HISTORY_FORMAT {
        return Err(HistoryError::Version { path: path.to_path_buf(), found });
    }
    let (mut events, mut offsets) = (Vec::new(), Vec::new());
    let mut at = head;
    let torn = loop {
        if at == bytes.len() {
            break None;
        }
        match record_at(bytes, at) {
            Ok((event, next)) => {
                events.push(event);
                offsets.push(at as u64);
                at = next;
            }
            Err(detail) => break Some((at as u64, detail)),
        }
    };
    Ok(History { events, offsets, torn })
}

/// The record starting at `at` and where the next one starts, or what is wrong with it.
fn record_at(bytes: &[u8], at: usize) -> Result<(WorkerEvent, usize), String> {
    let word =
        |offset: usize| bytes.get(at + offset..at + offset + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(len), Some(checksum)) = (word(0), word(4)) else {
        return Err(format!("a record header cut short ({} bytes left)", bytes.len() - at));
    };
    if len > MAX_RECORD {
        return Err(format!("a record claims {len} bytes"));
    }
    let start = at + 8;
    let payload = bytes
        .get(start..start + len as usize)
        .ok_or_else(|| format!("a record of {len} bytes cut short at {} bytes", bytes.len() - start))?;
    if crc32fast::hash(payload) != checksum {
        return Err("a record whose checksum does not match".to_owned());
    }
    let event = rmp_serde::from_slice(payload).map_err(|e| format!("a record that does not decode: {e}"))?;
    Ok((event, start + len as usize))
}

/// Records a run's events into its history file, created on the first record: the net, metric rows,
/// snapshots (every one, or thinned as the run grows), hints, applied changes, divergences and saves, and the
/// same of an A/B run's arm B (until an arm is closed).
pub struct Recorder {
    path: PathBuf,
    writer: Option<HistoryWriter>,
    thinning: Option<SnapshotThinning>,
    failed: bool,
}

impl Recorder {
    /// A recorder into `path`, keeping every snapshot it is given, or (`thin`) a [`SnapshotThinning`] of them.
    pub fn new(path: PathBuf, thin: bool) -> Recorder {
        Recorder { path, writer: None, thinning: thin.then(SnapshotThinning::default), failed: false }
    }

    /// Records `event` if it belongs in a history: [`Recorded::At`] its offset, or the error the first time
    /// writing fails (the caller tells the user once; recording then stops and training goes on).
    pub fn record(&mut self, event: &WorkerEvent) -> Recorded {
        match event {
            WorkerEvent::Started(_) => {
                if let Some(thinning) = self.thinning.as_mut() {
                    *thinning = SnapshotThinning::default();
                }
            }
            WorkerEvent::Snapshot(snapshot) => {
                if self.thinning.as_mut().is_some_and(|t| !t.keep(snapshot.step)) {
                    return Recorded::Skipped;
                }
            }
            WorkerEvent::ArmB(inner) => {
                if !self.keeps_arm_b(inner) {
                    return Recorded::Skipped;
                }
            }
            WorkerEvent::Metrics(_)
            | WorkerEvent::Hints(_)
            | WorkerEvent::Applied { .. }
            | WorkerEvent::Diverged { .. }
            | WorkerEvent::Saved { .. }
            | WorkerEvent::ArmClosed(_) => {}
            _ => return Recorded::Skipped,
        }
        if self.failed {
            return Recorded::Skipped;
        }
        let written = match self.writer.as_mut() {
            Some(writer) => writer.append(event),
            None => HistoryWriter::create(&self.path).and_then(|mut writer| {
                let written = writer.append(event);
                self.writer = Some(writer);
                written
            }),
        };
        match written {
            Ok(offset) => Recorded::At(offset),
            Err(error) => {
                self.failed = true;
                Recorded::Failed(error)
            }
        }
    }

    /// Whether arm B's `event` goes in: its net, rows, hints, changes and divergence, and a snapshot of a step
    /// whose snapshots are kept (one decision per step, so the arms' records thin alike).
    fn keeps_arm_b(&mut self, event: &WorkerEvent) -> bool {
        match event {
            WorkerEvent::Snapshot(snapshot) => self.thinning.as_mut().is_none_or(|t| t.keep(snapshot.step)),
            WorkerEvent::Started(_)
            | WorkerEvent::Metrics(_)
            | WorkerEvent::Hints(_)
            | WorkerEvent::Applied { .. }
            | WorkerEvent::Diverged { .. } => true,
            _ => false,
        }
    }

    /// The history file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`Recorder::record`] did with an event.
#[derive(Debug)]
pub enum Recorded {
    /// Nothing: the event does not belong in a history, was thinned out, or recording has stopped.
    Skipped,
    /// Written as the record at this byte offset.
    At(u64),
    /// Writing failed (said once; recording stops).
    Failed(HistoryError),
}

/// The record at byte `offset` of the history at `path` (an offset [`HistoryWriter::append`] returned).
pub fn read_record(path: &Path, offset: u64) -> Result<WorkerEvent, HistoryError> {
    use std::io::{Read, Seek, SeekFrom};
    let error = |source| HistoryError::Read { path: path.to_path_buf(), source };
    let mut file = crate::files::open_regular(path).map_err(error)?;
    file.seek(SeekFrom::Start(offset)).map_err(error)?;
    let mut head = [0u8; 8];
    file.read_exact(&mut head).map_err(error)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]).min(MAX_RECORD) as usize;
    let mut record = head.to_vec();
    record.resize(8 + len, 0);
    file.read_exact(&mut record[8..]).map_err(error)?;
    record_at(&record, 0).map(|(event, _)| event).map_err(|detail| HistoryError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, detail),
    })
}

/// Which snapshots a long run keeps: every one for the first [`ALL_UNTIL`] steps, then ones at least
/// `step / THINNING` steps apart, so the count grows with the logarithm of the run's length (about
/// [`THINNING`] more each time the run grows by a factor e).
#[derive(Debug, Clone, Default)]
pub struct SnapshotThinning {
    last: Option<u64>,
}

/// Steps during which every snapshot is kept.
pub const ALL_UNTIL: u64 = 100;
/// See [`SnapshotThinning`].
pub const THINNING: u64 = 60;

impl SnapshotThinning {
    /// Whether to keep the snapshot of step `step` (and, if so, remember it). Asked again for the step it
    /// kept last — the other arm's snapshot of that step — it says yes again.
    pub fn keep(&mut self, step: u64) -> bool {
        if self.last == Some(step) {
            return true;
        }
        let gap = if step <= ALL_UNTIL { 1 } else { step / THINNING };
        let keep = self.last.is_none_or(|last| step >= last.saturating_add(gap.max(1)));
        if keep {
            self.last = Some(step);
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("convscope-history-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir.join(HISTORY_FILE)
    }

    #[test]
    fn a_torn_or_damaged_tail_costs_only_the_records_from_there() {
        let path = scratch("torn");
        let mut writer = HistoryWriter::create(&path).unwrap();
        let events: Vec<WorkerEvent> =
            (0..3).map(|i| WorkerEvent::Notice(format!("event {i}"))).chain([WorkerEvent::Hints(Vec::new())]).collect();
        for event in &events {
            writer.append(event).unwrap();
        }
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, writer.bytes());
        let last = writer.append(&WorkerEvent::Notice("at the end".into())).unwrap();
        assert_eq!(read_record(&path, last).unwrap(), WorkerEvent::Notice("at the end".into()));
        assert_eq!(read_record(&path, 12).unwrap(), events[0]);
        assert!(read_record(&path, 13).is_err(), "not a record's start");
        let whole = parse_history(&path, &bytes).unwrap();
        assert_eq!(whole.events, events);
        assert!(whole.torn.is_none());
        // Cut inside the last record: the three before it are all there.
        let cut = parse_history(&path, &bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(cut.events, events[..3]);
        assert!(cut.torn.as_ref().is_some_and(|(_, what)| what.contains("cut short")), "{:?}", cut.torn);
        // A flipped byte in the second record: the first stays, the rest are dropped and said so.
        let mut damaged = bytes.clone();
        let second = 12 + 8 + (u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize) + 9;
        damaged[second] ^= 1;
        let read = parse_history(&path, &damaged).unwrap();
        assert_eq!(read.events, events[..1]);
        assert!(read.torn.as_ref().is_some_and(|(_, what)| what.contains("checksum")), "{:?}", read.torn);
        assert!(matches!(parse_history(&path, b"PK\x03\x04 a zip"), Err(HistoryError::Foreign { .. })));
    }

    #[test]
    fn thinning_keeps_early_steps_and_grows_with_the_log_of_the_run() {
        let mut thinning = SnapshotThinning::default();
        let kept = (1..=1_000_000u64).filter(|&s| thinning.keep(s)).count();
        // 100 early ones, then about 60 per factor e over 100 → 1,000,000: 60 · ln(10,000) ≈ 553.
        assert!((600..700).contains(&kept), "{kept}");
        let mut thinning = SnapshotThinning::default();
        assert!(thinning.keep(5) && thinning.keep(6) && thinning.keep(7));
        assert!(thinning.keep(6000) && !thinning.keep(6050) && thinning.keep(6101));
        // The other arm's snapshot of a step gets the same answer.
        assert!(thinning.keep(6101) && !thinning.keep(6150) && !thinning.keep(6150));
    }
}
