//! The worker thread through its real channel: commands take effect at the next step and are answered with
//! that step's number; pausing, stepping and divergence behave; the UI never has to read for it to go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use convscope::arch::Activation;
use convscope::config::{OptimizerKind, Setting};
use convscope::protocol::{Command, DataRequest, RunState, WorkerEvent};
use convscope::snapshot::{MetricRow, Snapshot};
use convscope::train::{WorkerHandle, WorkerOptions};

use crate::support::{config, mnist};

const TIMEOUT: Duration = Duration::from_secs(60);

fn paused_worker(change: impl FnOnce(&mut convscope::config::TrainConfig)) -> WorkerHandle {
    let options = WorkerOptions { start_paused: true, threads: Some(1), ..WorkerOptions::default() };
    WorkerHandle::spawn(config(change), mnist(), options).expect("spawn worker")
}

/// Waits for the first event `pick` accepts, collecting metric rows on the way.
fn wait_for<T>(worker: &WorkerHandle, rows: &mut Vec<MetricRow>, mut pick: impl FnMut(&WorkerEvent) -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        let Some(event) = worker.recv_timeout(Duration::from_millis(200)) else { continue };
        if std::env::var_os("CONVSCOPE_TEST_TRACE").is_some() {
            eprintln!("event: {}", format!("{event:?}").chars().take(160).collect::<String>());
        }
        if let WorkerEvent::Metrics(batch) = &event {
            rows.extend(batch.iter().cloned());
        }
        if let WorkerEvent::Failed { message, .. } = &event {
            panic!("worker failed: {message}");
        }
        if let Some(found) = pick(&event) {
            return found;
        }
    }
    panic!("timed out waiting for an event");
}

fn snapshot(event: &WorkerEvent) -> Option<Box<Snapshot>> {
    match event {
        WorkerEvent::Snapshot(s) => Some(s.clone()),
        _ => None,
    }
}

fn paused_at(event: &WorkerEvent) -> Option<u64> {
    match event {
        WorkerEvent::State { state: RunState::Paused, step } => Some(*step),
        _ => None,
    }
}

#[test]
fn started_event_and_first_snapshot_describe_the_net() {
    let worker = paused_worker(|_| {});
    let mut rows = Vec::new();
    let layers = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Started(info) => {
            assert_eq!(info.class_names.len(), 10);
            assert_eq!(info.train_len, 8000);
            assert_eq!(info.thumbnails.len(), convscope::train::PROBE_THUMBNAILS);
            Some(info.layers.clone())
        }
        _ => None,
    });
    let names: Vec<_> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv1", "pool1", "conv2", "pool2", "dense1"]);
    let first = wait_for(&worker, &mut rows, snapshot);
    assert_eq!(first.step, 0);
    assert_eq!(first.layers[0].weights.shape, vec![8, 1, 5, 5]);
    assert!(first.layers[0].weight_grads.is_none(), "no gradient before the first step");
    assert_eq!(first.probe.probabilities.len(), 10);
    assert!((first.probe.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
}

#[test]
fn activation_switch_between_two_steps_keeps_weights_and_reports_the_step() {
    let worker = paused_worker(|_| {});
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, snapshot);
    worker.send(Command::Step(2));
    let after_two = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 2));
    assert_eq!(wait_for(&worker, &mut rows, paused_at), 2);

    let switch = Command::Change(Setting::Activation { layer: 0, activation: Activation::Sigmoid });
    worker.send(switch.clone());
    let effective = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Applied { command, effective_step } if *command == switch => Some(*effective_step),
        _ => None,
    });
    assert_eq!(effective, 3, "the switch applies from the next step");
    // While paused, the worker refreshes the picture at once: same weights, new activation, new output.
    let refreshed = wait_for(&worker, &mut rows, snapshot);
    assert_eq!(refreshed.step, 2);
    for (a, b) in after_two.layers.iter().zip(&refreshed.layers) {
        assert_eq!(a.weights, b.weights, "{}: weights must not change on a switch", a.name);
    }
    assert_eq!(refreshed.layers[0].settings.activation, Activation::Sigmoid);
    assert_ne!(refreshed.probe.probabilities, after_two.probe.probabilities);

    worker.send(Command::Step(1));
    let third = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 3));
    assert_eq!(third.layers[0].settings.activation, Activation::Sigmoid);
    assert_ne!(third.layers[0].weights, refreshed.layers[0].weights, "training goes on after the switch");
}

