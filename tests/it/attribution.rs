//! Attribution on the real model: the probe's saliency (∂loss/∂input) agrees with finite differences of the
//! loss, and a layer's activation gradient (∂loss/∂a, read from a zero leaf added to the activation) agrees
//! with the chain rule worked by hand through the output layer.

use convscope::arch::Activation;
use convscope::config::BackendKind;
use convscope::snapshot::FloatArray;
use convscope::train::Trainer;

use crate::support::{config, mnist};

fn trained(arch: &str, batch_norm: bool, steps: usize) -> Trainer {
    let config = config(|c| {
        c.arch = arch.into();
        // Smooth everywhere, so a finite difference has no kink to fall into.
        c.activation = Activation::Tanh;
        c.batch_norm = batch_norm;
    });
    let mut trainer = Trainer::new(config, mnist(), BackendKind::Flex).unwrap();
    for _ in 0..steps {
        trainer.step(false).unwrap();
    }
    trainer
}

fn saliency_matches_finite_differences(trainer: &Trainer) {
    let probe = trainer.probe().unwrap();
    let class = probe.attributed_class.expect("a test image has a label");
    assert_eq!(Some(class), probe.label);
    let grad = probe.input_grad.clone().expect("an input gradient");
    assert_eq!(grad.shape, probe.input.shape);
    // The pixels the loss is most sensitive to, and one it ignores (a corner of the background).
    let mut order: Vec<usize> = (0..grad.data.len()).collect();
    order.sort_by(|&a, &b| grad.data[b].abs().total_cmp(&grad.data[a].abs()));
    let h = 1e-3_f32;
    for &pixel in order.iter().take(5).chain([&0]) {
        let at = |delta: f32| {
            let mut input = probe.input.clone();
            input.data[pixel] += delta;
            f64::from(trainer.probe_loss(&input, class).unwrap())
        };
        let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
        let analytic = f64::from(grad.data[pixel]);
        let scale = f64::from(grad.data[order[0]].abs()).max(1e-6);
        assert!(
            (numeric - analytic).abs() <= 0.05 * scale,
            "pixel {pixel}: autodiff {analytic:e}, finite difference {numeric:e} (largest {scale:e})"
        );
    }
}

// Max pooling is left out on purpose: over a flat background a pooling window holds exact ties, where the
// loss has no derivative (autodiff routes the gradient to one of the tied inputs, a finite difference sees a
// kink). Strided convolutions downsample smoothly instead.

#[test]
fn saliency_is_the_gradient_of_the_loss_with_respect_to_the_input() {
    saliency_matches_finite_differences(&trained("conv 4 5x5 stride 2, conv 6 3x3, dense 10", false, 40));
}

#[test]
fn with_batch_norm_the_saliency_is_of_the_inference_net_the_probe_shows() {
    saliency_matches_finite_differences(&trained("conv 4 5x5 stride 2, conv 6 3x3 stride 2", true, 40));
}

#[test]
fn activation_gradients_follow_the_chain_rule_through_the_output_layer() {
    let trainer = trained("dense 32", false, 30);
    let probe = trainer.probe().unwrap();
    let class = probe.attributed_class.unwrap();
    let [hidden, output] = probe.activation_grads.as_slice() else { panic!("two layers with weights") };
    // The output layer's activation is the logits: ∂loss/∂z = softmax(z) − onehot(class).
    let expected: Vec<f32> =
        probe.probabilities.iter().enumerate().map(|(i, p)| p - f32::from(u8::from(i == class))).collect();
    assert_eq!(output.shape, vec![10]);
    for (got, want) in output.data.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-5, "{got} against {want}");
    }
    // The hidden layer feeds z = a·W + b, so ∂loss/∂a = W · (p − y), W being [32 inputs, 10 units].
    let weights: FloatArray = trainer.layer_weights(1).unwrap();
    assert_eq!(weights.shape, vec![32, 10]);
    assert_eq!(hidden.shape, vec![32]);
    for (unit, got) in hidden.data.iter().enumerate() {
        let want: f32 = (0..10).map(|k| weights.data[unit * 10 + k] * expected[k]).sum();
        assert!((got - want).abs() < 1e-5, "unit {unit}: {got} against {want}");
    }
}

#[test]
fn the_probe_panel_shows_saliency_and_switches_to_activation_gradients() {
    use convscope::app::FakeWorker;
    use convscope::protocol::WorkerEvent;
    use egui_kittest::kittest::Queryable;

    let trainer = trained("conv 4 5x5, pool 2, dense 10", false, 20);
    let fake = FakeWorker::default();
    fake.push(WorkerEvent::Started(Box::new(trainer.run_info(convscope::train::PROBE_THUMBNAILS))));
    fake.push(WorkerEvent::Snapshot(Box::new(trainer.refresh_snapshot().unwrap())));
    let mut harness = crate::support::window_on(&fake, eframe::egui::vec2(1280.0, 800.0));
    use eframe::egui::accesskit::Role;
    harness.get_by_role_and_label(Role::Image, "saliency |∂loss/∂x|");
    harness.get_by_role_and_label(Role::Image, "gradient × input");
    harness.get_by_label_contains("attribution for class");
    harness.get_by_label("∂loss/∂a").click();
    harness.run_steps(2);
    assert_eq!(harness.state().state.activations.maps, convscope::app::panels::activations::MapKind::Gradient);
    // Each layer's gradient maps, on a signed scale.
    harness.get_by_label_contains("conv1  ±");
    harness.get_by_label("conv1 maps");
}
