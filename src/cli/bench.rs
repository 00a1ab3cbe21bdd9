//! `convscope bench`: times the training step through the same [`Driver`] as the window — plain, with
//! snapshots at the window's cadence, and with statistics on every step — one JSON line per architecture.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::arch::ImageShape;
use crate::cli::data::embedded;
use crate::cli::failure::Failure;
use crate::config::{BackendKind, TrainConfig};
use crate::data::DataSplit;
use crate::train::cadence::SnapshotCadence;
use crate::train::{self, Driven, Driver, Evaluation};

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
    pub backend: BackendKind,
    /// Architecture to time (the first line).
    #[arg(long, value_name = "SPEC", default_value = crate::arch::DEFAULT_ARCH)]
    pub arch: String,
    /// Further architectures, one more JSON line each (default: `wide`, where convolution dominates; pass
    /// `--also ""` for none).
    #[arg(long, value_name = "SPEC", value_delimiter = ';', default_value = "wide")]
    pub also: Vec<String>,
    /// Time on random images of this shape, CxHxW (e.g. 3x32x32 for a CIFAR-sized net), 10 classes, instead of
    /// the embedded digits.
    #[arg(long, value_name = "CxHxW", value_parser = parse_input)]
    pub input: Option<ImageShape>,
}

fn parse_input(text: &str) -> Result<ImageShape, String> {
    let parts: Vec<Option<usize>> = text.split(['x', '×']).map(|p| p.trim().parse().ok()).collect();
    match parts.as_slice() {
        [Some(channels @ 1..=4), Some(height @ 1..=1024), Some(width @ 1..=1024)] => {
            Ok(ImageShape { channels: *channels, height: *height, width: *width })
        }
        _ => Err(format!(
            "`{text}` is not an input shape: give CxHxW with 1 to 4 channels and sides of 1 to 1024, e.g. 3x32x32"
        )),
    }
}

/// Random images of `shape` with random labels over 10 classes: as fast to train on as real ones.
fn random_data(shape: ImageShape) -> Result<DataSplit, Failure> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let part = |len: usize, rng: &mut rand_chacha::ChaCha8Rng, name: &str| {
        let mut images = vec![0u8; len * shape.pixels()];
        rng.fill_bytes(&mut images);
        let mut labels = vec![0u8; len];
        rng.fill_bytes(&mut labels);
        labels.iter_mut().for_each(|label| *label %= 10);
        let names = crate::data::default_class_names(10);
        crate::data::Dataset::new(images, labels, shape, 10, names, format!("random {shape} images ({name})"))
    };
    let train = part(RANDOM_TRAIN, &mut rng, "train").map_err(Failure::internal)?;
    let test = part(RANDOM_TEST, &mut rng, "test").map_err(Failure::internal)?;
    Ok(DataSplit { train, test })
}

/// Images in the random data's parts: enough batches that an epoch boundary is rare in a timing.
const RANDOM_TRAIN: usize = 4096;
const RANDOM_TEST: usize = 500;

/// The first stdout line of `convscope bench`.
#[derive(Debug, Serialize)]
struct BenchSummary {
    arch: String,
    backend: &'static str,
    /// The conv and pool kernels on the flex backend (`avx512`, `avx2`, `gemm`, `burn`; `CONVSCOPE_KERNELS`);
    /// `null` on the other backends, which run their own.
    kernels: Option<&'static str>,
    threads: usize,
    /// The input shape timed.
    input: String,
    batch: usize,
    steps: u64,
    /// Floating-point operations of a training step per image in the convolutions and dense layers (forward,
    /// weight gradient, input gradient; a multiply-add is two).
    mflop_per_image: f64,
    /// What `images_per_sec` achieves of those.
    gflop_per_sec: f64,
    /// One core's measured f32 FMA peak on the widest vectors this CPU runs (null without AVX2/AVX-512).
    fma_peak_gflop_per_core: Option<f64>,
    /// `gflop_per_sec` against that peak times the threads used (at most the cores), in percent.
    peak_share_pct: Option<f64>,
    /// Training throughput with snapshots off.
    images_per_sec: f64,
    /// Throughput with a snapshot at the window's cadence.
    images_per_sec_with_snapshots: f64,
    /// How much slower snapshots make training, in percent.
    snapshot_overhead_pct: f64,
    /// Throughput with layer statistics on every step, as `convscope train` takes them.
    images_per_sec_with_stats: f64,
    /// How much slower statistics on every step make training, in percent: the median over the rounds (a round's
    /// steps with statistics against the plain steps just before them), which a burst of load elsewhere on the
    /// machine moves far less than the totals' ratio.
    stats_overhead_pct: f64,
    /// Two arms of an A/B comparison stepping in turn (arm B a fork of A, as in the window), snapshots of both
    /// at the window's cadence: images per second of both arms together.
    images_per_sec_two_arms: f64,
    /// That against one arm with snapshots (1.0: a second arm costs nothing beyond its own steps).
    two_arms_ratio: f64,
    /// Process CPU seconds over the timed steps.
    cpu_s: f64,
    final_loss: f32,
    /// Milliseconds for one evaluation of the whole test split (median of three).
    test_eval_ms: f64,
}