#[test]
fn learning_rate_change_applies_at_the_very_next_step() {
    let worker = paused_worker(|c| c.optimizer = OptimizerKind::Sgd);
    let mut rows = Vec::new();
    let initial = wait_for(&worker, &mut rows, snapshot);
    worker.send(Command::Step(1));
    let first = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 1));
    worker.send(Command::Change(Setting::LearningRate(0.5)));
    let effective = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Applied { command: Command::Change(Setting::LearningRate(_)), effective_step } => {
            Some(*effective_step)
        }
        _ => None,
    });
    assert_eq!(effective, 2);
    worker.send(Command::Step(1));
    let second = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 2));
    wait_for(&worker, &mut rows, paused_at);
    // Plain SGD: each step moved the weights by exactly lr · gradient, with the new rate from step 2 on.
    for (before, after, lr) in [(&initial, &first, 0.01_f32), (&first, &second, 0.5)] {
        let grads = after.layers[0].weight_grads.as_ref().unwrap();
        for ((w0, g), w1) in before.layers[0].weights.data.iter().zip(&grads.data).zip(&after.layers[0].weights.data) {
            assert!((w1 - (w0 - lr * g)).abs() < 1e-5, "step {}: lr {lr}", after.step);
        }
    }
    let lrs: Vec<(u64, f64)> = rows.iter().map(|r| (r.step, r.lr)).collect();
    assert_eq!(lrs, [(1, 0.01), (2, 0.5)]);
}

#[test]
fn bad_commands_are_rejected_and_change_nothing() {
    let worker = paused_worker(|_| {});
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, snapshot);
    for command in [
        Command::Change(Setting::Activation { layer: 9, activation: Activation::Tanh }),
        Command::Change(Setting::LearningRate(-1.0)),
        Command::Change(Setting::BatchSize(0)),
        Command::SetProbe(1_000_000),
        Command::Reset(Box::new(config(|c| c.arch = "conv 8 3x3, pool 2, pool 2, pool 2, pool 2, pool 2".into()))),
    ] {
        worker.send(command.clone());
        let reason = wait_for(&worker, &mut rows, |e| match e {
            WorkerEvent::Rejected { command: rejected, reason } if *rejected == command => Some(reason.clone()),
            _ => None,
        });
        assert!(!reason.is_empty());
    }
    worker.send(Command::Step(1));
    let after = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 1));
    assert_eq!(wait_for(&worker, &mut rows, paused_at), 1, "the net still trains after rejected commands");
    // Nothing changed: the step is bit for bit the step of a worker that never saw the bad commands.
    let clean = paused_worker(|_| {});
    let mut clean_rows = Vec::new();
    wait_for(&clean, &mut clean_rows, snapshot);
    clean.send(Command::Step(1));
    let expected = wait_for(&clean, &mut clean_rows, |e| snapshot(e).filter(|s| s.step == 1));
    assert_eq!(after.layers[0].weights.data, expected.layers[0].weights.data);
    assert_eq!(after.layers.len(), expected.layers.len());
    for (layer, clean_layer) in after.layers.iter().zip(&expected.layers) {
        assert_eq!(layer.settings, clean_layer.settings, "{}", layer.name);
    }
    assert_eq!(rows.last().unwrap().loss, clean_rows.last().unwrap().loss);
    assert_eq!(rows.last().unwrap().lr, clean_rows.last().unwrap().lr);
}

