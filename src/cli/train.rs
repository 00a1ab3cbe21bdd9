//! `convscope train`: trains headless through the same [`Driver`] as the window, writes `metrics.csv`,
//! `config.json`, `confusion.csv` and the first layer's images into `--out`, and prints a JSON summary as the last line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::cli::data::DataFlags;
use crate::cli::failure::Failure;
use crate::cli::interrupt::{Interrupt, Signal};
use crate::config::{BackendKind, TrainConfig, TrainFlags};
use crate::data::DataSplit;
use crate::diagnose::{Hint, presets};
use crate::export::{self, GridStyle, MetricsCsv};
use crate::history::{DATA_ORIGIN_FILE, HISTORY_FILE, Recorded, Recorder, write_data_origin};
use crate::protocol::{DataOrigin, WorkerEvent};
use crate::snapshot::{MetricRow, Snapshot};
use crate::train::{self, Checkpoint, Driven, Driver, Evaluation};

/// Steps `convscope train` takes without --steps, --epochs or a preset.
pub(crate) const DEFAULT_TRAIN_STEPS: u64 = 600;

/// Options of `convscope train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Where the data comes from.
    #[command(flatten)]
    pub data: DataFlags,
    /// The training configuration.
    #[command(flatten)]
    pub flags: TrainFlags,
    /// Number of training steps [default: 600, or the preset's].
    #[arg(long, value_name = "N", conflicts_with = "epochs")]
    pub steps: Option<u64>,
    /// Number of passes over the training set (instead of --steps).
    #[arg(long, value_name = "E")]
    pub epochs: Option<f64>,
    /// Take the per-layer statistics (metrics.csv's update_ratio_…, dead_fraction_… columns and the hints)
    /// every N steps; taken on every step they cost about a tenth of the training speed or less (`convscope bench`
    /// reports the share for a net).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub stats_every: u64,
    /// Compute threads (default: RAYON_NUM_THREADS, else one per core).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Folder for conv1_filters.png, conv1_gradients.png, metrics.csv and config.json.
    #[arg(long, value_name = "DIR", default_value = "convscope-out")]
    pub out: PathBuf,
    /// Where training computes: flex (CPU, default), ndarray or wgpu (needs the cargo feature).
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendKind,
    /// Write a checkpoint into --out every N steps and after the last (checkpoint-step000100.ckpt, …): each
    /// holds everything `--resume` needs to continue exactly.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub save_every: Option<u64>,
    /// Record the run's history into --out/history.bin (metric rows, hints, and a snapshot of every panel
    /// every K steps) so it can be replayed; 0 records nothing. A snapshot costs about a third of a step, so
    /// the default of 50 keeps recording near 1 % of training time (10 costs 5–10 % on two cores).
    #[arg(long, value_name = "K", default_value_t = 50)]
    pub snapshot_every: u64,
    /// The most memory the run may take, e.g. 8G or 512M: a net or data set estimated to need more is refused
    /// before it is built [default: half of the memory available at the start].
    #[arg(long, value_name = "SIZE", value_parser = crate::budget::parse_size)]
    pub max_memory: Option<u64>,
    /// Continue the run in this checkpoint for --steps more steps, bit-identically to a run that never stopped
    /// (same backend and threads). Live settings given as flags (--lr, --activation, --batch-norm, …) change it
    /// from there; the architecture and the data must be the checkpoint's.
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
}

/// Where a run starts: a fresh net, or a checkpoint.
enum Start {
    Fresh,
    Resume(Box<Checkpoint>),
}

/// The `--preset` named in `flags`, if any.
pub fn preset(flags: &TrainFlags) -> Result<Option<&'static presets::Preset>, Failure> {
    let Some(name) = &flags.preset else { return Ok(None) };
    presets::find(name).map(Some).ok_or_else(|| {
        Failure::bad_input(anyhow::anyhow!("--preset: unknown preset `{name}`; expected one of {}", presets::names()))
    })
}

/// The configuration `flags` ask for on top of `base`: the preset first (when given), then every flag.
pub fn resolve_config(flags: &TrainFlags, base: TrainConfig) -> Result<TrainConfig, Failure> {
    let mut config = match preset(flags)? {
        Some(preset) => preset.config(),
        None => base,
    };
    flags.apply(&mut config).map_err(Failure::bad_input)?;
    Ok(config)
}

/// What `config.json` holds: the configuration plus where the data came from.
#[derive(Debug, Serialize)]
struct RunRecord<'a> {
    config: &'a TrainConfig,
    data: &'a str,
    classes: usize,
    backend: &'static str,
    layers: Vec<String>,
    /// The checkpoint this run continues, if it does.
    resumed_from: Option<String>,
}

