//! The headless commands: `convscope train` (train, export, print a JSON summary) and `convscope bench`
//! (time the app's own training step). Exit codes: 0 success, 1 internal failure, 2 bad input,
//! 3 training diverged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::arch::{Activation, Init, OutputKind};
use crate::data::{self, DataSplit};
use crate::export::{self, EXPORT_PIXELS_PER_WEIGHT, MetricsCsv};
use crate::hints::{self, HINT_WINDOW, Hint};
use crate::snapshot::{MetricRow, Snapshot};
use crate::train::cadence::SnapshotCadence;
use crate::train::{self, BackendKind, OptimizerKind, StepOutcome, TrainConfig, Trainer, presets};

/// Steps `convscope train` takes without --steps, --epochs or a preset.
const DEFAULT_TRAIN_STEPS: u64 = 600;

/// Train a convolutional network and watch it learn.
#[derive(Debug, Parser)]
#[command(name = "convscope", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without one, convscope opens its window.
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// Window options (used when no command is given).
    #[command(flatten)]
    pub window: WindowArgs,
}

/// Options of the window.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Renderer: glow (OpenGL, fast under software rendering) or wgpu.
    #[arg(long, value_enum, default_value = "glow")]
    pub renderer: RendererArg,
    /// Compute threads for training (default: RAYON_NUM_THREADS, else one per core).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Where training computes: flex (CPU, default), ndarray or wgpu (GPU; needs the cargo feature).
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendArg,
    /// Start from the default settings instead of the ones saved at the last exit.
    #[arg(long)]
    pub fresh: bool,
    /// Open paused: build the net and wait for Play (Space) or Step (S).
    #[arg(long)]
    pub paused: bool,
    /// Start with an experiment (sigmoid-vs-relu, saturation, dead-relu, vanishing-gradients, bias,
    /// output-layer), as the Diagnosis panel's menu loads it.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Train on this data (IDX folder, CIFAR batches or an image folder) once it has loaded; the embedded
    /// digits train meanwhile, and stay if it cannot be used (the window says why).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Save a PNG of the window after --screenshot-after seconds, then close it.
    #[arg(long, value_name = "PATH")]
    pub screenshot: Option<PathBuf>,
    /// Seconds of training before --screenshot is taken.
    #[arg(long, value_name = "SECS", default_value_t = 8.0)]
    pub screenshot_after: f64,
    /// Close the window after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub quit_after: Option<f64>,
    /// With --quit-after: write the UI frame times and the training throughput as JSON here.
    #[arg(long, value_name = "PATH", requires = "quit_after")]
    pub frame_stats: Option<PathBuf>,
}

/// `--renderer` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RendererArg {
    /// OpenGL through glow
    Glow,
    /// wgpu (Vulkan, Metal, DX12 or GL)
    Wgpu,
}

/// Opens the window with `args`.
pub fn run_window(args: &WindowArgs) -> Result<(), Failure> {
    let seconds = |secs: f64, flag: &str| {
        Duration::try_from_secs_f64(secs)
            .map_err(|_| Failure::bad_input(anyhow::anyhow!("{flag} {secs} must be a non-negative number of seconds")))
    };
    let screenshot = match &args.screenshot {
        Some(path) => Some((path.clone(), seconds(args.screenshot_after, "--screenshot-after")?)),
        None => None,
    };
    let quit_after = match args.quit_after {
        Some(secs) => Some((seconds(secs, "--quit-after")?, args.frame_stats.clone())),
        None => None,
    };
    let preset = match &args.preset {
        Some(name) => Some(presets::find(name).ok_or_else(|| {
            Failure::bad_input(anyhow::anyhow!(
                "--preset: unknown preset `{name}`; expected one of {}",
                presets::names()
            ))
        })?),
        None => None,
    };
    crate::app::run_window(crate::app::WindowOptions {
        preset,
        data: args.data.clone(),
        backend: args.backend.into(),
        wgpu: matches!(args.renderer, RendererArg::Wgpu),
        threads: args.threads,
        screenshot,
        quit_after,
        fresh: args.fresh,
        paused: args.paused,
    })
    .map_err(Failure::internal)
}

