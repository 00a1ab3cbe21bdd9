//! Checkpoints on the real model and data: a resumed run is bit-identical to one that never stopped, and a
//! damaged, foreign or mismatched checkpoint is refused naming the file and the fault; a run on its own data
//! continues on that data.

use std::path::Path;
use std::time::Duration;

use convscope::arch::Activation;
use convscope::config::{BackendKind, OptimizerKind, TrainConfig};
use convscope::history::read_data_origin;
use convscope::protocol::{Command, DataOrigin, DataRequest, WorkerEvent};
use convscope::snapshot::MetricRow;
use convscope::train::{
    CheckpointError, StepOutcome, TrainError, Trainer, WorkerHandle, WorkerOptions, checkpoint_file_name,
    read_checkpoint,
};

use crate::support::{config, convscope, mnist, scratch_dir, stderr};

fn losses(trainer: &mut Trainer, steps: usize) -> Vec<f32> {
    (0..steps)
        .map(|_| match trainer.step(false).expect("step runs") {
            StepOutcome::Updated { row, .. } => row.loss,
            StepOutcome::Diverged { message, .. } => panic!("diverged: {message}"),
        })
        .collect()
}

fn weights(trainer: &Trainer) -> Vec<Vec<f32>> {
    (0..trainer.model().layers.len()).map(|i| trainer.layer_weights(i).unwrap().data).collect()
}

/// 200 steps straight against 100, a checkpoint through a file, and 100 more from it.
fn resumes_exactly(tag: &str, config: TrainConfig) {
    let mut straight = Trainer::new(config.clone(), mnist(), BackendKind::Flex).unwrap();
    let all = losses(&mut straight, 200);
    let mut first = Trainer::new(config, mnist(), BackendKind::Flex).unwrap();
    assert_eq!(losses(&mut first, 100), all[..100]);
    let path = scratch_dir(tag).join(checkpoint_file_name(100));
    first.save_checkpoint(&path).unwrap();
    drop(first);
    let checkpoint = read_checkpoint(&path).unwrap();
    assert_eq!(checkpoint.step(), 100);
    let config = checkpoint.config().clone();
    let mut resumed = Trainer::resume(checkpoint, config, mnist(), BackendKind::Flex).unwrap();
    assert_eq!(resumed.step_count(), 100);
    let rest = losses(&mut resumed, 100);
    assert_eq!(rest, all[100..], "{tag}: the losses after the resume are bit-identical");
    assert_eq!(weights(&resumed), weights(&straight), "{tag}: and so are the weights");
    assert_eq!(resumed.epoch(), straight.epoch());
}

#[test]
fn a_resumed_run_is_bit_identical_with_momentum() {
    // Batches of 64 cross an epoch (125 steps) after the resume: the next order comes from the saved generator.
    resumes_exactly("ckpt-momentum", config(|c| c.batch_size = 64));
}

#[test]
fn a_resumed_run_is_bit_identical_with_adam_batch_norm_and_shifts() {
    resumes_exactly(
        "ckpt-adam",
        config(|c| {
            c.optimizer = OptimizerKind::Adam;
            c.lr = 1e-3;
            c.batch_norm = true;
            c.augment_shift = 2;
            c.batch_size = 64;
        }),
    );
}

#[test]
fn a_resumed_run_is_bit_identical_with_plain_sgd_and_live_changes() {
    let mut straight = Trainer::new(config(|c| c.optimizer = OptimizerKind::Sgd), mnist(), BackendKind::Flex).unwrap();
    // A live switch before the checkpoint is part of what it keeps.
    let sigmoid = convscope::config::Setting::Activation { layer: 1, activation: Activation::Sigmoid };
    straight.change(&sigmoid).unwrap();
    let dir = scratch_dir("ckpt-sgd");
    losses(&mut straight, 30);
    straight.save_checkpoint(&dir.join("a.ckpt")).unwrap();
    let expected = losses(&mut straight, 30);
    let checkpoint = read_checkpoint(&dir.join("a.ckpt")).unwrap();
    let config = checkpoint.config().clone();
    let mut resumed = Trainer::resume(checkpoint, config, mnist(), BackendKind::Flex).unwrap();
    assert_eq!(resumed.model().layers[1].settings.activation, Activation::Sigmoid, "the live switch is kept");
    assert_eq!(losses(&mut resumed, 30), expected);
}

