//! Training on the real model and the real digits: the loss falls, gradients are right, changes take effect
//! when they should, and bad specs are refused before burn sees them.

use convscope::arch::Activation;
use convscope::config::{BackendKind, OptimizerKind, Setting};
use convscope::snapshot::Snapshot;
use convscope::train::{StepOutcome, TrainError, Trainer};

use crate::support::{config, mnist};

fn step(trainer: &mut Trainer, capture: bool) -> (convscope::snapshot::MetricRow, Option<Box<Snapshot>>) {
    match trainer.step(capture).expect("step runs") {
        StepOutcome::Updated { row, snapshot, .. } => (row, snapshot),
        StepOutcome::Diverged { message, .. } => panic!("diverged: {message}"),
    }
}

#[test]
fn loss_falls_and_digits_are_learned() {
    let mut trainer = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    let before = trainer.evaluate().unwrap();
    let losses: Vec<f32> = (0..200).map(|_| step(&mut trainer, false).0.loss).collect();
    let first = losses[..20].iter().sum::<f32>() / 20.0;
    let last = losses[180..].iter().sum::<f32>() / 20.0;
    assert!(last < 0.4 * first, "loss fell only from {first} to {last}");
    let after = trainer.evaluate().unwrap();
    assert!(before < 0.3, "an untrained net should be near chance, got {before}");
    assert!(after > 0.85, "200 steps of ref-mnist should reach 85 % test accuracy, got {after}");
}

/// Central differences of the real loss against the gradient a snapshot carries, at the largest entries of
/// each layer's gradient (where a relative comparison is meaningful).
fn check_finite_differences(activation: Activation) {
    let mut trainer = Trainer::new(
        config(|c| {
            c.activation = activation;
            c.optimizer = OptimizerKind::Sgd;
            c.batch_size = 16;
        }),
        mnist(),
        BackendKind::Flex,
    )
    .unwrap();
    // A few steps first, so the gradients are not those of a fresh net only.
    for _ in 0..3 {
        step(&mut trainer, false);
    }
    let batch: Vec<usize> = (100..116).collect();
    let layers = trainer.plan().weighted_count();
    let before: Vec<_> = (0..layers).map(|l| trainer.layer_weights(l).unwrap()).collect();
    let snapshot = match trainer.step_on(&batch, true).unwrap() {
        StepOutcome::Updated { snapshot, .. } => snapshot.expect("captured"),
        StepOutcome::Diverged { message, .. } => panic!("{message}"),
    };
    // The step updated every layer; go back to the weights its gradients were taken at.
    for (layer, original) in before.iter().enumerate() {
        trainer.set_layer_weights(layer, original).unwrap();
    }
    for (layer, original) in before.iter().enumerate() {
        let grads = snapshot.layers[layer].weight_grads.as_ref().expect("a gradient per layer");
        assert_eq!(grads.shape, original.shape);
        let mut order: Vec<usize> = (0..grads.data.len()).collect();
        order.sort_by(|&a, &b| grads.data[b].abs().total_cmp(&grads.data[a].abs()));
        for &index in order.iter().take(3) {
            let h = 1e-2_f32;
            let mut probe = original.clone();
            probe.data[index] += h;
            trainer.set_layer_weights(layer, &probe).unwrap();
            let plus = trainer.batch_loss(&batch).unwrap();
            probe.data[index] -= 2.0 * h;
            trainer.set_layer_weights(layer, &probe).unwrap();
            let minus = trainer.batch_loss(&batch).unwrap();
            trainer.set_layer_weights(layer, original).unwrap();
            let numeric = (plus - minus) / (2.0 * h);
            let analytic = grads.data[index];
            assert!(
                (numeric - analytic).abs() <= 0.05 * analytic.abs() + 2e-4,
                "{activation} layer {layer} entry {index}: finite difference {numeric} vs snapshot gradient {analytic}"
            );
        }
    }
}

#[test]
fn finite_differences_agree_with_snapshot_gradients_tanh() {
    check_finite_differences(Activation::Tanh);
}

#[test]
fn finite_differences_agree_with_snapshot_gradients_relu() {
    check_finite_differences(Activation::Relu);
}

#[test]
fn finite_differences_agree_with_snapshot_gradients_sigmoid() {
    check_finite_differences(Activation::Sigmoid);
}

