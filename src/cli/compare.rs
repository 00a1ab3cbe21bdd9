//! `convscope compare`: arm A against arm B over several seeds, each pair from one seed (same initial
//! weights where the arms' nets and inits agree, same batches), headless. Prints one JSON line (per-arm mean ±
//! standard deviation at the end, and the paired difference B − A) and writes `compare.csv`, `compare.json`
//! and `compare.png` (each arm's curves with a band over the seeds) into `--out`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser};
use serde::Serialize;

use crate::cli::data::DataFlags;
use crate::cli::failure::Failure;
use crate::cli::interrupt::{Interrupt, Signal};
use crate::cli::train::{DEFAULT_TRAIN_STEPS, preset, progress_bar};
use crate::compare::{Arm, ArmSummary, Comparison, PairedDifference, SeedRun, trailing_mean};
use crate::config::{BackendKind, TrainConfig, TrainFlags};
use crate::data::DataSplit;
use crate::export;
use crate::files::RowFile;
use crate::render::curves::{Chart, Curve, draw_charts};
use crate::train::{self, Driven, Driver, Evaluation};

/// Steps over which compare.png's loss curves are averaged (single batches are too noisy to compare).
const LOSS_SMOOTHING: usize = 20;
/// compare.png's size in pixels.
const CHART_SIZE: (u32, u32) = (1200, 520);
/// Arm A's and arm B's colours (matplotlib's first two, told apart by most colour-blind readers).
const COLOURS: [[u8; 3]; 2] = [[31, 119, 180], [255, 127, 14]];

/// Options of `convscope compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Where the data comes from (loaded once; its train/test split is the first seed's).
    #[command(flatten)]
    pub data: DataFlags,
    /// Flags both arms share. With --preset, arm A is the preset and arm B its other arm; these override the
    /// preset's fields in both arms, except the knob that tells the arms apart.
    #[command(flatten)]
    pub flags: TrainFlags,
    /// Arm A's own flags, as one quoted string of `train` flags, e.g. --a "--activation sigmoid".
    #[arg(long = "a", value_name = "FLAGS", allow_hyphen_values = true)]
    pub arm_a: Option<String>,
    /// Arm B's own flags, e.g. --b "--activation relu --lr 0.05".
    #[arg(long = "b", value_name = "FLAGS", allow_hyphen_values = true)]
    pub arm_b: Option<String>,
    /// Seeds per arm: --seed (default 1), the next one, … Each pair of runs shares its seed.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub seeds: u64,
    /// Steps per run [default: 600, or the preset's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: Option<u64>,
    /// Folder for compare.csv, compare.json and compare.png.
    #[arg(long, value_name = "DIR", default_value = "convscope-out")]
    pub out: PathBuf,
    /// Compute threads (default: RAYON_NUM_THREADS, else one per core).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Where training computes: flex (CPU, default), ndarray or wgpu (needs the cargo feature).
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendKind,
    /// The most memory one run may take, e.g. 8G or 512M [default: half of the memory available].
    #[arg(long, value_name = "SIZE", value_parser = crate::budget::parse_size)]
    pub max_memory: Option<u64>,
}

/// The flags inside `--a "…"` or `--b "…"`: the same as `train`'s.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
struct ArmFlags {
    #[command(flatten)]
    flags: TrainFlags,
}

/// One arm, resolved: its configuration and the flags that describe it.
#[derive(Debug, Clone, Serialize)]
struct ArmSetup {
    flags: String,
    config: TrainConfig,
}

/// The last stdout line of `convscope compare`.
#[derive(Debug, Serialize)]
struct CompareSummary {
    preset: Option<&'static str>,
    steps: u64,
    seeds: Vec<u64>,
    a: ArmSummary,
    b: ArmSummary,
    paired_difference: PairedDifference,
    seconds: f64,
    out: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_by: Option<&'static str>,
}