#[test]
fn momentum_weight_decay_and_optimizer_changes_follow_their_update_rules_from_the_next_step() {
    let worker = paused_worker(|c| {
        c.optimizer = OptimizerKind::Momentum;
        c.momentum = 0.9;
        c.lr = 0.01;
    });
    let mut rows = Vec::new();
    let w0 = wait_for(&worker, &mut rows, snapshot).layers[0].weights.data.clone();
    let mut step = |setting: Option<Setting>, n: u64| -> (Vec<f32>, Vec<f32>) {
        if let Some(setting) = setting {
            worker.send(Command::Change(setting));
        }
        worker.send(Command::Step(1));
        let taken = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == n));
        wait_for(&worker, &mut rows, paused_at);
        let layer = &taken.layers[0];
        (layer.weights.data.clone(), layer.weight_grads.as_ref().unwrap().data.clone())
    };
    let close = |got: f32, want: f32, what: &str| assert!((got - want).abs() < 1e-5, "{what}: {got} vs {want}");
    let lr = 0.01;
    // Momentum 0.9, no dampening: v1 = g1.
    let (w1, g1) = step(None, 1);
    // Momentum 0.5 from step 2, keeping the velocity: v2 = 0.5·v1 + g2.
    let (w2, g2) = step(Some(Setting::Momentum(0.5)), 2);
    // Weight decay 0.1 from step 3 adds 0.1·w to the gradient: v3 = 0.5·v2 + g3 + 0.1·w2.
    let (w3, g3) = step(Some(Setting::WeightDecay(0.1)), 3);
    // Adam from step 4, fresh state: its first step moves each weight by lr·g'/(|g'| + 1e-5), g' = g4 + 0.1·w3.
    let (w4, g4) = step(Some(Setting::Optimizer(OptimizerKind::Adam)), 4);
    for i in 0..w0.len() {
        let v1 = g1[i];
        close(w1[i], w0[i] - lr * v1, "momentum step");
        let v2 = 0.5 * v1 + g2[i];
        close(w2[i], w1[i] - lr * v2, "new momentum, same velocity");
        let v3 = 0.5 * v2 + g3[i] + 0.1 * w2[i];
        close(w3[i], w2[i] - lr * v3, "weight decay");
        let decayed = g4[i] + 0.1 * w3[i];
        close(w4[i], w3[i] - lr * decayed / (decayed.abs() + 1e-5), "Adam's first step");
    }
}

#[test]
fn the_worker_evaluates_the_test_split_after_test_every_steps_within_its_time_budget() {
    let worker = paused_worker(|c| c.test_every = 5);
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, snapshot);
    worker.send(Command::Step(12));
    wait_for(&worker, &mut rows, |e| paused_at(e).filter(|&step| step == 12));
    let tested: Vec<(u64, u64)> = rows.iter().map(|r| (r.step, r.test_step)).collect();
    // Each row carries the step of the last evaluation: none before step 5, the first at step 5 (the budget
    // is empty until an evaluation has been timed), later ones only when the time spent allows.
    assert!(tested[..4].iter().all(|&(_, tested)| tested == 0), "{tested:?}");
    assert_eq!(tested[4], (5, 5));
    assert!(tested.windows(2).all(|w| w[0].1 <= w[1].1 && w[1].1 <= w[1].0), "{tested:?}");
    assert!(tested.iter().all(|&(_, at)| at == 0 || at >= 5), "{tested:?}");
    let accuracy = rows[4].test_accuracy;
    assert!(accuracy > 0.1 && accuracy <= 1.0, "the whole test split was scored: {accuracy}");
}