/// The headless commands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Train without a window, write filter images, metrics.csv and config.json, print a JSON summary.
    Train(Box<TrainArgs>),
    /// Time the app's own training step on ref-mnist with the default settings.
    Bench(BenchArgs),
}

/// `--activation` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActivationArg {
    /// max(0, x)
    Relu,
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// tanh x
    Tanh,
    /// x, or 0.01·x below zero
    LeakyRelu,
    /// x, or e^x − 1 below zero
    Elu,
    /// x·Φ(x)
    Gelu,
    /// no nonlinearity
    Identity,
}

impl From<ActivationArg> for Activation {
    fn from(value: ActivationArg) -> Self {
        match value {
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::Sigmoid => Activation::Sigmoid,
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::LeakyRelu => Activation::LeakyRelu,
            ActivationArg::Elu => Activation::Elu,
            ActivationArg::Gelu => Activation::Gelu,
            ActivationArg::Identity => Activation::Identity,
        }
    }
}

/// `--optimizer` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OptimizerArg {
    /// plain SGD
    Sgd,
    /// SGD with momentum (no dampening)
    Momentum,
    /// Adam
    Adam,
}

/// `--backend` values.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum BackendArg {
    /// burn-flex (default, fastest on the CPU)
    #[default]
    Flex,
    /// burn-ndarray (needs the `ndarray` cargo feature)
    Ndarray,
    /// burn-wgpu on a GPU (needs the `wgpu` cargo feature)
    Wgpu,
}

impl From<BackendArg> for BackendKind {
    fn from(value: BackendArg) -> Self {
        match value {
            BackendArg::Flex => BackendKind::Flex,
            BackendArg::Ndarray => BackendKind::Ndarray,
            BackendArg::Wgpu => BackendKind::Wgpu,
        }
    }
}

/// `--output` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputArg {
    /// softmax with cross-entropy
    Softmax,
    /// per-class sigmoid with binary cross-entropy
    Sigmoid,
}

/// Options of `convscope train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Your data: a folder of IDX files (MNIST, Fashion-MNIST, EMNIST), CIFAR-10/100 binary batches, or an image
    /// folder with one sub-folder per class. Default: the embedded MNIST subset.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Image folders: resize every image to N×N (default: the most common size, at most 64).
    #[arg(long, value_name = "N")]
    pub image_size: Option<usize>,
    /// Image folders: 1 for grey, 3 for RGB (default: 3 when any image is in colour).
    #[arg(long, value_name = "C")]
    pub channels: Option<usize>,
    /// Number of classes, for label files without a standard name whose labels are not 0..K−1.
    #[arg(long, value_name = "K")]
    pub classes: Option<usize>,
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
    pub activation: Option<ActivationArg>,
    /// Activations per hidden layer with weights, comma-separated, e.g. relu,sigmoid.
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    pub layer_activations: Vec<String>,
    /// Number of training steps [default: 600, or the preset's].
    #[arg(long, value_name = "N", conflicts_with = "epochs")]
    pub steps: Option<u64>,
    /// Number of passes over the training set (instead of --steps).
    #[arg(long, value_name = "E")]
    pub epochs: Option<f64>,
    /// Examples per step [default: 32].
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Learning rate [default: 0.01].
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
    pub optimizer: Option<OptimizerArg>,
    /// Weight init for every layer: he, xavier, uniform or normal:SIGMA (default: by activation).
    #[arg(long, value_name = "INIT")]
    pub init: Option<String>,
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
    /// Output layer and loss [default: softmax].
    #[arg(long, value_enum)]
    pub output: Option<OutputArg>,
    /// Keep pixels at x/255 instead of standardising them (a zero background stays exactly 0).
    #[arg(long, conflicts_with = "normalize")]
    pub no_normalize: bool,
    /// Standardise pixels to mean 0, variance 1 (the default; overrides a preset).
    #[arg(long)]
    pub normalize: bool,
    /// Randomly shift training images by up to N pixels.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub augment_shift: usize,
    /// Seed for weights, shuffling and augmentation.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Compute threads (default: RAYON_NUM_THREADS, else one per core).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Evaluate the test split every N steps (and always after the last).
    #[arg(long, value_name = "N", default_value_t = train::config::DEFAULT_TEST_EVERY)]
    pub test_every: u64,
    /// Take the per-layer statistics (metrics.csv's update_ratio_…, dead_fraction_… columns and the hints)
    /// every N steps; they cost about a fifth of the training speed when taken on every step.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub stats_every: u64,
    /// Folder for conv1_filters.png, conv1_gradients.png, metrics.csv and config.json.
    #[arg(long, value_name = "DIR", default_value = "convscope-out")]
    pub out: PathBuf,
    /// CPU backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendArg,
}