/// Parses one arm's flag string (`which` is "a" or "b", for the messages).
fn arm_flags(which: &str, text: &str) -> Result<TrainFlags, Failure> {
    let bad = |detail: String| Failure::bad_input(anyhow::anyhow!("--{which} \"{text}\": {detail}"));
    let words = shlex::split(text).ok_or_else(|| bad("unbalanced quotes".into()))?;
    let parsed = ArmFlags::try_parse_from(words).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
        bad(format!("{first} (the arm's flags are `convscope train`'s training flags, e.g. --activation relu)"))
    })?;
    if parsed.flags.preset.is_some() {
        return Err(bad("--preset goes outside --a and --b: it sets up both arms".into()));
    }
    if parsed.flags.seed.is_some() {
        return Err(bad("--seed goes outside --a and --b: the two arms of a pair always share their seed".into()));
    }
    Ok(parsed.flags)
}

/// Both arms' configurations: the preset (or the defaults), the shared flags, the arm's own flags, and in
/// arm B a preset's knob last, so that it always tells the arms apart.
fn arm_setups(args: &CompareArgs) -> Result<[ArmSetup; 2], Failure> {
    let preset = preset(&args.flags)?;
    if preset.is_none() && args.arm_a.is_none() && args.arm_b.is_none() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "nothing tells the two arms apart: give --preset NAME, or --a \"FLAGS\" and --b \"FLAGS\" (e.g. --a \"--activation sigmoid\" --b \"--activation relu\")"
        )));
    }
    let base = preset.map_or_else(TrainConfig::default, |p| p.config());
    let knob = preset.map(|p| p.other_arm.flags());
    let mut setups = Vec::with_capacity(2);
    for (which, own) in [("a", &args.arm_a), ("b", &args.arm_b)] {
        let mut config = base.clone();
        args.flags.apply(&mut config).map_err(Failure::bad_input)?;
        let mut words: Vec<String> = own.iter().cloned().collect();
        if let Some(own) = own {
            arm_flags(which, own)?
                .apply(&mut config)
                .map_err(|e| Failure::bad_input(anyhow::anyhow!("--{which}: {e}")))?;
        }
        if let (Some(knob), "b") = (&knob, which) {
            arm_flags("b", knob)?.apply(&mut config).map_err(Failure::bad_input)?;
            words.push(knob.clone());
        }
        let flags = match preset {
            Some(p) => format!("--preset {} {}", p.name, words.join(" ")).trim_end().to_owned(),
            None => words.join(" "),
        };
        setups.push(ArmSetup { flags, config });
    }
    let [a, b]: [ArmSetup; 2] = setups.try_into().map_err(|_| Failure::internal(anyhow::anyhow!("two arms")))?;
    Ok([a, b])
}

/// Compares the two arms as `args` say and prints the summary.
pub fn run_compare(args: &CompareArgs) -> Result<(), Failure> {
    // Before anything is written: a signal that came before the handlers killed the process outright.
    let interrupt = Interrupt::install();
    train::check_threads(args.threads).map_err(Failure::bad_input)?;
    crate::budget::set_max_memory(args.max_memory);
    let setups = arm_setups(args)?;
    if setups[0].config == setups[1].config {
        eprintln!("convscope: the two arms have the same configuration: their runs will be identical");
    }
    let first_seed = setups[0].config.seed;
    let data = Arc::new(args.data.load(first_seed)?);
    for (setup, arm) in setups.iter().zip(Arm::BOTH) {
        let plan = setup.config.plan(data.train.shape(), data.train.classes());
        let plan = plan.with_context(|| format!("arm {}", arm.name())).map_err(Failure::bad_input)?;
        train::check_memory(&plan, &setup.config).map_err(Failure::bad_input)?;
    }
    let steps =
        args.steps.unwrap_or_else(|| preset(&args.flags).ok().flatten().map_or(DEFAULT_TRAIN_STEPS, |p| p.steps));
    let seeds: Vec<u64> = (0..args.seeds).map(|i| first_seed.wrapping_add(i)).collect();
    export::create_dir(&args.out).map_err(Failure::output)?;
    let json = serde_json::to_vec_pretty(&setups).map_err(Failure::internal)?;
    export::write_file(&args.out.join("compare.json"), &json).map_err(Failure::output)?;
    let csv_path = args.out.join("compare.csv");
    let mut csv = RowFile::create(&csv_path)
        .and_then(|mut f| f.push("arm,seed,step,loss,train_accuracy,test_accuracy,test_step\n").map(|()| f))
        .with_context(|| format!("could not write {}", csv_path.display()))
        .map_err(Failure::output)?;

    let started = Instant::now();
    let runs = Runs { setups: &setups, data, backend: args.backend, steps, interrupt: &interrupt };
    let outcome =
        train::with_compute_threads(args.threads, train::ComputePriority::Normal, || runs.all(&seeds, &mut csv))
            .context("could not start the compute threads")
            .map_err(Failure::internal)?;
    csv.flush().with_context(|| format!("could not write {}", csv_path.display())).map_err(Failure::output)?;
    let (comparison, stopped_by) = outcome?;
    finish(args, &setups, comparison, (steps, seeds), started.elapsed().as_secs_f64(), stopped_by)
}