#[test]
fn rows_are_never_dropped_while_nobody_reads_and_the_worker_never_waits() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let options = WorkerOptions {
        threads: Some(1),
        waker: Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }),
        ..WorkerOptions::default()
    };
    let worker = WorkerHandle::spawn(config(|c| c.batch_size = 8), mnist(), options).unwrap();
    // Read nothing while the worker keeps training: each periodic wake follows a step, so 30 wakes mean at least
    // two dozen steps were taken while nobody read, however fast or slow this machine is.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while wakes.load(Ordering::Relaxed) < 30 {
        assert!(std::time::Instant::now() < deadline, "the worker stopped waking the UI");
        std::thread::sleep(Duration::from_millis(10));
    }
    worker.send(Command::Pause);
    let mut rows = Vec::new();
    let mut snapshots = 0;
    let paused = wait_for(&worker, &mut rows, |e| {
        if matches!(e, WorkerEvent::Snapshot(_)) {
            snapshots += 1;
        }
        paused_at(e)
    });
    assert!(paused > 20, "the worker trained while unread: {paused} steps");
    let steps: Vec<u64> = rows.iter().map(|r| r.step).collect();
    assert_eq!(steps, (1..=paused).collect::<Vec<_>>(), "every step's row arrives, in order");
    // Snapshots wait for the reader: without reads, at most the initial one and one more were sent.
    assert!(snapshots <= 2, "{snapshots} snapshots queued for a reader that never read");
    assert!(wakes.load(Ordering::Relaxed) > 0, "the worker wakes the UI");
}

#[test]
fn divergence_pauses_and_names_the_step() {
    let worker = paused_worker(|c| {
        c.activation = Activation::Identity;
        c.lr = 1000.0;
        c.optimizer = OptimizerKind::Sgd;
    });
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, snapshot);
    worker.send(Command::Resume);
    let (step, message) = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Diverged { step, message } => Some((*step, message.clone())),
        _ => None,
    });
    assert!(message.contains(&format!("step {step}")), "{message}");
    assert_eq!(wait_for(&worker, &mut rows, paused_at), step - 1, "the diverged step was not counted");
    assert!(rows.iter().all(|r| r.step < step && r.loss.is_finite()));
}

#[test]
fn reset_builds_a_new_net_from_the_seed() {
    let worker = paused_worker(|c| c.seed = 7);
    let mut rows = Vec::new();
    let first = wait_for(&worker, &mut rows, snapshot);
    worker.send(Command::Step(3));
    wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 3));
    worker.send(Command::Reset(Box::new(config(|c| c.seed = 7))));
    wait_for(&worker, &mut rows, |e| matches!(e, WorkerEvent::Started(_)).then_some(()));
    let again = wait_for(&worker, &mut rows, snapshot);
    assert_eq!(again.step, 0);
    assert_eq!(again.layers[0].weights, first.layers[0].weights, "the same seed gives the same net");
    worker.send(Command::Reset(Box::new(config(|c| c.seed = 8))));
    wait_for(&worker, &mut rows, |e| matches!(e, WorkerEvent::Started(_)).then_some(()));
    let other = wait_for(&worker, &mut rows, snapshot);
    assert_ne!(other.layers[0].weights, first.layers[0].weights);
}

#[test]
fn restore_after_divergence_brings_back_the_healthy_weights_and_halves_the_rate() {
    // tanh explodes at a huge rate (a trained ReLU net tends to die quietly instead).
    let worker = paused_worker(|c| c.activation = Activation::Tanh);
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, snapshot);
    worker.send(Command::Step(25));
    let healthy = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 25));
    worker.send(Command::Step(5));
    wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 30));
    worker.send(Command::Change(Setting::LearningRate(1000.0)));
    worker.send(Command::Resume);
    let diverged_at = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Diverged { step, .. } => Some(*step),
        _ => None,
    });
    assert!(diverged_at > 30);
    wait_for(&worker, &mut rows, paused_at);
    let restore = Command::RestoreHealthy { halve_lr: true };
    worker.send(restore.clone());
    wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Applied { command, .. } if *command == restore => Some(()),
        _ => None,
    });
    let restored = wait_for(&worker, &mut rows, snapshot);
    assert_eq!(restored.lr, 500.0, "the rate was halved");
    for (a, b) in healthy.layers.iter().zip(&restored.layers) {
        assert_eq!(a.weights, b.weights, "{}: the weights of step 25 are back", a.name);
        // The exploded steps' gradients belong to weights that are gone.
        assert!(b.weight_grads.is_none() && b.grad_norm == 0.0, "{}: no gradient until the next step", b.name);
    }
    // The loss shown is the healthy weights' (step 26's batch, before its update), not the exploded one.
    let exploded = rows.iter().rev().find(|r| r.step < diverged_at).map(|r| r.loss).unwrap();
    assert!(restored.loss.is_finite() && restored.loss < 5.0, "restored loss {}", restored.loss);
    assert!(exploded > 10.0 * restored.loss, "exploded {exploded} vs restored {}", restored.loss);
    assert_eq!(restored.loss, rows.iter().find(|r| r.step == 26).unwrap().loss);
}

