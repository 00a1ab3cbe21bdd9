//! Repeating a run's settings over other seeds, on a thread of its own beside the live run: every seed trains
//! from scratch for the asked number of steps (paired: each arm's settings with the same seed, so the arms'
//! bands differ by their settings and not by their draws), and the runs finished so far go to the window after
//! each one, to draw the band of their loss curves. It computes on one thread at background priority, so the
//! live run keeps most of the machine; dropping the handle stops it after the step under way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use crate::arch::LayerSettings;
use crate::config::{BackendKind, TrainConfig};
use crate::data::DataSplit;
use crate::protocol::{Arm, SeedCurve, SeedRuns, Waker, WorkerEvent};
use crate::train::driver::{Driven, Driver, Evaluation};
use crate::train::error::TrainError;
use crate::train::threads::{ComputePriority, with_compute_threads};

/// What to repeat: each arm's configuration and live per-layer settings (activation, bias, batch-norm), the
/// seeds, the steps, and the data and backend to train on.
pub(crate) struct SeedRequest {
    pub(crate) arms: Vec<(Arm, TrainConfig, Vec<LayerSettings>)>,
    pub(crate) seeds: Vec<u64>,
    pub(crate) steps: u64,
    pub(crate) data: Arc<DataSplit>,
    pub(crate) backend: BackendKind,
}

/// A repeat under way; dropping it stops it.
pub(crate) struct SeedRepeat {
    stop: Arc<AtomicBool>,
}

impl Drop for SeedRepeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Starts `request` on the thread `convscope-seeds`; its runs go out through `events`, each with a `waker()`.
pub(crate) fn repeat_over_seeds(
    request: SeedRequest,
    events: Sender<WorkerEvent>,
    waker: Waker,
) -> std::io::Result<SeedRepeat> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new().name("convscope-seeds".into()).spawn(move || {
        let ran =
            with_compute_threads(Some(1), ComputePriority::Background, || repeat(&request, &stopped, &events, &waker));
        let failure = match ran {
            Ok(Ok(())) => None,
            Ok(Err(message)) => Some(message),
            Err(error) => Some(format!("could not start its compute thread: {error}")),
        };
        if let Some(message) = failure {
            let message = format!("repeating over seeds stopped: {message}");
            events.send(WorkerEvent::Warning { step: 0, message }).ok();
            waker();
        }
    })?;
    Ok(SeedRepeat { stop })
}

fn repeat(request: &SeedRequest, stop: &AtomicBool, events: &Sender<WorkerEvent>, waker: &Waker) -> Result<(), String> {
    let asked = request.seeds.len() as u32;
    let mut done: Vec<SeedRuns> = request
        .arms
        .iter()
        .map(|(arm, ..)| SeedRuns { arm: *arm, asked, steps: request.steps, runs: Vec::new() })
        .collect();
    for &seed in &request.seeds {
        for ((arm, config, layers), runs) in request.arms.iter().zip(&mut done) {
            let config = TrainConfig { seed, ..config.clone() };
            let run = train_one(config, layers, request, stop)
                .map_err(|error| format!("arm {} with seed {seed}: {error}", arm.name()))?;
            let Some(run) = run else { return Ok(()) };
            runs.runs.push(run);
            if events.send(WorkerEvent::SeedRuns(Box::new(runs.clone()))).is_err() {
                return Ok(());
            }
            waker();
        }
    }
    Ok(())
}

/// One run from scratch with the live per-layer settings `layers`; `None` when stopped.
fn train_one(
    config: TrainConfig,
    layers: &[LayerSettings],
    request: &SeedRequest,
    stop: &AtomicBool,
) -> Result<Option<SeedCurve>, TrainError> {
    let seed = config.seed;
    let mut driver = Driver::new(config, request.data.clone(), request.backend, Evaluation::Never)?;
    // A switch made live (an activation, a bias, batch-norm) holds from the first step; the weights were drawn
    // by the configuration's init, which the layer keeps naming.
    for (layer, live) in driver.trainer_mut().model.layers.iter_mut().zip(layers) {
        layer.settings = LayerSettings { init: layer.settings.init, ..*live };
    }
    // Only the loss is drawn: the layer statistics would cost a quarter of every step.
    driver.trainer_mut().set_stats_every(0);
    let mut run = SeedCurve { seed, losses: Vec::new(), test: None, diverged_at: None };
    for step in 1..=request.steps {
        if stop.load(Ordering::Acquire) {
            return Ok(None);
        }
        match driver.step(false)? {
            Driven::Updated { row, .. } => run.losses.push(row.loss),
            Driven::Diverged { .. } => {
                run.diverged_at = Some(step);
                break;
            }
        }
    }
    driver.evaluate()?;
    let trainer = driver.trainer();
    let test = trainer.test_regression().map_or(trainer.test_accuracy(), |m| m.r2);
    run.test = test.is_finite().then_some(test);
    Ok(Some(run))
}
