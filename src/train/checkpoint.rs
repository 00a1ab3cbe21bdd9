//! Checkpoints: one file holding everything a run needs to continue exactly — the weights and the optimiser
//! state as burn records (burnpack), the step, the batch order and both random generators, the configuration
//! with the live per-layer settings — behind a signature, a format version and a checksum. Written
//! atomically (a temporary file, fsync, rename), so a crash or a full disk never leaves half a checkpoint
//! where the last good one was.
//!
//! Layout: `CSCKPT\r\n` · format (u32 LE) · header length (u64 LE) · header (JSON) · model length · model
//! record · optimiser length · optimiser record · CRC-32 of everything before it (u32 LE).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::arch::{ImageShape, LayerSettings};
use crate::config::{BackendKind, TrainConfig};
use crate::data::DataSplit;
use crate::data::batch::{BatchSampler, RngState, SamplerState};
use crate::files;
use crate::train::error::{CheckpointError, TrainError};
use crate::train::trainer::{Trainer, build_optimizer};

/// The checkpoint format this build writes and reads.
pub const CHECKPOINT_FORMAT: u32 = 1;
/// The file extension of checkpoints.
pub const CHECKPOINT_EXTENSION: &str = "ckpt";
/// The first bytes of every checkpoint (the `\r\n` catches a text-mode copy, as PNG's signature does).
const SIGNATURE: &[u8; 8] = b"CSCKPT\r\n";

/// `checkpoint-step000100.ckpt`: the name a checkpoint taken after step `step` gets.
pub fn checkpoint_file_name(step: u64) -> String {
    format!("checkpoint-step{step:06}.{CHECKPOINT_EXTENSION}")
}

/// The data a checkpoint was trained on, as far as continuing needs it to match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataShape {
    /// Image shape.
    pub shape: ImageShape,
    /// Classes.
    pub classes: usize,
    /// Training examples (the batch order is a permutation of them).
    pub train_len: usize,
}

impl DataShape {
    /// The shape of `data`.
    pub fn of(data: &DataSplit) -> DataShape {
        DataShape { shape: data.train.shape(), classes: data.train.classes(), train_len: data.train.len() }
    }
}

impl std::fmt::Display for DataShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} images of {} classes, {} training examples", self.shape, self.classes, self.train_len)
    }
}

/// The plain part of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    config: TrainConfig,
    /// The live settings of every layer with weights, input to output.
    settings: Vec<LayerSettings>,
    data: DataShape,
    step: u64,
    sampler: SamplerState,
    shift_rng: RngState,
    recent_accuracy: Vec<(usize, usize)>,
    /// `None` before the first evaluation (JSON has no NaN).
    test_accuracy: Option<f32>,
    test_step: u64,
    elapsed_secs: f64,
    last_loss: Option<f32>,
    /// The explosion rule's reference: the first step's loss and gradient norms.
    reference: Option<(f32, Vec<f32>)>,
}

/// A checkpoint read from a file and checked: ready to resume from.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    header: Header,
    model: Vec<u8>,
    optimizer: Vec<u8>,
}

impl Checkpoint {
    /// The step it was taken after.
    pub fn step(&self) -> u64 {
        self.header.step
    }

    /// The configuration it was trained with (with its live changes).
    pub fn config(&self) -> &TrainConfig {
        &self.header.config
    }

    fn mismatch(&self, differs: String) -> CheckpointError {
        CheckpointError::Mismatch { path: self.path.clone(), differs }
    }
}

fn finite(value: f32) -> Option<f32> {
    value.is_finite().then_some(value)
}

fn record_error<'a>(path: &'a Path, part: &'static str) -> impl Fn(burn::store::RecordError) -> CheckpointError + 'a {
    move |e| CheckpointError::Invalid { path: path.to_path_buf(), part, detail: e.to_string() }
}