/// A small colour image folder: class `red` of red images and class `blue` of blue ones, `side`×`side`, as
/// real PNG files.
pub(crate) fn colour_folder(tag: &str, side: u32) -> std::path::PathBuf {
    let dir = crate::support::scratch_dir(tag);
    for i in 0..60u32 {
        let (class, [r, g, b]) = if i % 2 == 0 { ("red", [220u8, 20, 20]) } else { ("blue", [20, 20, 220]) };
        std::fs::create_dir_all(dir.join(class)).unwrap();
        // A little texture so batches differ.
        let image = image::RgbImage::from_fn(side, side, |x, y| {
            let t = ((x + y + i) % 5) as u8;
            image::Rgb([r.saturating_add(t), g.saturating_add(t), b.saturating_add(t)])
        });
        image.save(dir.join(class).join(format!("{i:02}.png"))).unwrap();
    }
    dir
}

#[test]
fn new_data_rebuilds_the_net_and_unusable_data_leaves_the_run_alone() {
    let worker = paused_worker(|_| {});
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, |e| matches!(e, WorkerEvent::Started(_)).then_some(()));
    // A net that cannot shrink 2×2 images through two poolings is refused; the MNIST run stays.
    let tiny = DataRequest::path(colour_folder("worker-tiny", 2));
    let command = Command::LoadData { request: tiny, config: Box::new(config(|_| {})) };
    worker.send(command.clone());
    let reason = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Rejected { command: c, reason } if *c == command => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.contains("worker-tiny") && reason.contains("does not fit"), "{reason}");
    // Data that cannot be read at all is refused with the path named.
    let missing = Command::LoadData {
        request: DataRequest::path("/nonexistent/convscope-data"),
        config: Box::new(config(|_| {})),
    };
    worker.send(missing.clone());
    let reason = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Rejected { command: c, reason } if *c == missing => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.contains("/nonexistent/convscope-data"), "{reason}");
    // A spec that fits: the new net has 3 input channels and the data's class names.
    let spec = config(|c| c.arch = "conv 4 3x3 pad 1, pool 2".into());
    let folder = colour_folder("worker-colour", 8);
    worker.send(Command::LoadData { request: DataRequest::path(&folder), config: Box::new(spec) });
    let info = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Started(info) => Some(info.clone()),
        _ => None,
    });
    assert_eq!(info.train_len + info.test_len, 60);
    assert_eq!((info.input.channels, info.input.height, info.input.width), (3, 8, 8));
    let mut names = info.class_names.clone();
    names.sort();
    assert_eq!(names, ["blue", "red"]);
    assert_eq!(info.thumbnails.first().map(|t| t.pixels.len()), Some(3 * 8 * 8), "thumbnails in the data's shape");
    let first = wait_for(&worker, &mut rows, snapshot);
    assert_eq!(first.layers[0].weights.shape, vec![4, 3, 3, 3]);
    // The user's own image as the probe: a file that is no image is refused by name, a real one is shown.
    let not_an_image = folder.join("notes.png");
    std::fs::write(&not_an_image, b"not a png").unwrap();
    worker.send(Command::LoadProbeImage(not_an_image));
    let reason = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Rejected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.contains("notes.png"), "{reason}");
    let mine = folder.join("mine.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 200, 200])).save(&mine).unwrap();
    worker.send(Command::LoadProbeImage(mine));
    let probe = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.probe.own_image.is_some()));
    assert_eq!(probe.probe.own_image.as_deref(), Some("mine.png"));
    assert_eq!(probe.probe.label, None);
    assert_eq!(probe.probe.probabilities.len(), 2);
    worker.send(Command::Step(3));
    let step = wait_for(&worker, &mut rows, |e| paused_at(e).filter(|&s| s == 3));
    assert_eq!(step, 3);
}

