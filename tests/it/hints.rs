//! The diagnosis rules on real training: each fires on a run that shows its problem, and none fires on a
//! healthy run. Statistics are taken every step, as `convscope train` does.

use convscope::config::{BackendKind, TrainConfig};
use convscope::diagnose::{self as hints, Hint, Rule, presets};
use convscope::snapshot::MetricRow;
use convscope::train::{StepOutcome, Trainer};

use crate::support::mnist;

/// Trains `steps` steps and returns the statistics rows and what the rules make of them.
fn diagnose(config: TrainConfig, steps: usize) -> (Vec<MetricRow>, Vec<Hint>) {
    diagnose_every(config, steps, 1)
}

/// The same with statistics only on every `every`-th step, with a snapshot, as the window takes them (its
/// statistics come with its snapshots, a few a second, not with every step).
fn diagnose_every(config: TrainConfig, steps: usize, every: usize) -> (Vec<MetricRow>, Vec<Hint>) {
    let mut trainer = Trainer::new(TrainConfig { test_every: 0, ..config }, mnist(), BackendKind::Flex).unwrap();
    trainer.set_stats_every(if every == 1 { 1 } else { 0 });
    let rows: Vec<MetricRow> = (1..=steps)
        .map(|step| match trainer.step(every > 1 && step % every == 0).unwrap() {
            StepOutcome::Updated { row, .. } => row,
            StepOutcome::Diverged { message, .. } => panic!("diverged: {message}"),
        })
        .collect();
    let hints = hints::diagnose(&rows, &trainer.layer_infos());
    (rows, hints)
}

fn rules(hints: &[Hint]) -> Vec<Rule> {
    hints.iter().map(|h| h.rule).collect()
}

fn preset(name: &str) -> TrainConfig {
    presets::find(name).unwrap().config()
}

#[test]
fn a_healthy_run_gets_no_hints_and_sane_statistics() {
    let (rows, hints) = diagnose(TrainConfig::default(), 300);
    assert!(hints.is_empty(), "{hints:#?}");
    let last = rows.last().unwrap();
    assert_eq!(last.stats.len(), 3, "conv1, conv2, dense1");
    for stats in &last.stats {
        assert!((1e-4..1e-1).contains(&stats.update_ratio), "{stats:?}");
        assert!(stats.weight_rms > 0.0 && stats.grad_rms > 0.0, "{stats:?}");
    }
    let conv1 = &last.stats[0];
    assert!(conv1.mean_slope.is_some_and(|s| (0.2..=1.0).contains(&s)), "ReLU slope is the active share: {conv1:?}");
    assert_eq!(conv1.saturated_fraction, None, "ReLU does not saturate");
    assert!(conv1.dead_fraction.is_some_and(|d| d < 0.5), "{conv1:?}");
    assert!(last.stats[2].mean_slope.is_none(), "the output layer's nonlinearity belongs to the loss");
}

#[test]
fn too_high_a_rate_kills_relu_units_and_the_rules_say_so() {
    let (rows, hints) = diagnose(preset("dead-relu"), 150);
    let found = rules(&hints);
    assert!(found.contains(&Rule::DeadRelu), "{hints:#?}");
    assert!(found.contains(&Rule::Exploding), "the pre-activations blew up first: {hints:#?}");
    let dead = &hints[0];
    assert_eq!(dead.rule, Rule::DeadRelu, "the most specific cause comes first");
    assert!(dead.sentence.contains("lower the learning rate (now 0.1)"), "{}", dead.sentence);
    let conv2 = &rows.last().unwrap().stats[1];
    assert!(conv2.dead_fraction.unwrap() >= 0.5, "{conv2:?}");
}

#[test]
fn weights_that_grew_from_a_small_init_but_stay_in_range_are_not_called_exploding() {
    // The bias preset's conv1 grows its pre-activation variance 100× from init (to about 4.6): ordinary for
    // raw pixels, and nowhere near the tails of any activation.
    let (rows, hints) = diagnose(preset("bias"), 300);
    assert!(!rules(&hints).contains(&Rule::Exploding), "{hints:#?}");
    let conv1 = &rows.last().unwrap().stats[0];
    assert!(conv1.pre_activation_var > 10.0 * conv1.init_pre_activation_var, "it did grow: {conv1:?}");
}

#[test]
fn a_large_init_saturates_sigmoid_units() {
    let (rows, hints) = diagnose(preset("saturation"), 100);
    assert!(rules(&hints).contains(&Rule::Saturation), "{hints:#?}");
    let saturated = rows.last().unwrap().stats.iter().filter_map(|s| s.saturated_fraction).fold(0.0, f32::max);
    assert!(saturated >= 0.5, "{saturated}");
    // Batch-norm puts the inputs back in the steep middle of the curve.
    let (_, hints) = diagnose(TrainConfig { batch_norm: true, ..preset("saturation") }, 100);
    assert!(!rules(&hints).contains(&Rule::Saturation), "{hints:#?}");
}

#[test]
fn a_tiny_rate_is_flagged_by_the_update_ratio() {
    let config = TrainConfig { lr: 1e-6, optimizer: convscope::config::OptimizerKind::Sgd, ..TrainConfig::default() };
    let (_, hints) = diagnose(config, 40);
    assert_eq!(rules(&hints), [Rule::UpdateRatio], "{hints:#?}");
    assert!(hints[0].sentence.contains("raise the learning rate"), "{}", hints[0].sentence);
}

/// Mean loss and train accuracy over the last 20 rows.
fn late(rows: &[MetricRow]) -> (f32, f32) {
    let tail = &rows[rows.len() - 20..];
    let mean = |f: fn(&MetricRow) -> f32| tail.iter().map(f).sum::<f32>() / tail.len() as f32;
    (mean(|r| r.loss), mean(|r| r.train_accuracy))
}