/// The last stdout line of `convscope train`.
#[derive(Debug, Serialize)]
struct TrainSummary {
    /// Steps run by this command.
    steps: u64,
    /// The last step's number (a resumed run's continue the checkpoint's).
    last_step: u64,
    epochs: f64,
    /// Mean loss over the last (up to) 50 steps (null when no step ran).
    train_loss: Option<f32>,
    train_accuracy: f32,
    /// Over the whole test split, after the last step (NaN, written null, for a regression).
    test_accuracy: f32,
    /// Regression only: R², mean absolute and mean squared error over the whole test split after the last step,
    /// in target units.
    #[serde(skip_serializing_if = "Option::is_none")]
    test_r2: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_mae: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_mse: Option<f32>,
    /// Regression only: the share of test outputs pinned at an edge of the output activation's range while
    /// their target lies beyond it.
    #[serde(skip_serializing_if = "Option::is_none")]
    test_pinned: Option<f32>,
    images_per_sec: f64,
    seconds: f64,
    threads: usize,
    out: String,
    /// Median weight-gradient L2 norm per layer over the last 50 steps, input to output.
    grad_norms: Vec<LayerNorm>,
    /// What the diagnosis rules make of the last steps (rule id, layer, sentence).
    hints: Vec<Hint>,
    /// The signal that stopped the run before its last step (SIGINT or SIGTERM), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_by: Option<&'static str>,
}

/// One layer's entry in the summary's `grad_norms`.
#[derive(Debug, Serialize)]
struct LayerNorm {
    layer: String,
    grad_norm: f32,
}

/// The checkpoint to resume (when asked) and the configuration to train with: the checkpoint's or the
/// preset's, then every flag given.
fn start_and_config(args: &TrainArgs) -> Result<(Start, TrainConfig), Failure> {
    let Some(path) = &args.resume else {
        return Ok((Start::Fresh, resolve_config(&args.flags, TrainConfig::default())?));
    };
    if args.flags.preset.is_some() {
        let error = anyhow::anyhow!(
            "--preset and --resume do not go together: the checkpoint carries its own configuration (give single flags such as --lr to change it)"
        );
        return Err(Failure::bad_input(error));
    }
    let checkpoint = train::read_checkpoint(path).map_err(Failure::bad_input)?;
    let mut config = checkpoint.config().clone();
    args.flags.apply(&mut config).map_err(Failure::bad_input)?;
    Ok((Start::Resume(Box::new(checkpoint)), config))
}

/// Trains as `args` say and prints the summary.
pub fn run_train(args: &TrainArgs) -> Result<(), Failure> {
    // First of all: a signal that came before the handlers (while the data loads, or just after config.json
    // appeared) killed the process outright, with no summary.
    let interrupt = Interrupt::install();
    train::check_threads(args.threads).map_err(Failure::bad_input)?;
    crate::budget::set_max_memory(args.max_memory);
    let (start, config) = start_and_config(args)?;
    let data = args.data.load(config.seed)?;
    // Check the spec before any work, so a bad one fails fast with the caret pointing at it.
    let plan = config.plan(data.train.shape(), data.train.classes()).map_err(Failure::bad_input)?;
    train::check_memory(&plan, &config).map_err(Failure::bad_input)?;
    let layer_names: Vec<String> = plan.weighted().map(|l| l.name.clone()).collect();
    let steps = match (args.steps, args.epochs) {
        (Some(steps), _) => steps,
        (None, Some(epochs)) if epochs.is_finite() && epochs > 0.0 => {
            ((epochs * data.train.len() as f64) / config.batch_size as f64).ceil() as u64
        }
        (None, Some(epochs)) => {
            return Err(Failure::bad_input(anyhow::anyhow!("--epochs {epochs} must be a positive number")));
        }
        (None, None) => preset(&args.flags)?.map_or(DEFAULT_TRAIN_STEPS, |p| p.steps),
    };
    export::create_dir(&args.out).map_err(Failure::output)?;
    let mut csv = MetricsCsv::create(&args.out.join("metrics.csv"), &layer_names).map_err(Failure::output)?;
    let record = RunRecord {
        config: &config,
        data: data.train.source(),
        classes: data.train.classes(),
        backend: args.backend.name(),
        layers: layer_names,
        resumed_from: args.resume.as_ref().map(|p| p.display().to_string()),
    };
    let json = serde_json::to_vec_pretty(&record).map_err(Failure::internal)?;
    export::write_file(&args.out.join("config.json"), &json).map_err(Failure::output)?;
    // So that `convscope open` continues the run on the same data.
    let origin =
        DataOrigin { request: args.data.request(), targets: args.data.targets.clone(), split_seed: config.seed };
    write_data_origin(&args.out, &origin)
        .with_context(|| format!("could not write {}", args.out.join(DATA_ORIGIN_FILE).display()))
        .map_err(Failure::output)?;

    let data = Arc::new(data);
    let outcome = train::with_compute_threads(args.threads, train::ComputePriority::Normal, || {
        train_loop(start, config, data, args, steps, &mut csv, &interrupt)
    })
    .context("could not start the compute threads")
    .map_err(Failure::internal)?;
    csv.flush().map_err(Failure::output)?;
    let Trained { summary, last_snapshot, stopped_by, confusion } = outcome?;
    if let Some(first) = last_snapshot.as_ref().and_then(|s| s.layers.first()) {
        export::write_layer_grids(first, GridStyle::fitted(first), &args.out, None).map_err(Failure::output)?;
    }
    if let Some(csv) = confusion {
        export::write_file(&args.out.join("confusion.csv"), csv.as_bytes()).map_err(Failure::output)?;
    }
    for hint in &summary.hints {
        eprintln!("hint ({}): {}", hint.rule.id(), hint.sentence);
    }
    let line = serde_json::to_string(&summary).map_err(Failure::internal)?;
    println!("{line}");
    match stopped_by {
        Some(signal) => Err(Failure::stopped(
            signal,
            &format!(
                "{} of {steps} steps; metrics.csv, the images and the summary above hold the steps done",
                summary.steps
            ),
        )),
        None => Ok(()),
    }
}

