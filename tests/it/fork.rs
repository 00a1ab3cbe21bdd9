//! A/B forks on the real model and data: arm B is an exact copy of arm A at the fork, stays bit-identical
//! when nothing is changed, trains on the very same batches, and differs from the first step after a change.

use convscope::arch::Activation;
use convscope::config::{BackendKind, OptimizerKind, Setting, TrainConfig};
use convscope::train::{Driven, Driver, Evaluation};

use crate::support::{config, mnist};

fn driver(config: TrainConfig) -> Driver {
    Driver::new(config, mnist(), BackendKind::Flex, Evaluation::Never).unwrap()
}

fn losses(driver: &mut Driver, steps: usize) -> Vec<f32> {
    (0..steps)
        .map(|_| match driver.step(false).unwrap() {
            Driven::Updated { row, .. } => row.loss,
            Driven::Diverged { message, .. } => panic!("diverged: {message}"),
        })
        .collect()
}

fn weights(driver: &Driver) -> Vec<Vec<f32>> {
    let trainer = driver.trainer();
    (0..trainer.model().layers.len()).map(|i| trainer.layer_weights(i).unwrap().data).collect()
}

/// 200 steps straight against 100, a fork with no change, and 100 more in each arm, alternating as the
/// window's worker does.
fn unchanged_fork_stays_identical(config: TrainConfig) {
    let mut straight = driver(config.clone());
    let all = losses(&mut straight, 200);
    let mut a = driver(config);
    assert_eq!(losses(&mut a, 100), all[..100]);
    let mut b = a.fork(&[]).unwrap();
    assert_eq!(b.trainer().step_count(), 100, "the fork starts at the step it was taken");
    assert_eq!(weights(&b), weights(&a), "at the fork both arms hold the same weights");
    let (mut after_a, mut after_b) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        after_a.extend(losses(&mut a, 1));
        after_b.extend(losses(&mut b, 1));
    }
    assert_eq!(after_a, all[100..], "forking leaves arm A's own run untouched");
    assert_eq!(after_b, after_a, "an unchanged fork stays bit-identical");
    assert_eq!(weights(&b), weights(&straight));
    assert_eq!(b.trainer().epoch(), straight.trainer().epoch());
}

#[test]
fn an_unchanged_fork_stays_bit_identical_with_momentum_across_an_epoch() {
    // Batches of 64 cross an epoch (125 steps) after the fork: the next order comes from the copied generator.
    unchanged_fork_stays_identical(config(|c| c.batch_size = 64));
}

#[test]
fn an_unchanged_fork_stays_bit_identical_with_adam_batch_norm_and_shifts() {
    unchanged_fork_stays_identical(config(|c| {
        c.optimizer = OptimizerKind::Adam;
        c.lr = 1e-3;
        c.batch_norm = true;
        c.augment_shift = 2;
    }));
}

#[test]
fn both_arms_train_on_the_same_batches_and_a_change_shows_from_its_first_step() {
    let mut a = driver(config(|_| {}));
    losses(&mut a, 20);
    // A new rate changes only the update: the first step after the fork sees the same weights and the same
    // batch in both arms, so its loss is equal bit for bit; the next one is not.
    let mut slower = a.fork(&[Setting::LearningRate(0.001)]).unwrap();
    let mut relu_a = a.fork(&[]).unwrap();
    let hidden = a.trainer().model().layers.len() - 1;
    let to_sigmoid: Vec<Setting> =
        (0..hidden).map(|layer| Setting::Activation { layer, activation: Activation::Sigmoid }).collect();
    let mut sigmoid = a.fork(&to_sigmoid).unwrap();
    assert_eq!(sigmoid.trainer().model().layers[0].settings.activation, Activation::Sigmoid);
    assert_ne!(relu_a.trainer().model().layers[0].settings.activation, Activation::Sigmoid);

    let base = losses(&mut relu_a, 2);
    let slow = losses(&mut slower, 2);
    assert_eq!(slow[0], base[0], "same weights, same batch: the same first loss");
    assert_ne!(slow[1], base[1], "the smaller step shows from the second loss on");
    let sig = losses(&mut sigmoid, 1);
    assert_ne!(sig[0], base[0], "a fork to sigmoid differs from the first step after the fork");
    assert!(sig[0].is_finite());
    assert_eq!(sigmoid.trainer().step_count(), 21, "and counts on from the fork's step");
}

#[test]
fn a_refused_change_leaves_no_fork() {
    let a = driver(config(|_| {}));
    let layers = a.trainer().model().layers.len();
    let error = a.fork(&[Setting::Bias { layer: layers + 3, enabled: true }]).err().expect("no such layer");
    assert!(error.to_string().contains("layer"), "{error}");
}