#[test]
fn the_sigmoid_vs_relu_preset_stalls_near_ln_10_and_its_relu_arm_learns() {
    // Without per-step statistics (this test is about the loss), 200 steps of each arm.
    let train = |config: TrainConfig| -> Vec<MetricRow> {
        let mut trainer = Trainer::new(TrainConfig { test_every: 0, ..config }, mnist(), BackendKind::Flex).unwrap();
        trainer.set_stats_every(1_000_000);
        (0..200)
            .map(|_| match trainer.step(false).unwrap() {
                StepOutcome::Updated { row, .. } => row,
                StepOutcome::Diverged { message, .. } => panic!("diverged: {message}"),
            })
            .collect()
    };
    let sigmoid = preset("sigmoid-vs-relu");
    let (loss, _) = late(&train(sigmoid.clone()));
    assert!(loss > 2.0, "sigmoid sits near ln 10 = 2.30: {loss}");
    let (loss, accuracy) = late(&train(TrainConfig { activation: convscope::arch::Activation::Relu, ..sigmoid }));
    assert!(loss < 1.5 && accuracy > 0.5, "ReLU learns: loss {loss}, accuracy {accuracy}");
}

#[test]
fn the_output_layer_preset_trains_sigmoid_outputs_with_bce_but_slower_than_softmax() {
    let sigmoid = preset("output-layer");
    assert_eq!(sigmoid.output, convscope::arch::OutputKind::Sigmoid);
    let (bce, _) = diagnose(sigmoid.clone(), 150);
    let (softmax, _) = diagnose(TrainConfig { output: convscope::arch::OutputKind::Softmax, ..sigmoid }, 150);
    // The binary cross-entropy path learns (its loss is on its own scale: compare accuracies).
    assert!(bce[bce.len() - 20..].iter().all(|r| r.loss.is_finite() && r.loss < bce[0].loss), "the BCE loss falls");
    let at = |rows: &[MetricRow], step: usize| rows[step - 1].train_accuracy;
    assert!(at(&bce, 150) > 0.6, "sigmoid outputs learn: {}", at(&bce, 150));
    assert!(at(&softmax, 50) > at(&bce, 50), "softmax is ahead early: {} vs {}", at(&softmax, 50), at(&bce, 50));
}

#[test]
fn the_rules_fire_at_the_windows_cadence_of_statistics_too() {
    // In the window, statistics come with snapshots: here one step in twelve.
    let (_, hints) = diagnose_every(preset("dead-relu"), 150, 12);
    assert!(rules(&hints).contains(&Rule::DeadRelu), "{hints:#?}");
    let (_, hints) = diagnose_every(preset("saturation"), 100, 12);
    assert!(rules(&hints).contains(&Rule::Saturation), "{hints:#?}");
    let (_, hints) = diagnose_every(TrainConfig::default(), 300, 12);
    assert!(hints.is_empty(), "a healthy run stays quiet: {hints:#?}");
}

/// A statistics step measures each layer inside its activation's pass (convolutions and dense layers alike);
/// a snapshot step keeps the pre-activations and measures them after. Both give the same figures, to the bit.
#[test]
fn statistics_measured_in_the_activation_s_pass_are_the_snapshot_step_s() {
    use convscope::arch::Activation;
    for activation in [Activation::Tanh, Activation::Relu, Activation::Sigmoid, Activation::Identity] {
        let config = TrainConfig {
            arch: "conv 4 3x3, pool 2, dense 24, dense 16".into(),
            activation,
            test_every: 0,
            ..TrainConfig::default()
        };
        let rows = |capture: bool| {
            let mut trainer = Trainer::new(config.clone(), mnist(), BackendKind::Flex).unwrap();
            trainer.set_stats_every(1);
            (0..3)
                .map(|_| match trainer.step(capture).unwrap() {
                    StepOutcome::Updated { row, snapshot, .. } => {
                        assert_eq!(snapshot.is_some(), capture);
                        format!("{:?}", row.stats)
                    }
                    StepOutcome::Diverged { message, .. } => panic!("diverged: {message}"),
                })
                .collect::<Vec<_>>()
        };
        let (measured, kept) = (rows(false), rows(true));
        assert!(measured[0].contains("mean_slope: Some"), "{activation:?}: {}", measured[0]);
        assert_eq!(measured, kept, "{activation:?}");
    }
}

#[test]
fn a_layer_s_input_is_its_predecessor_s_activations_unless_a_pool_comes_between() {
    // conv2 takes conv1's activations as they are (their mean square measured in the activation pass);
    // dense1 takes conv2's after a pool, whose maxima have the larger mean square (one pass over the input).
    let config = TrainConfig {
        arch: "conv 8 3x3, conv 8 3x3, pool 2, dense 16".into(),
        init: Some(convscope::arch::Init::He),
        ..TrainConfig::default()
    };
    let (rows, _) = diagnose(config, 5);
    let stats = &rows.last().unwrap().stats;
    let mean_square = |s: &convscope::snapshot::LayerStats| s.activation_var + s.activation_mean * s.activation_mean;
    // He: fan-in × the init variance is 2 on every layer, so the expected variance is twice the input's mean square.
    let (conv1, conv2, dense1) = (&stats[0], &stats[1], &stats[2]);
    let unpooled = conv2.init_pre_activation_var / (2.0 * mean_square(conv1));
    assert!((unpooled - 1.0).abs() < 1e-3, "{unpooled}: {conv1:?} {conv2:?}");
    let pooled = dense1.init_pre_activation_var / (2.0 * mean_square(conv2));
    assert!(pooled > 1.1, "a 2×2 max-pool of ReLU maps raises the mean square: {pooled}");
}
