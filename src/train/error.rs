//! Why training could not start or a step could not run ([`TrainError`]), reading tensors back to the host,
//! and the one place a panic inside burn is caught and turned into an error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::TensorData;

use std::path::PathBuf;

use crate::arch::ImageShape;
use crate::config::{ConfigError, SettingError};
use crate::data::DataError;

/// Why a trainer could not be built, a change was refused, or a step could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The architecture spec does not parse or does not fit the data.
    #[error(transparent)]
    Spec(#[from] crate::arch::SpecError),
    /// The data could not be loaded or batched.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(#[from] ConfigError),
    /// A live change was refused.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The backend is not compiled into this binary.
    #[error("the {0} backend is not compiled in: rebuild with `--features {0}`")]
    BackendMissing(&'static str),
    /// More compute threads than make sense on this machine.
    #[error(
        "--threads {threads} is out of range: this machine has {cores} core(s), so use 1 to {most} (or leave it out for one per core)"
    )]
    Threads {
        /// What was asked for.
        threads: usize,
        /// The machine's cores.
        cores: usize,
        /// The most allowed.
        most: usize,
    },
    /// The net would need more memory than the budget allows.
    #[error("{0}")]
    TooMuchMemory(Box<MemoryRefusal>),
    /// The backend is compiled in but its device could not be set up (e.g. no GPU).
    #[error(
        "the {backend} backend could not start: {detail} — is there a GPU with a Vulkan, Metal or DX12 driver? Use --backend flex to train on the CPU"
    )]
    DeviceUnavailable {
        /// The backend.
        backend: &'static str,
        /// What failed.
        detail: String,
    },
    /// A checkpoint could not be written, read or resumed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A tensor could not be read back from the device.
    #[error("could not read {what} back from the device: {detail}")]
    Readback {
        /// Which tensor.
        what: &'static str,
        /// The backend's message.
        detail: String,
    },
    /// Weights given for a layer do not have its shape.
    #[error("weights of shape {given:?} do not fit layer {layer} of shape {expected:?}")]
    WeightShape {
        /// Index among the layers with weights.
        layer: usize,
        /// The shape given.
        given: Vec<usize>,
        /// The layer's shape.
        expected: Vec<usize>,
    },
    /// The probe index is past the test split.
    #[error("probe index {index} is past the end of the test split ({len} images)")]
    ProbeIndex {
        /// The index asked for.
        index: usize,
        /// Test images.
        len: usize,
    },
    /// A probe image does not have the data's shape.
    #[error("{name}: {got} bytes do not make one {shape} image ({} bytes): convert it to the data's shape first", shape.pixels())]
    ProbeShape {
        /// The image's name.
        name: String,
        /// Bytes given.
        got: usize,
        /// The data's image shape.
        shape: ImageShape,
    },
    /// A regression task from a targets file, but the data came without one.
    #[error(
        "the task regression:file takes its targets from a CSV, but none was given: add --targets FILE.csv (rows `index,target`), or pick regression:slant or regression:ink"
    )]
    NoTargets,
    /// A new init asked for after the weights have trained.
    #[error(
        "the init only draws the starting weights, and this run is at step {step}: fork at step 0 (a preset opens so), or Reset with the new init"
    )]
    InitAfterFirstStep {
        /// The run's step.
        step: u64,
    },
    /// "Restore" was asked for before any healthy state was kept.
    #[error("no healthy state is kept yet: one is taken every {every} steps while training is healthy")]
    NoHealthyState {
        /// Steps between two healthy states.
        every: u64,
    },
    /// The optimiser state could not be saved or restored.
    #[error("could not {action} the optimiser state: {detail}")]
    OptimizerState {
        /// "save" or "restore".
        action: &'static str,
        /// burn's message.
        detail: String,
    },
    /// A change was asked for before any net could be built.
    #[error("there is no net yet: reset with a valid configuration first")]
    NoNet,
    /// Code inside burn (or ours) panicked; nothing was changed.
    #[error("{what} panicked: {message}")]
    Panicked {
        /// What was running, e.g. "the step".
        what: &'static str,
        /// The panic's message.
        message: String,
    },
}

/// Why a checkpoint could not be written, read or used. Nothing else is lost in any of these.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read.
    #[error("could not read the checkpoint {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be written; the previous checkpoint at that path, if any, is untouched.
    #[error(
        "could not write the checkpoint {}: {source} — any earlier checkpoint there is intact; free some space or choose another folder",
        path.display()
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A part could not be encoded (nothing was written).
    #[error("could not encode the checkpoint's {part}: {detail}")]
    Encode {
        /// Which part.
        part: &'static str,
        /// The encoder's message.
        detail: String,
    },
    /// Not a checkpoint at all.
    #[error(
        "{} is not a convscope checkpoint (it does not start with the checkpoint signature): give a .ckpt file written by `convscope train --save-every` or the window's Save",
        path.display()
    )]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// A checkpoint of another format version.
    #[error(
        "{} is a checkpoint of format {found}; this convscope reads format {supported}: open it with the convscope that wrote it",
        path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
        /// The format this build reads.
        supported: u32,
    },
    /// The file ends early: it was not written completely.
    #[error("{} is cut short ({detail}): it was not written completely; use an earlier checkpoint", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where it ends.
        detail: String,
    },
    /// The bytes were changed after writing.
    #[error(
        "{} is damaged: its checksum is {found:08x} where the file says {expected:08x}; use an earlier checkpoint",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The checksum stored in the file.
        expected: u32,
        /// The checksum of the bytes.
        found: u32,
    },
    /// The parts are intact but do not make sense (a header or record that does not parse).
    #[error("{} holds an unreadable {part}: {detail}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which part.
        part: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// The checkpoint belongs to another net or other data.
    #[error("{} does not fit: {differs}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs, both sides named.
        differs: String,
    },
}

/// Moves a tensor's values out to the host where nothing else holds them (the CPU backends), rather than
/// copying them.
pub fn readback(what: &'static str, data: TensorData) -> Result<Vec<f32>, TrainError> {
    data.try_into_vec::<f32>().map_err(|e| TrainError::Readback { what, detail: format!("{e:?}") })
}

/// Runs `work`, turning a panic into [`TrainError::Panicked`]: the worker must outlive any failure inside
/// burn, and the user must see it.
pub fn catch_panic<T>(what: &'static str, work: impl FnOnce() -> Result<T, TrainError>) -> Result<T, TrainError> {
    catch_unwind(AssertUnwindSafe(work))
        .unwrap_or_else(|payload| Err(TrainError::Panicked { what, message: panic_message(payload.as_ref()) }))
}

/// The text of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// A net refused for its memory: the estimate, where it goes, the budget, and what would fit.
#[derive(Debug)]
pub struct MemoryRefusal {
    /// Estimated peak bytes.
    pub estimate: u64,
    /// Where the bytes go.
    pub breakdown: String,
    /// The budget it exceeds.
    pub budget: crate::budget::Budget,
    /// What to change.
    pub fix: String,
}

impl std::fmt::Display for MemoryRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this net needs about {} to train ({}), more than the {} allowed ({}) — {}",
            crate::budget::bytes(self.estimate),
            self.breakdown,
            crate::budget::bytes(self.budget.bytes),
            self.budget.source,
            self.fix
        )
    }
}