#[test]
fn sgd_update_is_lr_times_gradient_and_a_new_rate_applies_at_the_next_step() {
    let mut trainer = Trainer::new(config(|c| c.optimizer = OptimizerKind::Sgd), mnist(), BackendKind::Flex).unwrap();
    let mut weights = trainer.layer_weights(0).unwrap();
    for lr in [0.01, 0.5] {
        trainer.change(&Setting::LearningRate(lr)).unwrap();
        let (row, snapshot) = step(&mut trainer, true);
        assert_eq!(row.lr, lr);
        let snapshot = snapshot.unwrap();
        let grads = snapshot.layers[0].weight_grads.as_ref().unwrap();
        let after = &snapshot.layers[0].weights;
        for ((w0, g), w1) in weights.data.iter().zip(&grads.data).zip(&after.data) {
            let expected = w0 - lr as f32 * g;
            assert!((w1 - expected).abs() <= 1e-6 + 1e-5 * expected.abs(), "lr {lr}: {w1} vs {expected}");
        }
        weights = after.clone();
    }
}

#[test]
fn activation_switch_keeps_weights_and_changes_the_output() {
    let mut trainer = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    step(&mut trainer, false);
    let before = trainer.refresh_snapshot().unwrap();
    trainer.change(&Setting::Activation { layer: 0, activation: Activation::Sigmoid }).unwrap();
    let after = trainer.refresh_snapshot().unwrap();
    for (a, b) in before.layers.iter().zip(&after.layers) {
        assert_eq!(a.weights, b.weights, "{} weights changed", a.name);
    }
    assert_eq!(after.layers[0].settings.activation, Activation::Sigmoid);
    assert_ne!(before.probe.probabilities, after.probe.probabilities);
    // Sigmoid outputs lie in (0, 1); ReLU's did not all.
    assert!(after.probe.post_activations[0].data.iter().all(|&v| v > 0.0 && v < 1.0));
    assert!(before.probe.post_activations[0].data.iter().any(|&v| v > 1.0 || v == 0.0));
    // The output layer's activation belongs to the loss and cannot be switched.
    let last = trainer.plan().weighted_count() - 1;
    assert!(trainer.change(&Setting::Activation { layer: last, activation: Activation::Tanh }).is_err());
}