/// What a run produced: its summary, the last snapshot (for the images), the signal that stopped it early, and
/// the test split's confusion matrix at the last evaluation as CSV.
struct Trained {
    summary: TrainSummary,
    last_snapshot: Option<Box<Snapshot>>,
    stopped_by: Option<Signal>,
    confusion: Option<String>,
}

pub(crate) fn progress_bar(steps: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps);
    let style =
        indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

fn train_loop(
    start: Start,
    config: TrainConfig,
    data: Arc<DataSplit>,
    args: &TrainArgs,
    steps: u64,
    csv: &mut MetricsCsv,
    interrupt: &Interrupt,
) -> Result<Trained, Failure> {
    let batch = config.batch_size as u64;
    let evaluation = Evaluation::EveryTestEvery;
    let mut driver = match start {
        Start::Fresh => Driver::new(config, data, args.backend, evaluation),
        Start::Resume(checkpoint) => Driver::resume(*checkpoint, config, data, args.backend, evaluation),
    }
    .map_err(Failure::bad_input)?;
    driver.trainer_mut().set_stats_every(args.stats_every);
    // A resumed run's rows continue the checkpoint's step numbers.
    let first = driver.trainer().step_count();
    let last = first + steps;
    // Every `--test-every` steps, and always after the last update: the whole test split.
    driver.evaluate_after(last);
    let mut history = History::start(args, &driver);
    let started = Instant::now();
    let bar = progress_bar(steps);
    let (mut last_snapshot, mut train_accuracy, mut done, mut stopped_by) = (None, f32::NAN, 0, None);
    for step in first + 1..=last {
        if let Some(signal) = interrupt.requested() {
            bar.suspend(|| eprintln!("convscope: {}: stopping after step {}", signal.name(), step - 1));
            stopped_by = Some(signal);
            break;
        }
        let capture = step == last || (args.snapshot_every > 0 && step.is_multiple_of(args.snapshot_every));
        let (row, snapshot, warnings) = match driver.step(capture).map_err(Failure::internal)? {
            Driven::Updated { row, snapshot, warnings } => (row, snapshot, warnings),
            Driven::Diverged { message, .. } => {
                bar.abandon();
                return Err(Failure::diverged(message));
            }
        };
        for warning in warnings {
            bar.suspend(|| eprintln!("convscope: step {step}: {warning}"));
        }
        done = step - first;
        csv.append(&row)
            .with_context(|| format!("the run stopped at step {step}; metrics.csv holds the rows written before"))
            .map_err(Failure::output)?;
        history.step(row.clone(), snapshot.as_deref(), &bar);
        if let Some(every) = args.save_every
            && (step.is_multiple_of(every) || step == last)
        {
            let path = args.out.join(train::checkpoint_file_name(step));
            driver.trainer().save_checkpoint(&path).map_err(Failure::output)?;
        }
        if step % 10 == 0 || step == last {
            let rate = ((step - first) * batch) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let figures = match (row.train_regression, row.test_regression) {
                (Some(train), test) => format!("R² {:.3} test {:.3}", train.r2, test.map_or(f32::NAN, |t| t.r2)),
                (None, _) => format!("acc {:.3} test {:.3}", row.train_accuracy, row.test_accuracy),
            };
            bar.set_message(format!("loss {:.4} {figures} {rate:.0} img/s", row.loss));
        }
        bar.set_position(step - first);
        last_snapshot = snapshot.or(last_snapshot);
        train_accuracy = row.train_accuracy;
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if stopped_by.is_some() && done > 0 {
        // Stopped early: the test accuracy and the images are of the last step done, not of an older one.
        driver.evaluate().map_err(Failure::internal)?;
        last_snapshot = Some(Box::new(driver.trainer().refresh_snapshot().map_err(Failure::internal)?));
        // With --save-every, the run can be resumed from where it stopped, not from the last multiple.
        let step = first + done;
        if args.save_every.is_some_and(|every| !step.is_multiple_of(every)) {
            let path = args.out.join(train::checkpoint_file_name(step));
            driver.trainer().save_checkpoint(&path).map_err(Failure::output)?;
        }
    }
    history.finish(driver.hints(), &bar);
    let summary = summarize(&mut driver, (first, done), train_accuracy, seconds, args, stopped_by);
    let trainer = driver.trainer();
    let confusion = trainer.confusion().map(|c| c.csv(trainer.data().test.class_names()));
    Ok(Trained { summary, last_snapshot, stopped_by, confusion })
}

/// The summary of a run that took `done` steps after step `first`.
fn summarize(
    driver: &mut Driver,
    (first, done): (u64, u64),
    train_accuracy: f32,
    seconds: f64,
    args: &TrainArgs,
    stopped_by: Option<Signal>,
) -> TrainSummary {
    let batch = driver.trainer().config().batch_size as u64;
    let train_len = driver.trainer().data().train.len().max(1) as f64;
    TrainSummary {
        steps: done,
        last_step: first + done,
        epochs: (done * batch) as f64 / train_len,
        // No step, no loss (rather than the 0 of an empty mean).
        train_loss: (done > 0).then(|| driver.recent_loss()),
        train_accuracy,
        test_accuracy: driver.trainer().test_accuracy(),
        test_r2: driver.trainer().test_regression().map(|m| m.r2),
        test_mae: driver.trainer().test_regression().map(|m| m.mae),
        test_mse: driver.trainer().test_regression().map(|m| m.mse),
        test_pinned: driver.trainer().regression_eval().map(|e| e.metrics.pinned),
        images_per_sec: (done * batch) as f64 / seconds.max(1e-9),
        seconds,
        threads: rayon::current_num_threads(),
        out: args.out.display().to_string(),
        grad_norms: driver
            .recent_grad_norms()
            .into_iter()
            .map(|(layer, grad_norm)| LayerNorm { layer, grad_norm })
            .collect(),
        hints: driver.hints(),
        stopped_by: stopped_by.map(Signal::name),
    }
}

/// `convscope train`'s history: the net, then rows and a snapshot every `--snapshot-every` steps, then the hints.
struct History {
    recorder: Option<Recorder>,
    rows: Vec<MetricRow>,
}

impl History {
    fn start(args: &TrainArgs, driver: &Driver) -> History {
        let recorder = (args.snapshot_every > 0).then(|| Recorder::new(args.out.join(HISTORY_FILE), false));
        let mut history = History { recorder, rows: Vec::new() };
        let started = WorkerEvent::Started(Box::new(driver.trainer().run_info(train::PROBE_THUMBNAILS)));
        history.record(&started, None);
        history
    }

    fn step(&mut self, row: MetricRow, snapshot: Option<&Snapshot>, bar: &indicatif::ProgressBar) {
        if self.recorder.is_none() {
            return;
        }
        self.rows.push(row);
        if let Some(snapshot) = snapshot {
            self.flush_rows(bar);
            self.record(&WorkerEvent::Snapshot(Box::new(snapshot.clone())), Some(bar));
        }
    }

    fn finish(&mut self, hints: Vec<Hint>, bar: &indicatif::ProgressBar) {
        self.flush_rows(bar);
        self.record(&WorkerEvent::Hints(hints), Some(bar));
    }

    /// Records the rows since the last record, if any.
    fn flush_rows(&mut self, bar: &indicatif::ProgressBar) {
        if !self.rows.is_empty() {
            let rows = WorkerEvent::Metrics(std::mem::take(&mut self.rows));
            self.record(&rows, Some(bar));
        }
    }

    /// Records `event`; the first failure is told on stderr and recording stops (training goes on).
    fn record(&mut self, event: &WorkerEvent, bar: Option<&indicatif::ProgressBar>) {
        let Some(Recorded::Failed(error)) = self.recorder.as_mut().map(|r| r.record(event)) else { return };
        let say = || eprintln!("convscope: {error}");
        match bar {
            Some(bar) => bar.suspend(say),
            None => say(),
        }
    }
}