/// Times every architecture asked for and prints a line each.
pub fn run_bench(args: &BenchArgs) -> Result<(), Failure> {
    if args.steps == 0 {
        return Err(Failure::bad_input(anyhow::anyhow!("--steps must be at least 1")));
    }
    train::check_threads(args.threads).map_err(Failure::bad_input)?;
    let data = Arc::new(match args.input {
        Some(shape) => random_data(shape)?,
        None => embedded()?,
    });
    let peak = convscope_kernels::direct::Isa::best().and_then(convscope_kernels::peak::fma_peak_gflops);
    let archs: Vec<&str> = std::iter::once(args.arch.as_str())
        .chain(args.also.iter().map(|a| a.trim()).filter(|a| !a.is_empty()))
        .collect();
    // Check every spec before timing anything, so a typo in --also fails fast.
    for arch in &archs {
        let config = TrainConfig { arch: (*arch).to_owned(), ..TrainConfig::default() };
        config.plan(data.train.shape(), data.train.classes()).map_err(Failure::bad_input)?;
    }
    for arch in archs {
        let config = TrainConfig { arch: arch.to_owned(), test_every: 0, ..TrainConfig::default() };
        let data = data.clone();
        let summary = train::with_compute_threads(args.threads, train::ComputePriority::Normal, || {
            bench(config, data, args.backend, args.steps, peak)
        })
        .context("could not start the compute threads")
        .map_err(Failure::internal)??;
        let line = serde_json::to_string(&summary).map_err(Failure::internal)?;
        println!("{line}");
    }
    Ok(())
}

/// Steps of each variant in a round. The variants take turns in short rounds, so that drift in machine speed (a
/// neighbour's burst on a shared VM) hits all of them alike.
const ROUND_STEPS: u64 = 10;
const BENCH_WARMUP_STEPS: u64 = 20;

/// Runs `count` steps of each arm in turn, as the window's worker does (B right after A, a snapshot of both
/// when A's is due); returns the time taken.
fn timed_two_arms(
    arms: (&mut Driver, &mut Driver),
    count: u64,
    cadence: &mut SnapshotCadence,
    final_loss: &mut f32,
) -> Result<Duration, Failure> {
    let (a, b) = arms;
    let interval = Duration::from_millis(a.trainer().config().snapshot_interval_ms);
    let started = Instant::now();
    for _ in 0..count {
        let capture = cadence.due(interval);
        let step_started = Instant::now();
        for driver in [&mut *a, &mut *b] {
            match driver.step(capture).map_err(Failure::internal)? {
                Driven::Updated { row, .. } => *final_loss = row.loss,
                Driven::Diverged { message, .. } => return Err(Failure::diverged(message)),
            }
        }
        cadence.step_done(step_started.elapsed(), capture);
    }
    Ok(started.elapsed())
}

/// Runs `count` steps, with snapshots at the window's cadence (kept in `cadence`, as the window's worker keeps
/// it) when `snapshots`; returns the time taken.
fn timed_steps(
    driver: &mut Driver,
    count: u64,
    snapshots: Option<&mut SnapshotCadence>,
    final_loss: &mut f32,
) -> Result<Duration, Failure> {
    let interval = Duration::from_millis(driver.trainer().config().snapshot_interval_ms);
    let mut unused = SnapshotCadence::default();
    let (snapshots, cadence) = match snapshots {
        Some(cadence) => (true, cadence),
        None => (false, &mut unused),
    };
    let started = Instant::now();
    for _ in 0..count {
        let capture = snapshots && cadence.due(interval);
        let step_started = Instant::now();
        match driver.step(capture).map_err(Failure::internal)? {
            Driven::Updated { row, snapshot, .. } => {
                *final_loss = row.loss;
                cadence.step_done(step_started.elapsed(), snapshot.is_some());
            }
            Driven::Diverged { message, .. } => return Err(Failure::diverged(message)),
        }
    }
    Ok(started.elapsed())
}

