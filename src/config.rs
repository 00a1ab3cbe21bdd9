//! The training run's configuration and how it changes: [`TrainConfig`] (everything a reset rebuilds from,
//! saved as `config.json` and persisted by the window), the live [`Setting`]s that change it between two
//! steps, and the command-line [`TrainFlags`] that override it. Plain serde data, no burn or egui types: the
//! worker, the window and the command line all change a run through this one file.

use serde::{Deserialize, Serialize};

use crate::arch::{
    Activation, ArchSpec, DEFAULT_ARCH, ImageShape, Init, LayerDefaults, LayerSettings, MAX_INIT_STD, NetPlan,
    OutputKind, SpecError,
};
use crate::task::Task;

mod flags;
pub use flags::TrainFlags;

/// Which parameter update rule the worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
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

/// The learning rate a regression task starts with (see [`TrainConfig::switch_task`]).
pub const REGRESSION_LR: f64 = 0.0003;

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
    /// What the net predicts: classes, or a number per image.
    pub task: Task,
    /// A regression head's output activation (identity, ReLU, sigmoid, tanh, softplus…).
    pub output_activation: Activation,
    /// Regression: train on standardised targets (mean 0, std 1 over the training set); figures stay in target
    /// units either way.
    pub standardize_targets: bool,
    /// Update rule.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor for [`OptimizerKind::Momentum`].
    pub momentum: f64,
    /// L2 weight decay (added to the gradient), 0 for none.
    pub weight_decay: f64,
    /// Clip each parameter's gradient to at most this L2 norm before the update, 0 for no clipping.
    pub grad_clip: f64,
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
            task: Task::Classification,
            output_activation: Activation::Identity,
            standardize_targets: true,
            optimizer: OptimizerKind::Momentum,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            grad_clip: 0.0,
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
            output_activation: self.output_activation,
        }
    }

    /// Parses the spec and checks it against the data's shape; a regression head has one output, whatever the
    /// data's classes.
    pub fn plan(&self, input: ImageShape, classes: usize) -> Result<NetPlan, SpecError> {
        let outputs = if self.task.is_regression() { 1 } else { classes };
        ArchSpec::parse(&self.arch)?.plan(input, outputs, &self.layer_defaults())
    }

    /// Makes the run predict `task`. The head follows (MSE for a number, softmax for classes), and so does the
    /// learning rate while it is the other task's default: MSE's gradient grows with the error (cross-entropy's
    /// is bounded by 1), so the classifier's 0.01 with momentum throws a fresh net's ReLUs dead in its first steps.
    pub fn switch_task(&mut self, task: Task) {
        let was_regression = self.task.is_regression();
        self.task = task;
        if task.is_regression() != self.output.is_regression() {
            self.output = if task.is_regression() { OutputKind::Mse } else { OutputKind::Softmax };
        }
        if !task.is_regression() {
            self.output_activation = Activation::Identity;
        }
        match (was_regression, task.is_regression()) {
            (false, true) if self.lr == TrainConfig::default().lr => self.lr = REGRESSION_LR,
            (true, false) if self.lr == REGRESSION_LR => self.lr = TrainConfig::default().lr,
            _ => {}
        }
    }

    /// Checks the numeric fields, naming the first bad one and what it accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ConfigError::LearningRate(self.lr));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(ConfigError::Momentum(self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ConfigError::WeightDecay(self.weight_decay));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return Err(ConfigError::GradClip(self.grad_clip));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(ConfigError::BatchSize(self.batch_size));
        }
        if self.task.is_regression() != self.output.is_regression() {
            return Err(ConfigError::Head { task: self.task, output: self.output });
        }
        if let Some(Init::Normal { std }) = self.init
            && !(std > 0.0 && std <= MAX_INIT_STD)
        {
            return Err(ConfigError::InitStd(std));
        }
        Ok(())
    }
}

/// A numeric field out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The learning rate is not a positive number.
    #[error("learning rate {0} must be a positive number, e.g. 0.01")]
    LearningRate(f64),
    /// The momentum is outside [0, 1).
    #[error("momentum {0} must be in [0, 1), e.g. 0.9")]
    Momentum(f64),
    /// The weight decay is negative or not a number.
    #[error("weight decay {0} must be ≥ 0, e.g. 0.0005")]
    WeightDecay(f64),
    /// The gradient clip is negative or not a number.
    #[error("gradient clip {0} must be ≥ 0 (0 turns clipping off), e.g. 1")]
    GradClip(f64),
    /// The batch size is zero or too large.
    #[error("batch size {0} must be between 1 and {MAX_BATCH_SIZE}")]
    BatchSize(usize),
    /// A normal init's standard deviation is not in (0, MAX_INIT_STD].
    #[error("the normal init's σ {0} must be in (0, {MAX_INIT_STD}], e.g. normal:0.1")]
    InitStd(f64),
    /// A regression task on a classifier's head, or classes on a regression head.
    #[error("{}", head_mismatch(*task, *output))]
    Head {
        /// What the run predicts.
        task: Task,
        /// The head asked for.
        output: OutputKind,
    },
}