/// Options of `convscope bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Timed steps per variant (after 20 warm-up steps).
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub steps: u64,
    /// Compute threads (default: RAYON_NUM_THREADS, else one per core).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendArg,
    /// Architecture to time (the first line).
    #[arg(long, value_name = "SPEC", default_value = crate::arch::DEFAULT_ARCH)]
    pub arch: String,
    /// Further architectures, one more JSON line each (default: `wide`, where convolution dominates; pass
    /// `--also ""` for none).
    #[arg(long, value_name = "SPEC", value_delimiter = ';', default_value = "wide")]
    pub also: Vec<String>,
}

/// A failed command: what to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// 1 internal, 2 bad input, 3 diverged.
    pub code: u8,
    /// The error with its context chain.
    pub error: anyhow::Error,
}

impl Failure {
    fn bad_input(error: impl Into<anyhow::Error>) -> Failure {
        Failure { code: 2, error: error.into() }
    }

    fn internal(error: impl Into<anyhow::Error>) -> Failure {
        Failure { code: 1, error: error.into() }
    }
}

impl Failure {
    /// The message for the terminal: the context chain joined with `: `, leaving out a cause whose text the
    /// message before it already quotes (our errors name their cause in their own words).
    pub fn message(&self) -> String {
        let mut message = String::new();
        for cause in self.error.chain() {
            let text = cause.to_string();
            if !message.contains(&text) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
        }
        message
    }
}

/// Runs a headless command.
pub fn run(command: CliCommand) -> Result<(), Failure> {
    match command {
        CliCommand::Train(args) => run_train(&args),
        CliCommand::Bench(args) => run_bench(&args),
    }
}

/// Loads `--data` (whatever its format), or the embedded subset; reports skipped files on stderr.
fn load_data(path: Option<&Path>, options: &data::LoadOptions) -> Result<DataSplit, Failure> {
    let Some(path) = path else {
        return data::embedded_mnist().context("the embedded MNIST subset is damaged").map_err(Failure::internal);
    };
    let loaded = data::load_path(path, options)
        .with_context(|| format!("could not load --data {}", path.display()))
        .map_err(Failure::bad_input)?;
    if let Some(summary) = loaded.report.skipped_summary() {
        eprintln!("convscope: {summary}");
    }
    for note in &loaded.report.notes {
        eprintln!("convscope: {note}");
    }
    let (train, test) = (&loaded.split.train, &loaded.split.test);
    eprintln!(
        "convscope: {} from {}: {} train and {} test images of {}, {} classes",
        loaded.format,
        path.display(),
        train.len(),
        test.len(),
        train.shape(),
        train.classes()
    );
    Ok(loaded.split)
}