fn trainer_bias(trainer: &Trainer) -> Vec<f32> {
    trainer.model().layers[0].bias.val().into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn bias_off_freezes_the_bias_and_back_on_resumes() {
    let mut trainer = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    step(&mut trainer, false);
    trainer.change(&Setting::Bias { layer: 0, enabled: false }).unwrap();
    let frozen = trainer_bias(&trainer);
    for _ in 0..5 {
        step(&mut trainer, false);
    }
    assert_eq!(trainer_bias(&trainer), frozen, "a switched-off bias must not move");
    trainer.change(&Setting::Bias { layer: 0, enabled: true }).unwrap();
    step(&mut trainer, false);
    assert_ne!(trainer_bias(&trainer), frozen, "a switched-on bias trains again");
}

#[test]
fn batch_norm_switches_on_mid_run_and_trains() {
    let mut trainer = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    step(&mut trainer, false);
    trainer.change(&Setting::BatchNorm { layer: 0, enabled: true }).unwrap();
    trainer.change(&Setting::BatchNorm { layer: 1, enabled: true }).unwrap();
    let losses: Vec<f32> = (0..30).map(|_| step(&mut trainer, false).0.loss).collect();
    assert!(losses.iter().all(|l| l.is_finite()));
    let snapshot = trainer.refresh_snapshot().unwrap();
    assert!(snapshot.layers[0].settings.batch_norm);
}

#[test]
fn a_spec_too_deep_for_the_input_is_rejected_before_burn() {
    let spec = "conv 8 3x3, pool 2, pool 2, pool 2, pool 2, pool 2";
    let result = Trainer::new(config(|c| c.arch = spec.into()), mnist(), BackendKind::Flex);
    let Err(TrainError::Spec(error)) = result else { panic!("expected a spec error") };
    assert!(error.message.contains("layer 6"), "{error}");
    assert!(error.to_string().contains("pool 2\n"), "the spec is echoed: {error}");
}

#[test]
fn deep6_with_sigmoid_trains_without_error() {
    let mut trainer = Trainer::new(
        config(|c| {
            c.arch = "deep6".into();
            c.activation = Activation::Sigmoid;
        }),
        mnist(),
        BackendKind::Flex,
    )
    .unwrap();
    let (row, snapshot) = step(&mut trainer, true);
    assert_eq!(row.grad_norms.len(), 7);
    let snapshot = snapshot.unwrap();
    assert_eq!(snapshot.probe.pre_activations.len(), 7);
    assert_eq!(snapshot.probe.pre_activations[6].shape, vec![10]);
    // Through six sigmoid layers the first layer's gradient is far smaller than the last's.
    assert!(row.grad_norms[0] < row.grad_norms[6] / 10.0, "{:?}", row.grad_norms);
}

#[test]
fn non_finite_loss_skips_the_update() {
    // A linear net at a huge rate overflows within a few steps.
    let mut trainer = Trainer::new(
        config(|c| {
            c.activation = Activation::Identity;
            c.lr = 1000.0;
            c.optimizer = OptimizerKind::Sgd;
        }),
        mnist(),
        BackendKind::Flex,
    )
    .unwrap();
    for _ in 0..50 {
        let before = trainer.layer_weights(0).unwrap();
        let steps_before = trainer.step_count();
        match trainer.step(false).unwrap() {
            StepOutcome::Updated { .. } => continue,
            StepOutcome::Diverged { step, message } => {
                assert_eq!(step, steps_before + 1);
                assert!(message.contains(&format!("step {step}")), "{message}");
                assert!(message.contains("learning rate"), "{message}");
                assert_eq!(trainer.step_count(), steps_before, "the step counter does not move");
                assert_eq!(trainer.layer_weights(0).unwrap(), before, "the weights are untouched");
                return;
            }
        }
    }
    panic!("a linear net at lr 1000 should diverge within 50 steps");
}

#[test]
fn an_exploding_finite_loss_counts_as_divergence() {
    // ReLU at a huge rate: the loss climbs into the hundreds without ever becoming NaN.
    let mut trainer = Trainer::new(config(|c| c.lr = 1000.0), mnist(), BackendKind::Flex).unwrap();
    for _ in 0..10 {
        let before = trainer.layer_weights(1).unwrap();
        match trainer.step(false).unwrap() {
            StepOutcome::Updated { row, .. } => assert!(row.loss.is_finite()),
            StepOutcome::Diverged { step, message } => {
                assert!(step <= 6, "caught late, at step {step}");
                assert!(message.contains(&format!("step {step}")) && message.contains("exploded"), "{message}");
                assert_eq!(trainer.layer_weights(1).unwrap(), before, "the diverging update was skipped");
                return;
            }
        }
    }
    panic!("a ReLU net at lr 1000 must be caught within 10 steps");
}

#[test]
fn a_healthy_run_never_trips_the_explosion_rule() {
    let mut trainer = Trainer::new(config(|c| c.lr = 0.05), mnist(), BackendKind::Flex).unwrap();
    for _ in 0..150 {
        assert!(matches!(trainer.step(false).unwrap(), StepOutcome::Updated { .. }));
    }
}

#[test]
fn restore_healthy_goes_back_to_the_kept_weights() {
    let mut trainer = Trainer::new(config(|c| c.activation = Activation::Tanh), mnist(), BackendKind::Flex).unwrap();
    for _ in 0..25 {
        step(&mut trainer, false);
    }
    let kept = trainer.layer_weights(0).unwrap();
    for _ in 0..5 {
        step(&mut trainer, false);
    }
    assert_ne!(trainer.layer_weights(0).unwrap(), kept);
    assert_eq!(trainer.healthy_step(), Some(25));
    assert_eq!(trainer.restore_healthy().unwrap(), 25);
    assert_eq!(trainer.layer_weights(0).unwrap(), kept);
    assert_eq!(trainer.step_count(), 30, "the step counter keeps counting");
    step(&mut trainer, false);
}

#[test]
fn gradient_clipping_bounds_each_update_and_switches_off_again() {
    let sgd = |c: &mut convscope::config::TrainConfig| {
        c.optimizer = OptimizerKind::Sgd;
        c.lr = 0.1;
    };
    let mut trainer = Trainer::new(config(sgd), mnist(), BackendKind::Flex).unwrap();
    let distance = |a: &convscope::snapshot::FloatArray, b: &convscope::snapshot::FloatArray| {
        a.data.iter().zip(&b.data).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
    };
    trainer.change(&Setting::GradientClip(1e-3)).unwrap();
    let before = trainer.layer_weights(0).unwrap();
    let (row, _) = step(&mut trainer, false);
    let moved = distance(&before, &trainer.layer_weights(0).unwrap());
    assert!(row.grad_norms[0] > 1e-2, "the raw gradient is far above the clip: {}", row.grad_norms[0]);
    assert!(moved <= 0.1 * 1e-3 * 1.001, "the update was clipped to lr × 1e-3: it moved {moved}");
    // Off again: the next update follows the raw gradient.
    trainer.change(&Setting::GradientClip(0.0)).unwrap();
    let before = trainer.layer_weights(0).unwrap();
    let (row, _) = step(&mut trainer, false);
    let moved = distance(&before, &trainer.layer_weights(0).unwrap());
    assert!((moved - 0.1 * row.grad_norms[0]).abs() <= 1e-3 * moved, "{moved} vs {}", 0.1 * row.grad_norms[0]);
    assert!(trainer.change(&Setting::GradientClip(f64::NAN)).is_err());
}

#[test]
fn after_a_restore_late_in_a_run_ordinary_batches_are_not_called_a_divergence() {
    // Learn one batch by heart, so the loss on it — and on the healthy state kept meanwhile — is near zero.
    let mut trainer = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    let batch: Vec<usize> = (0..32).collect();
    for _ in 0..150 {
        assert!(matches!(trainer.step_on(&batch, false).unwrap(), StepOutcome::Updated { .. }));
    }
    trainer.restore_healthy().unwrap();
    let easy = match trainer.step_on(&batch, false).unwrap() {
        StepOutcome::Updated { row, .. } => row.loss,
        StepOutcome::Diverged { message, .. } => panic!("{message}"),
    };
    // Other batches cost far more than the memorised one; that is training, not a divergence.
    let mut hardest = 0.0_f32;
    for _ in 0..20 {
        match trainer.step(false).unwrap() {
            StepOutcome::Updated { row, .. } => hardest = hardest.max(row.loss),
            StepOutcome::Diverged { message, .. } => panic!("a false divergence after a restore: {message}"),
        }
    }
    assert!(hardest > 10.0 * easy, "the test needs batches far above the memorised one: {hardest} vs {easy}");
}

#[test]
fn a_probe_image_of_the_wrong_size_is_refused_naming_the_shape() {
    let mut trainer = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    let error = trainer.set_probe_image(vec![0; 10], "wrong.png".into()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("wrong.png") && message.contains("1×28×28"), "{message}");
    trainer.set_probe_image(vec![200; 28 * 28], "mine.png".into()).unwrap();
    assert_eq!(trainer.probe().unwrap().own_image.as_deref(), Some("mine.png"));
}

#[test]
fn switching_the_output_kind_keeps_the_weights_and_changes_the_loss() {
    let sigmoid = |c: &mut convscope::config::TrainConfig| c.output = convscope::arch::OutputKind::Sigmoid;
    let mut trainer = Trainer::new(config(sigmoid), mnist(), BackendKind::Flex).unwrap();
    let softmax = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    let batch: Vec<usize> = (0..32).collect();
    let (bce, ce) = (trainer.batch_loss(&batch).unwrap(), softmax.batch_loss(&batch).unwrap());
    assert_eq!(trainer.layer_weights(0).unwrap(), softmax.layer_weights(0).unwrap(), "the init ignores the loss");
    trainer.change(&Setting::Output(convscope::arch::OutputKind::Softmax)).unwrap();
    assert_eq!(trainer.batch_loss(&batch).unwrap(), ce, "now the softmax cross-entropy of the same weights");
    assert_ne!(bce, ce);
    assert_eq!(trainer.config().output, convscope::arch::OutputKind::Softmax);
    // And it trains on from there.
    let first = step(&mut trainer, false).0.loss;
    for _ in 0..30 {
        step(&mut trainer, false);
    }
    assert!(step(&mut trainer, false).0.loss < first);
}