/// Prints the summary, draws compare.png, and turns a signal into its exit code.
fn finish(
    args: &CompareArgs,
    setups: &[ArmSetup; 2],
    comparison: Comparison,
    (steps, seeds): (u64, Vec<u64>),
    seconds: f64,
    stopped_by: Option<Signal>,
) -> Result<(), Failure> {
    let done: Vec<u64> = comparison.b.iter().map(|r| r.seed).collect();
    write_chart(&comparison, setups, &args.out, steps).map_err(Failure::output)?;
    let summary = CompareSummary {
        preset: preset(&args.flags)?.map(|p| p.name),
        steps,
        seeds: done,
        a: comparison.summary(Arm::A, &setups[0].flags),
        b: comparison.summary(Arm::B, &setups[1].flags),
        paired_difference: comparison.paired_difference(),
        seconds,
        out: args.out.display().to_string(),
        stopped_by: stopped_by.map(Signal::name),
    };
    eprintln!("convscope: {}", verdict(&summary));
    println!("{}", serde_json::to_string(&summary).map_err(Failure::internal)?);
    match stopped_by {
        Some(signal) => Err(Failure::stopped(
            signal,
            &format!(
                "{} of {} seed pairs; compare.csv, compare.png and the summary above hold the pairs done",
                summary.seeds.len(),
                seeds.len()
            ),
        )),
        None => Ok(()),
    }
}

/// One sentence: which arm ended ahead, by how much, and whether the seeds agree.
fn verdict(summary: &CompareSummary) -> String {
    let paired = &summary.paired_difference;
    if let (Some(difference), Some(higher)) = (paired.test_r2_mean, paired.b_higher_test_r2) {
        let spread = paired.test_r2_std.map_or(String::new(), |s| format!(" ± {s:.3}"));
        return format!(
            "after {} steps B's test R² is {difference:+.3}{spread} against A's (B higher in {higher} of {} seed pairs)",
            summary.steps, paired.pairs
        );
    }
    let Some(difference) = paired.test_accuracy_mean else {
        return "no pair of runs finished".to_owned();
    };
    let spread = paired.test_accuracy_std.map_or(String::new(), |s| format!(" ± {:.1}", 100.0 * s));
    format!(
        "after {} steps B's test accuracy is {:+.1}{spread} pp against A's (B higher in {} of {} seed pairs)",
        summary.steps,
        100.0 * difference,
        paired.b_higher_test_accuracy,
        paired.pairs
    )
}

/// Every run of a comparison, and what they share.
struct Runs<'a> {
    setups: &'a [ArmSetup; 2],
    data: Arc<DataSplit>,
    backend: BackendKind,
    steps: u64,
    interrupt: &'a Interrupt,
}