fn train_config(args: &TrainArgs) -> Result<TrainConfig, Failure> {
    let mut layer_activations = Vec::new();
    for name in args.layer_activations.iter().filter(|n| !n.trim().is_empty()) {
        let activation = Activation::parse(name.trim()).ok_or_else(|| {
            Failure::bad_input(anyhow::anyhow!(
                "--layer-activations: unknown activation `{name}`; expected one of {}",
                Activation::ALL.map(Activation::name).join(", ")
            ))
        })?;
        layer_activations.push(activation);
    }
    let init = match &args.init {
        None => None,
        Some(text) => Some(Init::parse(text).ok_or_else(|| {
            Failure::bad_input(anyhow::anyhow!(
                "--init: unknown init `{text}`; expected he, xavier, uniform or normal:SIGMA (e.g. normal:0.1)"
            ))
        })?),
    };
    // The preset (or the defaults) first; every flag given on the command line wins over it.
    let mut config = match preset(args)? {
        Some(preset) => preset.config(),
        None => TrainConfig::default(),
    };
    if let Some(arch) = &args.arch {
        config.arch = arch.clone();
    }
    if let Some(activation) = args.activation {
        config.activation = activation.into();
        config.layer_activations.clear();
    }
    if !layer_activations.is_empty() {
        config.layer_activations = layer_activations;
    }
    if args.no_bias || args.bias {
        config.bias = args.bias;
    }
    if args.batch_norm || args.no_batch_norm {
        config.batch_norm = args.batch_norm;
    }
    if args.no_normalize || args.normalize {
        config.normalize = args.normalize;
    }
    if init.is_some() {
        config.init = init;
    }
    if let Some(output) = args.output {
        config.output = match output {
            OutputArg::Softmax => OutputKind::Softmax,
            OutputArg::Sigmoid => OutputKind::Sigmoid,
        };
    }
    if let Some(optimizer) = args.optimizer {
        config.optimizer = match optimizer {
            OptimizerArg::Sgd => OptimizerKind::Sgd,
            OptimizerArg::Momentum => OptimizerKind::Momentum,
            OptimizerArg::Adam => OptimizerKind::Adam,
        };
    }
    config.lr = args.lr.unwrap_or(config.lr);
    config.momentum = args.momentum.unwrap_or(config.momentum);
    config.weight_decay = args.weight_decay.unwrap_or(config.weight_decay);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.seed = args.seed;
    config.augment_shift = args.augment_shift;
    config.test_every = args.test_every;
    config.validate().map_err(|reason| Failure::bad_input(anyhow::anyhow!("{reason}")))?;
    Ok(config)
}

/// The `--preset`, if one was named.
fn preset(args: &TrainArgs) -> Result<Option<&'static presets::Preset>, Failure> {
    let Some(name) = &args.preset else { return Ok(None) };
    presets::find(name).map(Some).ok_or_else(|| {
        Failure::bad_input(anyhow::anyhow!("--preset: unknown preset `{name}`; expected one of {}", presets::names()))
    })
}

/// What `config.json` holds: the configuration plus where the data came from.
#[derive(Debug, Serialize)]
struct RunRecord<'a> {
    config: &'a TrainConfig,
    data: &'a str,
    classes: usize,
    backend: &'static str,
    layers: Vec<String>,
}

/// The last stdout line of `convscope train`.
#[derive(Debug, Serialize)]
struct TrainSummary {
    steps: u64,
    epochs: f64,
    /// Mean loss over the last (up to) 50 steps.
    train_loss: f32,
    train_accuracy: f32,
    /// Over the whole test split, after the last step.
    test_accuracy: f32,
    images_per_sec: f64,
    seconds: f64,
    threads: usize,
    out: String,
    /// Median weight-gradient L2 norm per layer over the last 50 steps, input to output.
    grad_norms: Vec<LayerNorm>,
    /// What the diagnosis rules make of the last steps (rule id, layer, sentence).
    hints: Vec<Hint>,
}

/// One layer's entry in the summary's `grad_norms`.
#[derive(Debug, Serialize)]
struct LayerNorm {
    layer: String,
    grad_norm: f32,
}