#[test]
fn a_pace_holds_training_back_but_asked_steps_run_at_once() {
    let options = WorkerOptions {
        start_paused: true,
        threads: Some(1),
        pace: convscope::protocol::Pace::PerSecond(50.0),
        ..WorkerOptions::default()
    };
    let worker = WorkerHandle::spawn(config(|_| {}), mnist(), options).expect("spawn worker");
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, snapshot);
    // Steps asked for one by one do not wait for their turn, even at a crawl.
    worker.send(Command::SetPace(convscope::protocol::Pace::PerSecond(0.5)));
    let asked = Instant::now();
    worker.send(Command::Step(3));
    assert_eq!(wait_for(&worker, &mut rows, |e| paused_at(e).filter(|&s| s == 3)), 3);
    assert!(asked.elapsed() < Duration::from_secs(4), "3 asked steps took {:?}", asked.elapsed());
    // Running at 50 steps a second, 20 more steps take at least 19 intervals of 20 ms.
    worker.send(Command::SetPace(convscope::protocol::Pace::PerSecond(50.0)));
    let started = Instant::now();
    worker.send(Command::Resume);
    wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Metrics(batch) if batch.last().is_some_and(|r| r.step >= 23) => Some(()),
        _ => None,
    });
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(380), "20 steps at 50/s took only {took:?}");
    worker.send(Command::SetPace(convscope::protocol::Pace::Full));
    wait_for(&worker, &mut rows, |e| {
        matches!(e, WorkerEvent::Applied { command: Command::SetPace(convscope::protocol::Pace::Full), .. })
            .then_some(())
    });
}

