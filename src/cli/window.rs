//! `convscope` with no command: the window's flags, and the launcher that wires the training worker to the
//! window (the window itself never sees the worker's types or the data layer).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::app::{Launched, Restored, RunOpener, Runs, WindowOptions};
use crate::cli::data::{DataFlags, embedded};
use crate::cli::failure::Failure;
use crate::cli::runs::{default_runs_dir, live_starter, new_run_dir, replay_notice};
use crate::cli::train::{preset, resolve_config};
use crate::config::{BackendKind, TrainConfig, TrainFlags};
use crate::protocol::{Command, DataOrigin, Pace, Waker};
use crate::replay::Replay;
use crate::train::{AUTOSAVE_INTERVAL, ComputePriority, WorkerHandle, WorkerOptions};

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
    pub backend: BackendKind,
    /// Start from the default settings instead of the ones saved at the last exit.
    #[arg(long)]
    pub fresh: bool,
    /// Open paused: build the net and wait for Play (Space) or Step (S).
    #[arg(long)]
    pub paused: bool,
    /// How fast to train: steps per second (e.g. 2 for slow motion), or `full` [default: the last session's,
    /// else 30, so the first epoch takes about 8 s].
    #[arg(long, value_name = "STEPS_PER_SEC|full", value_parser = Pace::parse)]
    pub pace: Option<Pace>,
    /// Train on this data once it has loaded (the embedded digits train meanwhile, and stay if it cannot be
    /// used: the window says why).
    #[command(flatten)]
    pub data: DataFlags,
    /// The training flags, as for `convscope train`: each one given overrides the saved settings.
    #[command(flatten)]
    pub flags: TrainFlags,
    /// The most memory a run may take, e.g. 8G: a net or data set estimated to need more is refused [default:
    /// half of the memory available at the start].
    #[arg(long, value_name = "SIZE", value_parser = crate::budget::parse_size)]
    pub max_memory: Option<u64>,
    /// Continue the run in this checkpoint (its net, weights and step) instead of starting a new one.
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
    /// Where runs are kept: each window run gets a folder here for its checkpoints (saved with Ctrl+S, every
    /// few minutes of training, and when the window closes) [default: the user's data folder, e.g.
    /// ~/.local/share/convscope/runs].
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
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
    /// Append the frame times of each minute (and the throughput so far) to this file as a JSON line: for
    /// long soak runs (scripts/soak.sh).
    #[arg(long, value_name = "PATH")]
    pub frame_log: Option<PathBuf>,
}

/// `--renderer` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RendererArg {
    /// OpenGL through glow
    Glow,
    /// wgpu (Vulkan, Metal, DX12 or GL)
    Wgpu,
}

/// `secs` as a duration, or a bad-input failure naming `flag`.
pub(crate) fn seconds(secs: f64, flag: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| Failure::bad_input(anyhow::anyhow!("{flag} {secs} must be a non-negative number of seconds")))
}

/// Bad flags fail before a window opens: the values, a backend this build lacks (refused as `train` refuses
/// it, not opened as an empty window), a spec that does not fit the digits the window starts on (unless other
/// data is coming), and a checkpoint that cannot be read. Returns the embedded digits, and the seed of
/// --resume's run (its data split).
fn check_before_opening(args: &WindowArgs) -> Result<(Arc<crate::data::DataSplit>, Option<u64>), Failure> {
    crate::train::autodiff_device(args.backend).map_err(Failure::bad_input)?;
    crate::train::check_threads(args.threads).map_err(Failure::bad_input)?;
    crate::budget::set_max_memory(args.max_memory);
    let checked = resolve_config(&args.flags, TrainConfig::default())?;
    if args.data.targets.is_some() && args.data.data.is_some() {
        let error = anyhow::anyhow!(
            "--targets with --data works in `convscope train` and `compare`; the window attaches --targets to the embedded digits only (leave out --data)"
        );
        return Err(Failure::bad_input(error));
    }
    // The embedded digits, with --targets attached when given.
    let data = Arc::new(if args.data.data.is_none() { args.data.load(checked.seed)? } else { embedded()? });
    if args.data.data.is_none() {
        let plan = checked.plan(data.train.shape(), data.train.classes()).map_err(Failure::bad_input)?;
        crate::train::check_memory(&plan, &checked).map_err(Failure::bad_input)?;
    }
    let resume_seed = match &args.resume {
        Some(path) => Some(crate::train::read_checkpoint(path).map_err(Failure::bad_input)?.config().seed),
        None => None,
    };
    Ok((data, resume_seed))
}