fn run_train(args: &TrainArgs) -> Result<(), Failure> {
    let config = train_config(args)?;
    let options = data::LoadOptions {
        classes: args.classes,
        seed: args.seed,
        image_size: args.image_size,
        channels: args.channels,
    };
    let data = load_data(args.data.as_deref(), &options)?;
    // Check the spec before any work, so a bad one fails fast with the caret pointing at it.
    let plan = config.plan(data.train.shape(), data.train.classes()).map_err(Failure::bad_input)?;
    let layer_names: Vec<String> = plan.weighted().map(|l| l.name.clone()).collect();
    let steps = match (args.steps, args.epochs) {
        (Some(steps), _) => steps,
        (None, Some(epochs)) if epochs.is_finite() && epochs > 0.0 => {
            ((epochs * data.train.len() as f64) / config.batch_size as f64).ceil() as u64
        }
        (None, Some(epochs)) => {
            return Err(Failure::bad_input(anyhow::anyhow!("--epochs {epochs} must be a positive number")));
        }
        (None, None) => preset(args)?.map_or(DEFAULT_TRAIN_STEPS, |p| p.steps),
    };
    export::create_dir(&args.out).map_err(Failure::bad_input)?;
    let mut csv = MetricsCsv::create(&args.out.join("metrics.csv"), &layer_names).map_err(Failure::bad_input)?;
    let record = RunRecord {
        config: &config,
        data: data.train.source(),
        classes: data.train.classes(),
        backend: BackendKind::from(args.backend).name(),
        layers: layer_names.clone(),
    };
    let json = serde_json::to_vec_pretty(&record).map_err(Failure::internal)?;
    export::write_file(&args.out.join("config.json"), &json).map_err(Failure::bad_input)?;

    let backend = BackendKind::from(args.backend);
    let data = Arc::new(data);
    let outcome = train::with_compute_threads(args.threads, train::ComputePriority::Normal, || {
        train_loop(config, data, backend, steps, args.stats_every, &mut csv)
    })
    .context("could not start the compute threads")
    .map_err(Failure::internal)?;
    csv.flush().map_err(Failure::bad_input)?;
    let finished = outcome?;
    if let Some(snapshot) = &finished.last_snapshot {
        write_first_layer_images(snapshot, &args.out).map_err(Failure::bad_input)?;
    }
    let summary = TrainSummary {
        steps: finished.steps,
        epochs: finished.epochs,
        train_loss: finished.recent_loss,
        train_accuracy: finished.train_accuracy,
        test_accuracy: finished.test_accuracy,
        images_per_sec: finished.images as f64 / finished.seconds.max(1e-9),
        seconds: finished.seconds,
        threads: finished.threads,
        out: args.out.display().to_string(),
        grad_norms: finished.grad_norms,
        hints: finished.hints,
    };
    for hint in &summary.hints {
        eprintln!("hint ({}): {}", hint.rule.id(), hint.sentence);
    }
    let line = serde_json::to_string(&summary).map_err(Failure::internal)?;
    println!("{line}");
    Ok(())
}

struct Finished {
    steps: u64,
    epochs: f64,
    recent_loss: f32,
    train_accuracy: f32,
    test_accuracy: f32,
    images: u64,
    seconds: f64,
    threads: usize,
    last_snapshot: Option<Box<Snapshot>>,
    grad_norms: Vec<LayerNorm>,
    hints: Vec<Hint>,
}

fn progress_bar(steps: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps);
    let style =
        indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