impl Trainer {
    /// The checkpoint of the run as it stands, as the bytes of a checkpoint file.
    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>, TrainError> {
        let header = Header {
            config: self.config.clone(),
            settings: self.model.settings(),
            data: DataShape::of(&self.data),
            step: self.step,
            sampler: self.sampler.state(),
            shift_rng: RngState::of(&self.shift_rng),
            recent_accuracy: self.recent_accuracy.iter().copied().collect(),
            test_accuracy: finite(self.test_accuracy),
            test_step: self.test_step,
            elapsed_secs: self.elapsed_secs,
            last_loss: finite(self.last_loss),
            reference: self.reference.clone(),
        };
        let encode = |part: &'static str| move |e: String| CheckpointError::Encode { part, detail: e };
        let json = serde_json::to_vec(&header).map_err(|e| encode("header")(e.to_string()))?;
        let model = self.model.clone().into_record().into_bytes().map_err(|e| encode("model")(e.to_string()))?;
        let optimizer = self.optimizer.into_bytes().map_err(|e| encode("optimiser state")(e.to_string()))?;
        let mut bytes = Vec::with_capacity(json.len() + model.len() + optimizer.len() + 64);
        bytes.extend_from_slice(SIGNATURE);
        bytes.extend_from_slice(&CHECKPOINT_FORMAT.to_le_bytes());
        for part in [&json[..], &model[..], &optimizer[..]] {
            bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
            bytes.extend_from_slice(part);
        }
        let checksum = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        Ok(bytes)
    }

    /// Writes the checkpoint to `path` atomically: a crash or a full disk leaves the previous file there intact.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), TrainError> {
        let bytes = self.checkpoint_bytes()?;
        files::write_atomically(path, &bytes)
            .map_err(|source| CheckpointError::Write { path: path.to_path_buf(), source })?;
        Ok(())
    }

    /// A trainer that continues `checkpoint` on `data`, exactly where it stopped, with `config` (the
    /// checkpoint's own, or one with changed live settings: activations, bias, batch-norm, rate, optimiser
    /// hyper-parameters). Refused, saying what differs, when the net or the data do not match.
    pub fn resume(
        checkpoint: Checkpoint,
        config: TrainConfig,
        data: Arc<DataSplit>,
        backend: BackendKind,
    ) -> Result<Trainer, TrainError> {
        let here = DataShape::of(&data);
        if here != checkpoint.header.data {
            let differs = format!("it was trained on {}; this data has {here}", checkpoint.header.data);
            return Err(checkpoint.mismatch(differs).into());
        }
        let saved = &checkpoint.header.config;
        let (planned, saved_plan) = (config.plan(here.shape, here.classes)?, saved.plan(here.shape, here.classes)?);
        if !same_architecture(&planned, &saved_plan) {
            let describe = |arch: &str, plan: &crate::arch::NetPlan| {
                let layers: Vec<String> = plan.layers.iter().map(|l| format!("{} {}", l.name, l.out_shape)).collect();
                format!("`{arch}` ({})", layers.join(", "))
            };
            let differs = format!(
                "its net is {}; this run asks for {}",
                describe(&saved.arch, &saved_plan),
                describe(&config.arch, &planned)
            );
            return Err(checkpoint.mismatch(differs).into());
        }
        let mut trainer = Trainer::new(config, data, backend)?;
        let path = checkpoint.path.clone();
        let model_record =
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(checkpoint.model)).map_err(record_error(&path, "model"))?;
        let model = trainer.model.clone().try_load_record(model_record).map_err(record_error(&path, "model"))?;
        trainer.model = model;
        let header = checkpoint.header;
        // Settings changed on resume win; otherwise the live settings of the checkpoint come back.
        if same_live_settings(&trainer.config, &header.config) {
            for (layer, settings) in trainer.model.layers.iter_mut().zip(&header.settings) {
                layer.settings = *settings;
            }
        }
        // A new kind of optimiser starts fresh, as a live switch does.
        if trainer.config.optimizer == header.config.optimizer {
            trainer.optimizer = build_optimizer(&trainer.config)
                .from_bytes(Bytes::from_bytes_vec(checkpoint.optimizer))
                .map_err(record_error(&path, "optimiser state"))?;
        }
        trainer.sampler =
            BatchSampler::from_state(header.sampler, here.train_len).ok_or_else(|| CheckpointError::Invalid {
                path: path.clone(),
                part: "batch order",
                detail: "not a permutation of the training set".into(),
            })?;
        trainer.shift_rng = header.shift_rng.restore();
        trainer.step = header.step;
        trainer.recent_accuracy = VecDeque::from(header.recent_accuracy);
        trainer.test_accuracy = header.test_accuracy.unwrap_or(f32::NAN);
        trainer.test_step = header.test_step;
        trainer.elapsed_secs = header.elapsed_secs;
        trainer.last_loss = header.last_loss.unwrap_or(f32::NAN);
        trainer.reference = header.reference;
        Ok(trainer)
    }
}