#[test]
fn the_worker_checkpoints_into_its_run_folder_and_opens_a_checkpoint_where_it_stopped() {
    let run_dir = crate::support::scratch_dir("worker-run").join("run");
    let options = WorkerOptions {
        start_paused: true,
        threads: Some(1),
        run_dir: Some(run_dir.clone()),
        // Due after every step while running: the run folder keeps only the newest automatic ones.
        autosave: Some(Duration::ZERO),
        ..WorkerOptions::default()
    };
    let worker = WorkerHandle::spawn(config(|_| {}), mnist(), options).unwrap();
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, snapshot);
    worker.send(Command::Step(10));
    wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 10));
    worker.send(Command::SaveCheckpoint(None));
    let saved = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Saved { step: 10, path } => Some(path.clone()),
        _ => None,
    });
    assert_eq!(saved, run_dir.join("checkpoint-step000010.ckpt"));
    // Train on, then go back to the checkpoint: the steps after it are the ones the run took the first time.
    worker.send(Command::Step(5));
    wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 15));
    let first_time: Vec<f32> = rows.iter().filter(|r| r.step > 10).map(|r| r.loss).collect();
    worker.send(Command::OpenCheckpoint(saved.clone()));
    wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Started(_) => Some(()),
        WorkerEvent::Rejected { reason, .. } => panic!("refused: {reason}"),
        _ => None,
    });
    rows.clear();
    worker.send(Command::Step(5));
    wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 15));
    let again: Vec<f32> = rows.iter().map(|r| r.loss).collect();
    assert_eq!(again, first_time, "steps 11–15 again, bit for bit");
    // A file that is not a checkpoint is refused and the run stays.
    let bogus = run_dir.join("notes.ckpt");
    std::fs::write(&bogus, b"hello").unwrap();
    worker.send(Command::OpenCheckpoint(bogus.clone()));
    let reason = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Rejected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.contains("notes.ckpt") && reason.contains("not a convscope checkpoint"), "{reason}");
    // Running: a checkpoint after every step, of which the newest three stay, plus the one saved by hand.
    worker.send(Command::Resume);
    wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step >= 30));
    worker.send(Command::Pause);
    wait_for(&worker, &mut rows, paused_at);
    drop(worker);
    let mut names: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ckpt") && n.starts_with("checkpoint-"))
        .collect();
    names.sort();
    assert!(names.contains(&"checkpoint-step000010.ckpt".to_owned()), "{names:?}");
    assert_eq!(names.len(), 1 + convscope::train::AUTOSAVES_KEPT, "{names:?}");
    assert!(
        !std::fs::read_dir(&run_dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".partial"))
    );
    // The run folder also holds the history: both nets, the rows, snapshots, the save and the changes.
    let history = convscope::history::read_history(&run_dir.join("history.bin")).unwrap();
    assert!(history.torn.is_none());
    let count = |pick: fn(&WorkerEvent) -> bool| history.events.iter().filter(|e| pick(e)).count();
    assert_eq!(count(|e| matches!(e, WorkerEvent::Started(_))), 2, "the first net and the opened checkpoint");
    assert!(count(|e| matches!(e, WorkerEvent::Saved { step: 10, .. })) == 1);
    assert!(count(|e| matches!(e, WorkerEvent::Snapshot(_))) >= 3);
    let recorded: Vec<u64> = history
        .events
        .iter()
        .filter_map(|e| if let WorkerEvent::Metrics(rows) = e { Some(rows.iter().map(|r| r.step)) } else { None })
        .flatten()
        .collect();
    assert_eq!(recorded[..15], (1..=15).collect::<Vec<_>>()[..], "the first pass, every row");
}

#[test]
fn a_panic_inside_a_step_is_reported_and_training_goes_on_from_the_step_before() {
    let options =
        WorkerOptions { start_paused: true, threads: Some(1), panic_at_step: Some(3), ..WorkerOptions::default() };
    let worker = WorkerHandle::spawn(config(|_| {}), mnist(), options).expect("spawn worker");
    let mut rows = Vec::new();
    wait_for(&worker, &mut rows, snapshot);
    worker.send(Command::Step(2));
    let second = wait_for(&worker, &mut rows, |e| snapshot(e).filter(|s| s.step == 2));
    worker.send(Command::Step(5));
    // Failed (not a crash of the worker, nor of the window that reads it), then paused.
    let deadline = Instant::now() + TIMEOUT;
    let (failed_step, message) = loop {
        assert!(Instant::now() < deadline, "no failure reported");
        match worker.recv_timeout(Duration::from_millis(200)) {
            Some(WorkerEvent::Failed { step, message }) => break (step, message),
            Some(WorkerEvent::Metrics(batch)) => rows.extend(batch),
            _ => {}
        }
    };
    assert_eq!(failed_step, 3);
    assert!(message.contains("a fault injected at step 3") && message.contains("training paused"), "{message}");
    assert_eq!(wait_for(&worker, &mut rows, paused_at), 2, "the net is as it was after step 2");
    // Nothing else is lost: the rows so far are all there, and training resumes from step 2's weights.
    worker.send(Command::SetProbe(1));
    let now = wait_for(&worker, &mut rows, snapshot);
    assert_eq!(now.step, 2);
    assert_eq!(now.layers[0].weights.data, second.layers[0].weights.data);
    worker.send(Command::Step(3));
    assert_eq!(wait_for(&worker, &mut rows, |e| paused_at(e).filter(|&s| s == 5)), 5);
    let steps: Vec<u64> = rows.iter().map(|r| r.step).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5]);
}
