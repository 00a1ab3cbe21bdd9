//! Checkpoints on the real model and data: a resumed run is bit-identical to one that never stopped, and a
//! damaged, foreign or mismatched checkpoint is refused naming the file and the fault.

use std::path::Path;

use convscope::arch::Activation;
use convscope::config::{BackendKind, OptimizerKind, TrainConfig};
use convscope::train::{CheckpointError, StepOutcome, TrainError, Trainer, checkpoint_file_name, read_checkpoint};

use crate::support::{config, mnist, scratch_dir};

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
