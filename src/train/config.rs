//! The training run's configuration: everything a reset rebuilds from, saved as `config.json` next to the
//! exports and persisted by the window. Plain serde data (the UI holds one), no burn types.

use serde::{Deserialize, Serialize};

use crate::arch::{Activation, ArchSpec, DEFAULT_ARCH, Init, LayerDefaults, NetPlan, OutputKind, SpecError};
use crate::data::ImageShape;

/// Which parameter update rule the worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Plain stochastic gradient descent: `w ← w − lr·g`.
    Sgd,
    /// SGD with momentum (no dampening, as PyTorch): `v ← μ·v + g; w ← w − lr·v`.
    #[default]
    Momentum,
    /// Adam (β₁ 0.9, β₂ 0.999).
    Adam,
}

impl OptimizerKind {
    /// Every optimiser, in the order the UI lists them.
    pub const ALL: [OptimizerKind; 3] = [OptimizerKind::Sgd, OptimizerKind::Momentum, OptimizerKind::Adam];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum => "momentum",
            OptimizerKind::Adam => "adam",
        }
    }
}

/// The CPU (or GPU) backend the worker computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// burn-flex: pure-Rust CPU kernels with SIMD and rayon (the default: ≈10× faster backward than ndarray).
    #[default]
    Flex,
    /// burn-ndarray, deprecated upstream; compiled in with the `ndarray` cargo feature.
    Ndarray,
    /// burn's wgpu backend on the best GPU wgpu finds (Vulkan, Metal, DX12); the `wgpu` cargo feature. Its
    /// first steps compile GPU kernels, which takes a while.
    Wgpu,
}

impl BackendKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        }
    }

    /// Whether it computes on a GPU (whose first steps compile kernels).
    pub fn is_gpu(self) -> bool {
        self == BackendKind::Wgpu
    }
}

/// Default time between two snapshots: about ten a second is smooth to watch and cheap to take.
pub const DEFAULT_SNAPSHOT_INTERVAL_MS: u64 = 100;
/// Default steps between two test-set evaluations.
pub const DEFAULT_TEST_EVERY: u64 = 200;

/// Everything a training run is built from. `Default` is the reference setting (ref-mnist, SGD with
/// momentum 0.9 and no dampening, lr 0.01, batch 32, normalised input, He init for ReLU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Architecture spec or preset name (see [`crate::arch`]).
    pub arch: String,
    /// Activation of every hidden layer the spec does not set.
    pub activation: Activation,
    /// Per-layer activations, hidden layers with weights in order (override `activation`).
    pub layer_activations: Vec<Activation>,
    /// Whether layers start with their bias on.
    pub bias: bool,
    /// Whether hidden layers start with batch-norm on.
    pub batch_norm: bool,
    /// Weight init for every layer; `None` picks each activation's default.
    pub init: Option<Init>,
    /// Output layer and loss.
    pub output: OutputKind,
    /// Update rule.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor for [`OptimizerKind::Momentum`].
    pub momentum: f64,
    /// L2 weight decay (added to the gradient), 0 for none.
    pub weight_decay: f64,
    /// Examples per step.
    pub batch_size: usize,
    /// Seed for the weights, the shuffling and the augmentation.
    pub seed: u64,
    /// Standardise pixels with the training set's mean and std; off keeps a zero background at exactly 0.
    pub normalize: bool,
    /// Random shift of up to this many pixels per image and axis (0 = no augmentation).
    pub augment_shift: usize,
    /// Minimum time between two snapshots, in milliseconds.
    pub snapshot_interval_ms: u64,
    /// Steps between two test-set evaluations (0 = only when asked).
    pub test_every: u64,
    /// Test-set index of the probe image.
    pub probe_index: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            arch: DEFAULT_ARCH.to_string(),
            activation: Activation::Relu,
            layer_activations: Vec::new(),
            bias: true,
            batch_norm: false,
            init: None,
            output: OutputKind::Softmax,
            optimizer: OptimizerKind::Momentum,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            batch_size: 32,
            seed: 1,
            normalize: true,
            augment_shift: 0,
            snapshot_interval_ms: DEFAULT_SNAPSHOT_INTERVAL_MS,
            test_every: DEFAULT_TEST_EVERY,
            probe_index: 0,
        }
    }
}

impl TrainConfig {
    /// The per-layer fallbacks the spec's layers use.
    pub fn layer_defaults(&self) -> LayerDefaults {
        LayerDefaults {
            activation: self.activation,
            layer_activations: self.layer_activations.clone(),
            bias: self.bias,
            batch_norm: self.batch_norm,
            init: self.init,
            output: self.output,
        }
    }

    /// Parses the spec and checks it against the data's shape.
    pub fn plan(&self, input: ImageShape, classes: usize) -> Result<NetPlan, SpecError> {
        ArchSpec::parse(&self.arch)?.plan(input, classes, &self.layer_defaults())
    }

    /// Checks the numeric fields, naming the first bad one and what it accepts.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("learning rate {} must be a positive number, e.g. 0.01", self.lr));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(format!("momentum {} must be in [0, 1), e.g. 0.9", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("weight decay {} must be ≥ 0, e.g. 0.0005", self.weight_decay));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(format!("batch size {} must be between 1 and {MAX_BATCH_SIZE}", self.batch_size));
        }
        Ok(())
    }
}

/// Largest batch the worker accepts: far beyond useful for watching a net learn, small enough to never
/// exhaust memory by a typo.
pub const MAX_BATCH_SIZE: usize = 4096;