fn head_mismatch(task: Task, output: OutputKind) -> String {
    if task.is_regression() {
        format!(
            "the task {task} predicts a number, but the output is {}, a head for classes: use --output mse (or huber), with --output-activation to choose the last layer's activation",
            output.name()
        )
    } else {
        format!(
            "the output {} is a regression head, but the task is classification: use --output softmax or sigmoid, or a regression task such as --task regression:slant",
            output.name()
        )
    }
}

/// Largest batch the worker accepts: far beyond useful for watching a net learn, small enough to never
/// exhaust memory by a typo.
pub const MAX_BATCH_SIZE: usize = 4096;

// --- live changes --------------------------------------------------------------------------------------------

/// One change to a running net, applied between two steps. The window applies it to its picture of the run at
/// once (and undoes it if the worker refuses); the worker applies the same change to the trainer with
/// [`Setting::apply`], so the two can never disagree about what a setting means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Setting {
    /// Use this learning rate.
    LearningRate(f64),
    /// Use this momentum factor (keeps the velocity).
    Momentum(f64),
    /// Use this L2 weight decay.
    WeightDecay(f64),
    /// Use this many examples per step.
    BatchSize(usize),
    /// Clip each parameter's gradient to at most this L2 norm (0: off); keeps the optimiser's state.
    GradientClip(f64),
    /// Switch the update rule; the new optimiser starts with fresh state (velocities, moments).
    Optimizer(OptimizerKind),
    /// Draw every layer's weights again with this init from the run's seed (the same random draws at another
    /// scale; a layer whose spec names its own init keeps it). Only before the first step — at step 0, or in a
    /// fork made there, so that the two arms differ by their init alone.
    Init(Init),
    /// Switch a hidden layer's nonlinearity; the weights stay exactly as they are.
    Activation {
        /// Index among the layers with weights, input to output.
        layer: usize,
        /// The new nonlinearity.
        activation: Activation,
    },
    /// Switch the output layer's nonlinearity and loss (softmax with cross-entropy, or a sigmoid per class
    /// with binary cross-entropy); the weights stay exactly as they are.
    Output(OutputKind),
    /// Switch a layer's bias on or off; its value is kept while it is off.
    Bias {
        /// Index among the layers with weights.
        layer: usize,
        /// Whether the bias is added.
        enabled: bool,
    },
    /// Switch a hidden layer's batch-norm on or off; its parameters are kept while it is off.
    BatchNorm {
        /// Index among the layers with weights.
        layer: usize,
        /// Whether batch-norm runs before the activation.
        enabled: bool,
    },
}

/// Why a [`Setting`] was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    /// A value out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The layer index is past the net's layers with weights.
    #[error("there is no layer {layer}: the net has {count} layers with weights (0..{count})")]
    NoLayer {
        /// The index asked for.
        layer: usize,
        /// Layers with weights.
        count: usize,
    },
    /// The output layer's activation belongs to the loss, and it has no batch-norm.
    #[error(
        "that is the output layer: it has no batch-norm, and its softmax / sigmoid belongs to the loss (switch that as the output kind)"
    )]
    OutputLayer,
}

impl Setting {
    /// Applies the change to `config` and the per-layer `layers` (layers with weights, input to output; the last
    /// is the output layer), or changes nothing and says why.
    pub fn apply(&self, config: &mut TrainConfig, layers: &mut [LayerSettings]) -> Result<(), SettingError> {
        let mut next = config.clone();
        match *self {
            Setting::LearningRate(lr) => next.lr = lr,
            Setting::Momentum(momentum) => next.momentum = momentum,
            Setting::WeightDecay(decay) => next.weight_decay = decay,
            Setting::BatchSize(batch) => next.batch_size = batch,
            Setting::GradientClip(clip) => next.grad_clip = clip,
            Setting::Optimizer(kind) => next.optimizer = kind,
            Setting::Output(kind) => next.output = kind,
            Setting::Init(init) => next.init = Some(init),
            Setting::Activation { layer, activation } => {
                // A regression head's activation is the user's choice; a classifier's belongs to its loss.
                let target = if config.output.is_regression() {
                    layer_mut(layers, layer)?
                } else {
                    hidden_layer(layers, layer, |s| s.activation == activation)?
                };
                target.activation = activation;
                if layer + 1 == layers.len() {
                    next.output_activation = activation;
                }
            }
            Setting::Bias { layer, enabled } => layer_mut(layers, layer)?.bias = enabled,
            Setting::BatchNorm { layer, enabled } => {
                hidden_layer(layers, layer, |s| s.batch_norm == enabled)?.batch_norm = enabled;
            }
        }
        next.validate()?;
        *config = next;
        Ok(())
    }