impl Runs<'_> {
    /// Both arms with every seed, pair by pair; a signal keeps the pairs finished before it.
    fn all(&self, seeds: &[u64], csv: &mut RowFile) -> Result<(Comparison, Option<Signal>), Failure> {
        let bar = progress_bar(self.steps * 2 * seeds.len() as u64);
        let mut comparison = Comparison::default();
        for &seed in seeds {
            let (mut pair, mut rows) = (Vec::with_capacity(2), String::new());
            for (setup, arm) in self.setups.iter().zip(Arm::BOTH) {
                bar.set_message(format!("seed {seed}, arm {}", arm.name()));
                match self.one(arm, setup, seed, &mut rows, &bar)? {
                    Some(run) => pair.push(run),
                    None => {
                        bar.finish_and_clear();
                        return Ok((comparison, self.interrupt.requested()));
                    }
                }
            }
            // A pair's rows go out together: a run stopped half-way through a pair leaves none of it behind.
            csv.push(&rows).context("could not write compare.csv").map_err(Failure::output)?;
            let mut pair = pair.into_iter();
            comparison.a.extend(pair.next());
            comparison.b.extend(pair.next());
        }
        bar.finish_and_clear();
        Ok((comparison, None))
    }

    /// One arm with one seed, its CSV rows added to `rows`; `None` when a signal stopped it.
    fn one(
        &self,
        arm: Arm,
        setup: &ArmSetup,
        seed: u64,
        rows: &mut String,
        bar: &indicatif::ProgressBar,
    ) -> Result<Option<SeedRun>, Failure> {
        let config = TrainConfig { seed, ..setup.config.clone() };
        let mut driver = Driver::new(config, self.data.clone(), self.backend, Evaluation::EveryTestEvery)
            .with_context(|| format!("arm {}, seed {seed}", arm.name()))
            .map_err(Failure::bad_input)?;
        driver.evaluate_after(self.steps);
        let mut run = SeedRun { seed, ..SeedRun::default() };
        for step in 1..=self.steps {
            if self.interrupt.requested().is_some() {
                return Ok(None);
            }
            match driver.step(false).map_err(Failure::internal)? {
                Driven::Updated { row, .. } => {
                    run.losses.push(row.loss);
                    // A regression's running figure is its R², in the same "higher is better" chart.
                    run.train_accuracies.push(row.train_regression.map_or(row.train_accuracy, |m| m.r2));
                    let test =
                        if row.test_accuracy.is_finite() { row.test_accuracy.to_string() } else { String::new() };
                    *rows += &format!(
                        "{},{seed},{step},{},{},{test},{}\n",
                        arm.name(),
                        row.loss,
                        row.train_accuracy,
                        row.test_step
                    );
                }
                Driven::Diverged { message, .. } => {
                    bar.suspend(|| eprintln!("convscope: arm {}, seed {seed}: {message}", arm.name()));
                    run.diverged_at = Some(step);
                    driver.evaluate().map_err(Failure::internal)?;
                    break;
                }
            }
            bar.inc(1);
        }
        bar.inc(self.steps - run.losses.len() as u64);
        run.test_accuracy = driver.trainer().test_accuracy();
        run.test_r2 = driver.trainer().test_regression().map(|m| m.r2);
        run.final_loss = driver.recent_loss();
        Ok(Some(run))
    }
}

/// compare.png: training loss (smoothed) and running training accuracy, each arm's mean with a band from its
/// lowest to its highest seed.
fn write_chart(comparison: &Comparison, setups: &[ArmSetup; 2], out: &Path, steps: u64) -> anyhow::Result<()> {
    let curve = |arm: Arm, series: &dyn Fn(&SeedRun) -> Vec<f32>| {
        let index = usize::from(arm == Arm::B);
        let band = comparison.band(arm, series);
        let flags = if setups[index].flags.is_empty() { "defaults" } else { &setups[index].flags };
        Curve {
            label: format!("{}: {flags}", arm.name()),
            colour: COLOURS[index],
            dashed: arm == Arm::B,
            points: band.into_iter().zip(1..).map(|((mean, low, high), step)| (step, mean, low, high)).collect(),
        }
    };
    let loss = |r: &SeedRun| trailing_mean(&r.losses, LOSS_SMOOTHING);
    let accuracy = |r: &SeedRun| r.train_accuracies.clone();
    let regression = comparison.a.iter().chain(&comparison.b).any(|r| r.test_r2.is_some());
    let (title, y_label) = if regression { ("training R²", "R²") } else { ("training accuracy", "accuracy") };
    let charts = [
        Chart {
            title: format!("training loss (mean of {LOSS_SMOOTHING} steps)"),
            y_label: "loss".into(),
            curves: Arm::BOTH.iter().map(|&arm| curve(arm, &loss)).collect(),
        },
        Chart {
            title: format!("{title} (last 50 batches)"),
            y_label: y_label.into(),
            curves: Arm::BOTH.iter().map(|&arm| curve(arm, &accuracy)).collect(),
        },
    ];
    let seeds = comparison.b.len();
    let caption = format!(
        "A vs B over {seeds} seed{}, {steps} steps: line = mean, band = lowest to highest seed",
        if seeds == 1 { "" } else { "s" }
    );
    let image = draw_charts(&charts, &caption, CHART_SIZE)?;
    export::write_png(out, "compare.png", &image)?;
    Ok(())
}