/// The restored settings if they are whole and fit `data`; else the defaults, with a notice saying which it was.
fn usable_or_default(config: TrainConfig, data: &crate::data::DataSplit) -> (TrainConfig, Option<String>) {
    if let Err(error) = config.validate() {
        let notice = format!("the saved settings were damaged ({error}); started from the defaults");
        return (TrainConfig::default(), Some(notice));
    }
    let planned = config.plan(data.train.shape(), data.train.classes()).map_err(crate::train::TrainError::from);
    match planned.and_then(|plan| crate::train::check_memory(&plan, &config)) {
        Ok(_) => (config, None),
        Err(error) => {
            let notice = format!(
                "the saved settings (spec `{}`) did not fit the data ({error}); started from the defaults",
                config.arch
            );
            (TrainConfig::default(), Some(notice))
        }
    }
}

/// Opens the window with `args`, training the embedded MNIST subset (then `--data`, once loaded).
pub fn run_window(args: &WindowArgs) -> Result<(), Failure> {
    let screenshot = match &args.screenshot {
        Some(path) => Some((path.clone(), seconds(args.screenshot_after, "--screenshot-after")?)),
        None => None,
    };
    let quit_after = match args.quit_after {
        Some(secs) => Some((seconds(secs, "--quit-after")?, args.frame_stats.clone())),
        None => None,
    };
    let chosen = preset(&args.flags)?;
    let preset_name = chosen.map(|p| p.name.to_owned());
    let (data, resume_seed) = check_before_opening(args)?;
    let (flags, request, resume) = (args.flags.clone(), args.data.request(), args.resume.clone());
    let targets = args.data.targets.clone();
    let runs_root = args.runs_dir.clone().or_else(default_runs_dir);
    let run_dir = new_run_dir(runs_root.clone());
    let (threads, backend, paused, pace_flag) = (args.threads, args.backend, args.paused, args.pace);
    let launch = Box::new(move |restored: Restored, waker: Waker| -> anyhow::Result<Launched> {
        let Restored { config: restored, pace } = restored;
        let pace = pace_flag.unwrap_or(pace);
        let waker_for_runs = waker.clone();
        // The saved settings with every flag given on top; a preset replaces them but keeps the saved seed.
        let mut config = resolve_config(&flags, restored.clone()).map_err(|f| f.error)?;
        if flags.preset.is_some() && flags.seed.is_none() {
            config.seed = restored.seed;
        }
        let (config, notice) = usable_or_default(config, &data);
        let options = WorkerOptions {
            threads,
            waker,
            start_paused: paused,
            pace,
            backend,
            priority: ComputePriority::Background,
            run_dir: run_dir.clone(),
            autosave: Some(AUTOSAVE_INTERVAL),
            resume: resume.clone(),
            // With a checkpoint to continue on --data, the data comes first (it is not the digits it starts on).
            data_pending: resume.is_some() && request.is_some(),
            data_origin: Some(DataOrigin {
                request: request.clone().filter(|_| resume.is_some()),
                targets: targets.clone(),
                split_seed: resume_seed.unwrap_or(config.seed),
            }),
            panic_at_step: None,
        };
        let worker = WorkerHandle::spawn(config.clone(), data.clone(), options)?;
        let runs = runs_root.clone().map(|dir| {
            let (waker, runs_dir, pace) = (waker_for_runs.clone(), runs_root.clone(), pace);
            let open: RunOpener = Box::new(move |run: &std::path::Path| {
                let (replay, summary) = Replay::open(run)?;
                let notice = replay_notice(run, &summary);
                let link = replay.continue_with(live_starter(waker.clone(), runs_dir.clone(), pace));
                Ok((Box::new(link) as Box<dyn crate::protocol::WorkerLink>, notice))
            });
            Runs { dir, open, current: run_dir.clone() }
        });
        if let (Some(request), None) = (request, &resume) {
            let load =
                Command::LoadData { request, config: Box::new(TrainConfig { probe_index: 0, ..config.clone() }) };
            worker.send(load);
        }
        // An experiment opens as an A/B run from one seed: arm B, its other arm, forked before the first step
        // (after --data's load, on the net built for it; a resumed run is not forked).
        if let (Some(preset), None) = (chosen, &resume)
            && let Ok(plan) = config.plan(data.train.shape(), data.train.classes())
        {
            worker.send(Command::Fork(preset.other_arm.settings(plan.weighted().count())));
        }
        Ok(Launched { worker: Box::new(worker), config, pace, notice, runs })
    });
    let options = WindowOptions {
        wgpu: matches!(args.renderer, RendererArg::Wgpu),
        screenshot,
        quit_after,
        fresh: args.fresh,
        set_settings_aside: args.fresh,
        preset: preset_name,
        frame_log: args.frame_log.clone(),
    };
    crate::app::run_window(options, launch).map_err(Failure::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_saved_settings_are_named_for_what_they_are() {
        let Ok(data) = embedded() else { panic!("the embedded digits load") };
        let (config, notice) = usable_or_default(TrainConfig { lr: f64::NAN, ..TrainConfig::default() }, &data);
        assert_eq!(config, TrainConfig::default());
        let notice = notice.unwrap_or_default();
        assert!(notice.contains("damaged (learning rate NaN must be a positive number"), "{notice}");
        let wide = TrainConfig { arch: "conv 8 5x5, pool 2, pool 2, pool 2, pool 2, pool 2".into(), ..config };
        let notice = usable_or_default(wide, &data).1.unwrap_or_default();
        assert!(notice.contains("did not fit the data"), "{notice}");
        assert_eq!(usable_or_default(TrainConfig::default(), &data).1, None);
    }

    /// `convscope --arch mlp` over a saved two-layer session with its own per-layer activations: the window
    /// opens the spec asked for, not the defaults with a notice that the saved activations did not fit it.
    #[test]
    fn a_spec_given_on_the_command_line_drops_the_saved_per_layer_activations() {
        use crate::arch::Activation;
        use clap::Parser;
        #[derive(Parser)]
        struct Line {
            #[command(flatten)]
            window: WindowArgs,
        }
        let Ok(data) = embedded() else { panic!("the embedded digits load") };
        let saved = TrainConfig {
            arch: "conv 8 3x3, pool 2, conv 16 3x3, pool 2".into(),
            layer_activations: vec![Activation::Relu, Activation::Tanh],
            ..TrainConfig::default()
        };
        assert_eq!(usable_or_default(saved.clone(), &data).1, None, "the saved session fits on its own");
        let args = |line: &[&str]| Line::try_parse_from([&["convscope"], line].concat()).map(|line| line.window);
        let Ok(new_spec) = args(&["--arch", "mlp"]) else { panic!("the flags parse") };
        let (config, notice) = usable_or_default(resolve_config(&new_spec.flags, saved.clone()).unwrap(), &data);
        assert_eq!((config.arch.as_str(), notice), ("mlp", None));
        assert!(config.layer_activations.is_empty());
        // The same spec again keeps them; --layer-activations with a new spec sets its own.
        let Ok(same) = args(&["--arch", "conv 8 3x3, pool 2, conv 16 3x3, pool 2"]) else { panic!("the flags parse") };
        assert_eq!(resolve_config(&same.flags, saved.clone()).unwrap().layer_activations, saved.layer_activations);
        let Ok(both) = args(&["--arch", "mlp", "--layer-activations", "sigmoid"]) else { panic!("the flags parse") };
        assert_eq!(resolve_config(&both.flags, saved).unwrap().layer_activations, vec![Activation::Sigmoid]);
    }
}