    /// A short description for the plots' change markers and the log, e.g. `lr 1.000e-1` or `conv1: sigmoid`;
    /// `layer_names` are the names of the layers with weights.
    pub fn label(&self, layer_names: &[String]) -> String {
        let name = |layer: usize| layer_names.get(layer).cloned().unwrap_or_else(|| format!("layer {layer}"));
        let on = |enabled: bool| if enabled { "on" } else { "off" };
        match *self {
            Setting::LearningRate(lr) => format!("lr {lr:.3e}"),
            Setting::Momentum(momentum) => format!("momentum {momentum}"),
            Setting::WeightDecay(decay) => format!("weight decay {decay}"),
            Setting::BatchSize(batch) => format!("batch {batch}"),
            Setting::GradientClip(0.0) => "no clipping".to_owned(),
            Setting::GradientClip(clip) => format!("clip {clip}"),
            Setting::Optimizer(kind) => kind.name().to_owned(),
            Setting::Output(kind) => format!("output: {}", kind.name()),
            Setting::Init(init) => format!("init {init}"),
            Setting::Activation { layer, activation } => format!("{}: {activation}", name(layer)),
            Setting::Bias { layer, enabled } => format!("{} bias {}", name(layer), on(enabled)),
            Setting::BatchNorm { layer, enabled } => format!("{} batch-norm {}", name(layer), on(enabled)),
        }
    }
}

fn layer_mut(layers: &mut [LayerSettings], layer: usize) -> Result<&mut LayerSettings, SettingError> {
    let count = layers.len();
    layers.get_mut(layer).ok_or(SettingError::NoLayer { layer, count })
}

/// A hidden layer for a change the output layer refuses (unless `unchanged` says it changes nothing there).
fn hidden_layer(
    layers: &mut [LayerSettings],
    layer: usize,
    unchanged: impl Fn(&LayerSettings) -> bool,
) -> Result<&mut LayerSettings, SettingError> {
    let output = layer + 1 == layers.len();
    let target = layer_mut(layers, layer)?;
    if output && !unchanged(target) {
        return Err(SettingError::OutputLayer);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> Vec<LayerSettings> {
        let hidden = LayerSettings { activation: Activation::Relu, bias: true, batch_norm: false, init: Init::He };
        vec![hidden, LayerSettings { activation: Activation::Identity, ..hidden }]
    }

    #[test]
    fn a_setting_changes_config_or_layers_and_a_refused_one_changes_nothing() {
        let (mut config, mut layers) = (TrainConfig::default(), layers());
        Setting::LearningRate(0.5).apply(&mut config, &mut layers).unwrap();
        Setting::Activation { layer: 0, activation: Activation::Tanh }.apply(&mut config, &mut layers).unwrap();
        assert_eq!((config.lr, layers[0].activation), (0.5, Activation::Tanh));
        let (before, before_layers) = (config.clone(), layers.clone());
        for refused in [
            Setting::LearningRate(-1.0),
            Setting::BatchSize(0),
            Setting::Momentum(1.0),
            Setting::GradientClip(-1.0),
            Setting::Init(crate::arch::Init::Normal { std: -1.0 }),
            Setting::Activation { layer: 1, activation: Activation::Tanh },
            Setting::BatchNorm { layer: 1, enabled: true },
            Setting::Bias { layer: 2, enabled: false },
        ] {
            assert!(refused.apply(&mut config, &mut layers).is_err(), "{refused:?}");
            assert_eq!((&config, &layers), (&before, &before_layers), "{refused:?} changed something");
        }
        // The output layer's bias can be switched; its activation can be "set" to what it already is.
        Setting::Bias { layer: 1, enabled: false }.apply(&mut config, &mut layers).unwrap();
        assert!(!layers[1].bias);
    }

    #[test]
    fn labels_name_the_layer() {
        let names = ["conv1".to_owned(), "dense1".to_owned()];
        assert_eq!(Setting::Activation { layer: 0, activation: Activation::Sigmoid }.label(&names), "conv1: sigmoid");
        assert_eq!(Setting::Bias { layer: 5, enabled: false }.label(&names), "layer 5 bias off");
        assert_eq!(Setting::LearningRate(0.1).label(&names), "lr 1.000e-1");
    }
}
