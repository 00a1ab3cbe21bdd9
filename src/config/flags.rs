//! `TrainFlags`: the command-line flags `convscope train` and the window share, and how they override a
//! configuration.

use super::{ConfigError, OptimizerKind, TrainConfig};
use crate::arch::{Activation, Init, OutputKind};
use crate::task::Task;

/// The training flags `convscope train` and the window share: each one given overrides the configuration it
/// starts from (the defaults, a `--preset`, or the window's saved settings).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainFlags {
    /// Start from a ready-made experiment (sigmoid-vs-relu, saturation, dead-relu, vanishing-gradients, bias,
    /// output-layer); any other flag given overrides the preset's value.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Architecture: a named net (ref-mnist, deep6, wide, mlp) or a spec such as "conv 8 5x5, pool 2, dense 32"
    /// [default: ref-mnist].
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    /// Activation of every hidden layer [default: relu].
    #[arg(long, value_enum, conflicts_with = "layer_activations")]
    pub activation: Option<Activation>,
    /// Activations per hidden layer with weights, comma-separated, e.g. relu,sigmoid.
    #[arg(long, value_name = "A,B,…", value_delimiter = ',', value_enum)]
    pub layer_activations: Vec<Activation>,
    /// Clip each parameter's gradient to at most this L2 norm before the update [default: 0, off].
    #[arg(long, value_name = "C")]
    pub grad_clip: Option<f64>,
    /// Examples per step [default: 32].
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Learning rate [default: 0.01; 0.0003 for a regression task].
    #[arg(long, value_name = "X")]
    pub lr: Option<f64>,
    /// Momentum factor, with --optimizer momentum [default: 0.9].
    #[arg(long, value_name = "M")]
    pub momentum: Option<f64>,
    /// L2 weight decay [default: 0].
    #[arg(long, value_name = "W")]
    pub weight_decay: Option<f64>,
    /// Update rule [default: momentum].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Weight init for every layer: he, xavier, uniform or normal:SIGMA (default: by activation).
    #[arg(long, value_name = "INIT", value_parser = parse_init)]
    pub init: Option<Init>,
    /// Start with every bias switched off.
    #[arg(long, conflicts_with = "bias")]
    pub no_bias: bool,
    /// Start with every bias on (the default; overrides a preset without bias).
    #[arg(long)]
    pub bias: bool,
    /// Start with batch-norm on in every hidden layer.
    #[arg(long, conflicts_with = "no_batch_norm")]
    pub batch_norm: bool,
    /// Start with batch-norm off (the default; overrides a preset).
    #[arg(long)]
    pub no_batch_norm: bool,
    /// Output layer and loss [default: softmax; mse for a regression task].
    #[arg(long, value_enum)]
    pub output: Option<OutputKind>,
    /// What to predict: classification, or a number per image: regression:slant (the digit's lean, negative to
    /// the left), regression:ink (mean intensity, 0…1) or regression:file (--targets FILE.csv)
    /// [default: classification].
    #[arg(long, value_name = "TASK")]
    pub task: Option<Task>,
    /// A regression head's output activation [default: identity, which can reach any target; ReLU cannot go
    /// below 0 and sigmoid stays in 0…1].
    #[arg(long, value_enum, value_name = "ACTIVATION")]
    pub output_activation: Option<Activation>,
    /// Regression: train on the raw targets instead of standardised ones (mean 0, std 1, the default, which keeps
    /// the loss and the gradients of any target scale near 1).
    #[arg(long)]
    pub raw_targets: bool,
    /// Keep pixels at x/255 instead of standardising them (a zero background stays exactly 0).
    #[arg(long, conflicts_with = "normalize")]
    pub no_normalize: bool,
    /// Standardise pixels to mean 0, variance 1 (the default; overrides a preset).
    #[arg(long)]
    pub normalize: bool,
    /// Randomly shift training images by up to N pixels [default: 0].
    #[arg(long, value_name = "N")]
    pub augment_shift: Option<usize>,
    /// Seed for weights, shuffling and augmentation [default: 1].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Evaluate the test split every N steps (and always after the last) [default: 200].
    #[arg(long, value_name = "N")]
    pub test_every: Option<u64>,
}

fn parse_init(text: &str) -> Result<Init, String> {
    Init::parse(text).ok_or_else(|| {
        format!(
            "unknown init `{text}`; expected he, xavier, uniform or normal:SIGMA with 0 < SIGMA ≤ 100 (e.g. normal:0.1)"
        )
    })
}

impl TrainFlags {
    /// Writes every flag given over `config` (resolve `--preset` first), then checks the result.
    pub fn apply(&self, config: &mut TrainConfig) -> Result<(), ConfigError> {
        self.overlay(config);
        config.validate()
    }

    fn overlay(&self, config: &mut TrainConfig) {
        if let Some(arch) = &self.arch {
            // Per-layer activations belong to the net they were picked for (a saved session's, a preset's): a
            // different spec starts from the one activation, unless --layer-activations comes with it.
            if *arch != config.arch {
                config.layer_activations.clear();
            }
            config.arch.clone_from(arch);
        }
        if let Some(activation) = self.activation {
            config.activation = activation;
            config.layer_activations.clear();
        }
        if !self.layer_activations.is_empty() {
            config.layer_activations.clone_from(&self.layer_activations);
        }
        if self.no_bias || self.bias {
            config.bias = self.bias;
        }
        if self.batch_norm || self.no_batch_norm {
            config.batch_norm = self.batch_norm;
        }
        if self.no_normalize || self.normalize {
            config.normalize = self.normalize;
        }
        if self.init.is_some() {
            config.init = self.init;
        }
        if let Some(task) = self.task {
            config.switch_task(task);
        }
        if self.raw_targets {
            config.standardize_targets = false;
        }
        config.output_activation = self.output_activation.unwrap_or(config.output_activation);
        config.output = self.output.unwrap_or(config.output);
        config.optimizer = self.optimizer.unwrap_or(config.optimizer);
        config.lr = self.lr.unwrap_or(config.lr);
        config.momentum = self.momentum.unwrap_or(config.momentum);
        config.weight_decay = self.weight_decay.unwrap_or(config.weight_decay);
        config.grad_clip = self.grad_clip.unwrap_or(config.grad_clip);
        config.batch_size = self.batch_size.unwrap_or(config.batch_size);
        config.seed = self.seed.unwrap_or(config.seed);
        config.augment_shift = self.augment_shift.unwrap_or(config.augment_shift);
        config.test_every = self.test_every.unwrap_or(config.test_every);
    }
}