fn refusal(path: &Path) -> CheckpointError {
    match read_checkpoint(path) {
        Err(error) => error,
        Ok(_) => panic!("{} was accepted", path.display()),
    }
}

#[test]
fn damaged_foreign_and_mismatched_checkpoints_are_refused_naming_the_fault() {
    let dir = scratch_dir("ckpt-bad");
    let mut trainer = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    losses(&mut trainer, 3);
    let good = dir.join("good.ckpt");
    trainer.save_checkpoint(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let cut = dir.join("cut.ckpt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let error = refusal(&cut);
    assert!(matches!(error, CheckpointError::Truncated { .. }), "{error}");
    assert!(error.to_string().contains("cut.ckpt") && error.to_string().contains("earlier checkpoint"), "{error}");

    let flipped = dir.join("flipped.ckpt");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    std::fs::write(&flipped, &damaged).unwrap();
    assert!(matches!(refusal(&flipped), CheckpointError::Corrupt { .. }));

    let png = dir.join("filters.ckpt");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n not a checkpoint").unwrap();
    let error = refusal(&png);
    assert!(matches!(error, CheckpointError::Foreign { .. }) && error.to_string().contains("--save-every"), "{error}");

    let future = dir.join("future.ckpt");
    let mut newer = bytes.clone();
    newer[8] = 9;
    std::fs::write(&future, &newer).unwrap();
    assert!(matches!(refusal(&future), CheckpointError::Version { found: 9, .. }));
    assert!(matches!(refusal(&dir.join("missing.ckpt")), CheckpointError::Read { .. }));

    // Another architecture: refused before any weight is touched, both nets named.
    let checkpoint = read_checkpoint(&good).unwrap();
    let other = TrainConfig { arch: "conv 4 3x3, pool 2, dense 16".into(), ..checkpoint.config().clone() };
    let Err(TrainError::Checkpoint(error)) = Trainer::resume(checkpoint, other, mnist(), BackendKind::Flex) else {
        panic!("another architecture was accepted");
    };
    let message = error.to_string();
    assert!(message.contains("ref-mnist") && message.contains("conv 4 3x3"), "{message}");
    // A changed live setting is fine: the weights stay and the new setting is used.
    let checkpoint = read_checkpoint(&good).unwrap();
    let tanh = TrainConfig { activation: Activation::Tanh, ..checkpoint.config().clone() };
    let resumed = Trainer::resume(checkpoint, tanh, mnist(), BackendKind::Flex).unwrap();
    assert_eq!(weights(&resumed), weights(&trainer));
    assert_eq!(resumed.model().layers[0].settings.activation, Activation::Tanh);
}

/// Waits (at most a minute) for the first event `pick` accepts, collecting metric rows on the way.
fn wait_for<T>(worker: &WorkerHandle, rows: &mut Vec<MetricRow>, mut pick: impl FnMut(&WorkerEvent) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let Some(event) = worker.recv_timeout(Duration::from_millis(200)) else { continue };
        if let WorkerEvent::Metrics(batch) = &event {
            rows.extend(batch.iter().cloned());
        }
        if let Some(found) = pick(&event) {
            return found;
        }
    }
    panic!("timed out waiting for an event");
}

/// The losses of `metrics.csv` in `out`, by step.
fn csv_losses(out: &Path) -> Vec<(u64, f32)> {
    let text = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].parse().unwrap(), fields[2].parse().unwrap())
        })
        .collect()
}