fn bench(
    config: TrainConfig,
    data: Arc<DataSplit>,
    backend: BackendKind,
    steps: u64,
    peak: Option<f64>,
) -> Result<BenchSummary, Failure> {
    let batch = config.batch_size;
    let arch = config.arch.clone();
    let input = data.train.shape();
    let plan = config.plan(input, data.train.classes()).map_err(Failure::bad_input)?;
    let flops_per_image = plan.training_flops_per_example();
    let mut driver = Driver::new(config, data, backend, Evaluation::Never).map_err(Failure::bad_input)?;
    let mut final_loss = f32::NAN;
    let (mut one_cadence, mut two_cadence) = (SnapshotCadence::default(), SnapshotCadence::default());
    timed_steps(&mut driver, BENCH_WARMUP_STEPS, Some(&mut one_cadence), &mut final_loss)?;
    let mut arm_b = driver.fork(&[]).map_err(Failure::internal)?;
    let cpu_started = cpu_time::ProcessTime::now();
    let (mut plain, mut with_snapshots, mut with_stats) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut two_arms = Duration::ZERO;
    let rounds = steps.div_ceil(ROUND_STEPS);
    let mut stats_costs = Vec::new();
    for _ in 0..rounds {
        let round_plain = timed_steps(&mut driver, ROUND_STEPS, None, &mut final_loss)?;
        with_snapshots += timed_steps(&mut driver, ROUND_STEPS, Some(&mut one_cadence), &mut final_loss)?;
        driver.trainer_mut().set_stats_every(1);
        let round_stats = timed_steps(&mut driver, ROUND_STEPS, None, &mut final_loss)?;
        driver.trainer_mut().set_stats_every(0);
        two_arms += timed_two_arms((&mut driver, &mut arm_b), ROUND_STEPS, &mut two_cadence, &mut final_loss)?;
        stats_costs.push((round_stats.as_secs_f64() / round_plain.as_secs_f64().max(1e-9) - 1.0) as f32);
        (plain, with_stats) = (plain + round_plain, with_stats + round_stats);
    }
    let cpu_s = cpu_started.elapsed().as_secs_f64();
    let mut evals = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        driver.evaluate().map_err(Failure::internal)?;
        evals.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    evals.sort_by(f64::total_cmp);
    let images = (rounds * ROUND_STEPS * batch as u64) as f64;
    let rate = |took: Duration| images / took.as_secs_f64().max(1e-9);
    let (images_per_sec, with_snapshots, with_stats) = (rate(plain), rate(with_snapshots), rate(with_stats));
    // Both arms' images count: each took per_round steps.
    let two_arms = 2.0 * rate(two_arms);
    let threads = rayon::current_num_threads();
    let gflop_per_sec = flops_per_image * images_per_sec / 1e9;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(BenchSummary {
        arch,
        backend: backend.name(),
        kernels: (backend == BackendKind::Flex).then(|| crate::kernels::kernel_choice().name()),
        threads,
        input: format!("{}x{}x{}", input.channels, input.height, input.width),
        batch,
        steps: rounds * ROUND_STEPS,
        mflop_per_image: flops_per_image / 1e6,
        gflop_per_sec,
        fma_peak_gflop_per_core: peak,
        peak_share_pct: peak.map(|p| 100.0 * gflop_per_sec / (p * threads.min(cores) as f64)),
        images_per_sec,
        images_per_sec_with_snapshots: with_snapshots,
        snapshot_overhead_pct: 100.0 * (images_per_sec / with_snapshots - 1.0),
        images_per_sec_with_stats: with_stats,
        stats_overhead_pct: 100.0 * f64::from(crate::diagnose::facts::median(stats_costs)),
        images_per_sec_two_arms: two_arms,
        two_arms_ratio: two_arms / with_snapshots,
        cpu_s,
        final_loss,
        test_eval_ms: evals.get(1).copied().unwrap_or(f64::NAN),
    })
}