fn train_loop(
    config: TrainConfig,
    data: Arc<DataSplit>,
    backend: BackendKind,
    steps: u64,
    stats_every: u64,
    csv: &mut MetricsCsv,
) -> Result<Finished, Failure> {
    let batch = config.batch_size as u64;
    let mut trainer = Trainer::new(config, data, backend).map_err(Failure::bad_input)?;
    trainer.set_stats_every(stats_every);
    let layer_names: Vec<String> = trainer.model().layers.iter().map(|l| l.name.clone()).collect();
    // This loop evaluates itself (below), so the last step is never evaluated twice.
    trainer.set_manual_evaluation();
    let started = Instant::now();
    trainer.evaluate().map_err(Failure::internal)?;
    let bar = progress_bar(steps);
    let mut losses = std::collections::VecDeque::with_capacity(50);
    let mut last_snapshot = None;
    let mut last_row: Option<MetricRow> = None;
    // The rules read the last two windows of rows.
    let mut recent_rows = std::collections::VecDeque::with_capacity(2 * HINT_WINDOW);
    for step in 1..=steps {
        let outcome = trainer.step(step == steps).map_err(Failure::internal)?;
        match outcome {
            StepOutcome::Updated { row, snapshot } => {
                let mut row = row;
                let test_every = trainer.config().test_every;
                if step == steps || (test_every > 0 && step.is_multiple_of(test_every)) {
                    // Every `--test-every` steps, and always after the last update: the whole test split.
                    row.test_accuracy = trainer.evaluate().map_err(Failure::internal)?;
                }
                csv.append(&row).map_err(Failure::bad_input)?;
                if losses.len() == 50 {
                    losses.pop_front();
                }
                losses.push_back(row.loss);
                if step % 10 == 0 || step == steps {
                    let rate = (step * batch) as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    bar.set_message(format!(
                        "loss {:.4} acc {:.3} test {:.3} {rate:.0} img/s",
                        row.loss, row.train_accuracy, row.test_accuracy
                    ));
                }
                bar.set_position(step);
                if snapshot.is_some() {
                    last_snapshot = snapshot;
                }
                if recent_rows.len() == 2 * HINT_WINDOW {
                    recent_rows.pop_front();
                }
                recent_rows.push_back(row.clone());
                last_row = Some(row);
            }
            StepOutcome::Diverged { message, .. } => {
                bar.abandon();
                return Err(Failure { code: 3, error: anyhow::anyhow!("{message}") });
            }
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let train_len = trainer.data().train.len().max(1) as f64;
    Ok(Finished {
        steps,
        epochs: (steps * batch) as f64 / train_len,
        recent_loss: losses.iter().sum::<f32>() / losses.len().max(1) as f32,
        train_accuracy: last_row.as_ref().map_or(f32::NAN, |r| r.train_accuracy),
        test_accuracy: trainer.test_accuracy(),
        images: steps * batch,
        seconds,
        threads: rayon::current_num_threads(),
        last_snapshot,
        hints: hints::diagnose(recent_rows.make_contiguous(), &trainer.layer_infos()),
        grad_norms: layer_names
            .into_iter()
            .enumerate()
            .map(|(i, layer)| {
                let recent = recent_rows.iter().rev().take(HINT_WINDOW);
                LayerNorm {
                    layer,
                    grad_norm: hints::median(recent.filter_map(|r| r.grad_norms.get(i).copied()).collect()),
                }
            })
            .collect(),
    })
}

/// Writes `conv1_filters.png` and `conv1_gradients.png` (named after the first layer) from a snapshot.
fn write_first_layer_images(snapshot: &Snapshot, out: &Path) -> Result<(), export::ExportError> {
    let Some(first) = snapshot.layers.first() else { return Ok(()) };
    if first.weights.shape.len() != 4 {
        return Ok(()); // a dense first layer has no filters to draw
    }
    let filters = export::filters_image(&first.weights, first.weights.max_abs(), EXPORT_PIXELS_PER_WEIGHT, true, None)?;
    export::write_file(
        &out.join(format!("{}_filters.png", first.name)),
        &export::encode_png(&filters, "the filters")?,
    )?;
    if let Some(grads) = &first.weight_grads {
        let image = export::filters_image(grads, grads.max_abs(), EXPORT_PIXELS_PER_WEIGHT, true, None)?;
        export::write_file(
            &out.join(format!("{}_gradients.png", first.name)),
            &export::encode_png(&image, "the gradients")?,
        )?;
    }
    Ok(())
}

/// The first stdout line of `convscope bench`.
#[derive(Debug, Serialize)]
struct BenchSummary {
    arch: String,
    backend: &'static str,
    /// The conv and pool kernels on the flex backend (`avx512`, `avx2`, `gemm`, `burn`; `CONVSCOPE_KERNELS`);
    /// `null` on the other backends, which run their own.
    kernels: Option<&'static str>,
    threads: usize,
    batch: usize,
    steps: u64,
    /// Training throughput with snapshots off.
    images_per_sec: f64,
    /// Throughput with a snapshot at the window's cadence.
    images_per_sec_with_snapshots: f64,
    /// How much slower snapshots make training, in percent.
    snapshot_overhead_pct: f64,
    /// Throughput with layer statistics on every step, as `convscope train` takes them.
    images_per_sec_with_stats: f64,
    /// How much slower statistics on every step make training, in percent.
    stats_overhead_pct: f64,
    /// Process CPU seconds over the timed steps.
    cpu_s: f64,
    final_loss: f32,
    /// Milliseconds for one evaluation of the whole test split (median of three).
    test_eval_ms: f64,
}

fn run_bench(args: &BenchArgs) -> Result<(), Failure> {
    if args.steps == 0 {
        return Err(Failure::bad_input(anyhow::anyhow!("--steps must be at least 1")));
    }
    let data = Arc::new(load_data(None, &data::LoadOptions::default())?);
    let archs: Vec<&str> = std::iter::once(args.arch.as_str())
        .chain(args.also.iter().map(|a| a.trim()).filter(|a| !a.is_empty()))
        .collect();
    // Check every spec before timing anything, so a typo in --also fails fast.
    for arch in &archs {
        let config = TrainConfig { arch: (*arch).to_owned(), ..TrainConfig::default() };
        config.plan(data.train.shape(), data.train.classes()).map_err(Failure::bad_input)?;
    }
    let backend = BackendKind::from(args.backend);
    for arch in archs {
        let config = TrainConfig { arch: arch.to_owned(), test_every: 0, ..TrainConfig::default() };
        let data = data.clone();
        let summary = train::with_compute_threads(args.threads, train::ComputePriority::Normal, || {
            bench(config, data, backend, args.steps)
        })
        .context("could not start the compute threads")
        .map_err(Failure::internal)??;
        let line = serde_json::to_string(&summary).map_err(Failure::internal)?;
        println!("{line}");
    }
    Ok(())
}

/// Rounds in which the plain and the snapshot variant alternate, so drift in machine speed hits both.
const BENCH_ROUNDS: u64 = 3;
const BENCH_WARMUP_STEPS: u64 = 20;

fn bench(config: TrainConfig, data: Arc<DataSplit>, backend: BackendKind, steps: u64) -> Result<BenchSummary, Failure> {
    let batch = config.batch_size;
    let arch = config.arch.clone();
    let interval = Duration::from_millis(config.snapshot_interval_ms);
    let mut trainer = Trainer::new(config, data, backend).map_err(Failure::bad_input)?;
    let mut final_loss = f32::NAN;
    let mut run = |trainer: &mut Trainer, count: u64, snapshots: bool| -> Result<Duration, Failure> {
        // The window's cadence, as its worker keeps it.
        let mut cadence = SnapshotCadence::default();
        let started = Instant::now();
        for _ in 0..count {
            let capture = snapshots && cadence.due(interval);
            let step_started = Instant::now();
            match trainer.step(capture).map_err(Failure::internal)? {
                StepOutcome::Updated { row, snapshot } => {
                    final_loss = row.loss;
                    cadence.step_done(step_started.elapsed(), snapshot.is_some());
                }
                StepOutcome::Diverged { message, .. } => {
                    return Err(Failure { code: 3, error: anyhow::anyhow!("{message}") });
                }
            }
        }
        Ok(started.elapsed())
    };
    run(&mut trainer, BENCH_WARMUP_STEPS, true)?;
    let cpu_started = cpu_time::ProcessTime::now();
    let (mut plain, mut with_snapshots, mut with_stats) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let per_round = steps.div_ceil(BENCH_ROUNDS);
    for _ in 0..BENCH_ROUNDS {
        plain += run(&mut trainer, per_round, false)?;
        with_snapshots += run(&mut trainer, per_round, true)?;
        trainer.set_stats_every(1);
        with_stats += run(&mut trainer, per_round, false)?;
        trainer.set_stats_every(0);
    }
    let cpu_s = cpu_started.elapsed().as_secs_f64();
    let mut evals = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        trainer.evaluate().map_err(Failure::internal)?;
        evals.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    evals.sort_by(f64::total_cmp);
    let images = (per_round * BENCH_ROUNDS * batch as u64) as f64;
    let images_per_sec = images / plain.as_secs_f64().max(1e-9);
    let images_per_sec_with_snapshots = images / with_snapshots.as_secs_f64().max(1e-9);
    let images_per_sec_with_stats = images / with_stats.as_secs_f64().max(1e-9);
    Ok(BenchSummary {
        arch,
        backend: backend.name(),
        kernels: (backend == BackendKind::Flex).then(|| crate::kernels::kernel_choice().name()),
        threads: rayon::current_num_threads(),
        batch,
        steps: per_round * BENCH_ROUNDS,
        images_per_sec,
        images_per_sec_with_snapshots,
        snapshot_overhead_pct: 100.0 * (images_per_sec / images_per_sec_with_snapshots - 1.0),
        images_per_sec_with_stats,
        stats_overhead_pct: 100.0 * (images_per_sec / images_per_sec_with_stats - 1.0),
        cpu_s,
        final_loss,
        test_eval_ms: evals.get(1).copied().unwrap_or(f64::NAN),
    })
}