/// Play on a replay of a run trained on other data than the digits: the run folder names its data (with the
/// seed its split was drawn with), and the worker loads that data before it opens the checkpoint, so the run
/// continues bit for bit as `train --resume` continues it. Data that has moved says so, and what to do.
#[test]
fn a_run_on_its_own_data_continues_on_that_data() {
    let data = crate::cli::idx_folder("origin-data", |_, _| {});
    let (out, resumed) = (scratch_dir("origin-run"), scratch_dir("origin-resumed"));
    let train = |args: &[&Path], more: &[&str]| {
        let mut all: Vec<&str> = vec!["train", "--threads", "1", "--seed", "5", "--data", args[0].to_str().unwrap()];
        all.extend(["--out", args[1].to_str().unwrap()]);
        all.extend(more);
        let output = convscope(&all);
        assert!(output.status.success(), "{}", stderr(&output));
    };
    train(&[&data, &out], &["--steps", "20", "--save-every", "20"]);
    let origin = read_data_origin(&out).unwrap().expect("the run folder names its data");
    let request = origin.request.clone().expect("not the embedded digits");
    assert_eq!(request.path, std::path::absolute(&data).unwrap());
    assert_eq!(origin.split_seed, 5);
    let checkpoint = out.join(checkpoint_file_name(20));
    train(&[&data, &resumed], &["--steps", "5", "--resume", checkpoint.to_str().unwrap()]);
    let expected: Vec<(u64, f32)> = csv_losses(&resumed);
    assert_eq!(expected.iter().map(|r| r.0).collect::<Vec<_>>(), [21, 22, 23, 24, 25]);

    // The worker is given the digits as a stand-in, and told to wait for the run's own data.
    let spawn = |origin: DataOrigin| {
        let options = WorkerOptions {
            start_paused: true,
            threads: Some(1),
            resume: Some(checkpoint.clone()),
            data_origin: Some(origin),
            data_pending: true,
            ..WorkerOptions::default()
        };
        WorkerHandle::spawn(TrainConfig::default(), mnist(), options).unwrap()
    };
    let worker = spawn(origin.clone());
    let mut rows = Vec::new();
    let info = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Started(info) => Some(info.clone()),
        WorkerEvent::Failed { message, .. } => panic!("{message}"),
        _ => None,
    });
    assert!(info.data_source.contains("origin-data"), "{}", info.data_source);
    assert!(info.train_len < mnist().train.len(), "a split of the train-only pair, not the digits' own");
    worker.send(Command::Step(5));
    wait_for(&worker, &mut rows, |e| rows_up_to(e, 25));
    let continued: Vec<(u64, f32)> = rows.iter().map(|r| (r.step, r.loss)).collect();
    assert_eq!(continued, expected, "steps 21–25 as `train --resume` took them, bit for bit");

    let moved = DataOrigin { request: Some(DataRequest::path(data.join("gone"))), ..origin };
    let worker = spawn(moved);
    let message = wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Failed { message, .. } => Some(message.clone()),
        WorkerEvent::Started(_) => panic!("started on the stand-in digits"),
        _ => None,
    });
    for needle in ["cannot continue from", "gone", "--data PATH --resume"] {
        assert!(message.contains(needle), "expected {needle:?} in: {message}");
    }
    // Said once: no refusal of the load the worker itself asked for follows (the next answer is to this step).
    worker.send(Command::Step(0));
    wait_for(&worker, &mut rows, |e| match e {
        WorkerEvent::Rejected { command: Command::Step(0), .. } => Some(()),
        WorkerEvent::Rejected { command, reason } => panic!("{command:?} refused as well: {reason}"),
        _ => None,
    });
}

fn rows_up_to(event: &WorkerEvent, step: u64) -> Option<()> {
    match event {
        WorkerEvent::Metrics(batch) if batch.last().is_some_and(|r| r.step >= step) => Some(()),
        _ => None,
    }
}