/// Whether two plans have the same layers with the same shapes (live settings aside): the weights fit.
fn same_architecture(a: &crate::arch::NetPlan, b: &crate::arch::NetPlan) -> bool {
    let shape = |plan: &crate::arch::NetPlan| -> Vec<_> {
        plan.layers.iter().map(|l| (l.name.clone(), l.kind, l.in_shape, l.out_shape)).collect()
    };
    shape(a) == shape(b)
}

/// Whether two configurations ask for the same per-layer settings (so a checkpoint's live changes stand).
fn same_live_settings(a: &TrainConfig, b: &TrainConfig) -> bool {
    (&a.activation, &a.layer_activations, a.bias, a.batch_norm, a.output)
        == (&b.activation, &b.layer_activations, b.bias, b.batch_norm, b.output)
}

/// Reads and checks the checkpoint at `path`: signature, format, lengths, checksum, header.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes =
        files::read_regular(path).map_err(|source| CheckpointError::Read { path: path.to_path_buf(), source })?;
    parse_checkpoint(path, &bytes)
}

/// Checks and splits the bytes of a checkpoint file (`path` names it in errors).
pub fn parse_checkpoint(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < SIGNATURE.len() || &bytes[..SIGNATURE.len()] != SIGNATURE {
        return Err(CheckpointError::Foreign { path: path_buf() });
    }
    let mut reader = Reader { bytes, at: SIGNATURE.len(), path };
    let found = u32::from_le_bytes(reader.array("the format number")?);
    if found != CHECKPOINT_FORMAT {
        return Err(CheckpointError::Version { path: path_buf(), found, supported: CHECKPOINT_FORMAT });
    }
    let header = reader.part("the header")?;
    let model = reader.part("the model record")?;
    let optimizer = reader.part("the optimiser state")?;
    let body_end = reader.at;
    let expected = u32::from_le_bytes(reader.array("the checksum")?);
    if reader.at != bytes.len() {
        let detail = format!("{} bytes after the checksum", bytes.len() - reader.at);
        return Err(CheckpointError::Invalid { path: path_buf(), part: "layout", detail });
    }
    let found = crc32fast::hash(&bytes[..body_end]);
    if found != expected {
        return Err(CheckpointError::Corrupt { path: path_buf(), expected, found });
    }
    let header: Header = serde_json::from_slice(header).map_err(|e| CheckpointError::Invalid {
        path: path_buf(),
        part: "header",
        detail: e.to_string(),
    })?;
    Ok(Checkpoint { path: path_buf(), header, model: model.to_vec(), optimizer: optimizer.to_vec() })
}

/// Reads the length-prefixed parts of a checkpoint, naming where it ends early.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], CheckpointError> {
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or_else(|| {
            CheckpointError::Truncated {
                path: self.path.to_path_buf(),
                detail: format!("{} bytes, ending inside {what}", self.bytes.len()),
            }
        })?;
        let part = &self.bytes[self.at..end];
        self.at = end;
        Ok(part)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CheckpointError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N, what)?);
        Ok(array)
    }

    fn part(&mut self, what: &str) -> Result<&'a [u8], CheckpointError> {
        let len = u64::from_le_bytes(self.array(what)?);
        self.take(usize::try_from(len).unwrap_or(usize::MAX), what)
    }
}
