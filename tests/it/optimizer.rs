//! The one-pass SGD and Adam updates against burn's `Sgd` and `Adam`: the same weights to the bit, step after step,
//! with and without momentum and weight decay; optimiser state saved by either loads into the other; and the
//! update's own measure of its size is the one the statistics took from the weights.

use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor};
use convscope::kernels::{self, FusedAdam, FusedSgd};

const LR: f64 = 0.05;

fn burns(momentum: Option<f64>, decay: Option<f64>) -> ModuleOptimizer {
    SgdConfig::new()
        .with_weight_decay(decay.map(|d| WeightDecayConfig::new(d as f32)))
        .with_momentum(momentum.map(|m| MomentumConfig::new().with_momentum(m).with_dampening(0.0)))
        .init()
}

fn fused(momentum: Option<f64>, decay: Option<f64>) -> ModuleOptimizer {
    ModuleOptimizer::from(FusedSgd::new(momentum, decay))
}

/// One step on a fixed batch of the step's number, through `optimizer`.
fn step(optimizer: &mut ModuleOptimizer, layer: Linear, number: u64, device: &Device) -> Linear {
    let x = Tensor::<1>::from_data(inputs(number, [16, 300]).as_slice(), device).reshape([16, 300]);
    let r = Tensor::<1>::from_data(inputs(number + 100, [16, 40]).as_slice(), device).reshape([16, 40]);
    let grads = layer.forward(x).mul(r).sum().backward();
    let grads = GradientsParams::from_grads(grads, &layer);
    optimizer.step(LR, layer, grads)
}

/// Deterministic values in [−1, 1) for a batch.
fn inputs(seed: u64, [rows, cols]: [usize; 2]) -> Vec<f32> {
    (0..rows * cols).map(|i| (((i as u64 * 2_654_435_761 + seed * 97) % 1000) as f32 / 500.0) - 1.0).collect()
}

fn bits(layer: &Linear) -> Vec<u32> {
    let mut values = layer.weight.val().into_data().try_to_vec::<f32>().unwrap();
    values.extend(layer.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap());
    values.into_iter().map(f32::to_bits).collect()
}

/// burn's optimiser and the project's for one case, built afresh (a name for the messages).
type Pair = (String, Box<dyn Fn() -> ModuleOptimizer>, Box<dyn Fn() -> ModuleOptimizer>);

fn pairs() -> Vec<Pair> {
    let mut pairs: Vec<Pair> = Vec::new();
    for (momentum, decay) in [(None, None), (None, Some(5e-3)), (Some(0.9), None), (Some(0.9), Some(5e-3))] {
        pairs.push((
            format!("SGD, momentum {momentum:?}, decay {decay:?}"),
            Box::new(move || burns(momentum, decay)),
            Box::new(move || fused(momentum, decay)),
        ));
    }
    for decay in [None, Some(5e-3)] {
        pairs.push((
            format!("Adam, decay {decay:?}"),
            Box::new(move || {
                AdamConfig::new().with_weight_decay(decay.map(|d| WeightDecayConfig::new(d as f32))).init()
            }),
            Box::new(move || ModuleOptimizer::from(FusedAdam::new(decay))),
        ));
    }
    pairs
}

#[test]
fn the_one_pass_update_is_burns_to_the_bit_and_their_states_load_into_each_other() {
    let device = Device::flex().autodiff();
    let start = LinearConfig::new(300, 40).init(&device);
    for (case, burns, ours) in pairs() {
        let (mut theirs, mut ours_now) = (burns(), ours());
        let (mut a, mut b) = (start.clone(), start.clone());
        let fallbacks = kernels::fallbacks_on_this_thread();
        for number in 0..3 {
            a = step(&mut theirs, a, number, &device);
            b = step(&mut ours_now, b, number, &device);
            assert_eq!(bits(&a), bits(&b), "{case}, step {number}");
        }
        assert_ne!(bits(&a), bits(&start), "{case}: the steps changed the weights");
        assert_eq!(kernels::fallbacks_on_this_thread(), fallbacks, "{case}: the update went through tensor ops");
        // Each one's saved state goes on in the other: the state is recorded under the same names.
        let (saved_theirs, saved_ours) = (theirs.into_bytes().unwrap(), ours_now.into_bytes().unwrap());
        let mut ours_from_theirs = ours().from_bytes(saved_theirs).unwrap();
        let mut theirs_from_ours = burns().from_bytes(saved_ours).unwrap();
        let (mut c, mut d) = (a.clone(), b.clone());
        for number in 3..5 {
            a = step(&mut theirs_from_ours, a, number, &device);
            b = step(&mut ours_from_theirs, b, number, &device);
            c = step(&mut ours_now, c, number, &device);
            d = step(&mut theirs, d, number, &device);
        }
        assert_eq!(bits(&a), bits(&b), "{case}: after loading each other's state");
        assert_eq!(bits(&a), bits(&c), "{case}: a loaded state goes on as the kept one");
        assert_eq!(bits(&a), bits(&d), "{case}");
    }
}

#[test]
fn the_update_measures_the_step_the_statistics_would_have_measured() {
    let device = Device::flex().autodiff();
    let mut optimizer = fused(Some(0.9), Some(1e-3));
    let mut layer = LinearConfig::new(300, 40).init(&device);
    for number in 0..2 {
        let before = layer.weight.val().inner().flatten::<1>(0, 1);
        kernels::take_step_sizes();
        layer = step(&mut optimizer, layer, number, &device);
        let sizes = kernels::take_step_sizes();
        let after = layer.weight.val().inner().flatten::<1>(0, 1);
        let (distance, norm) = sizes.of(&after).expect("the fused update measured the weight it wrote");
        let (a, b) = (after.into_data().try_to_vec::<f32>().unwrap(), before.into_data().try_to_vec::<f32>().unwrap());
        let want_distance: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
        let want_norm: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum();
        assert!(want_distance > 0.0);
        assert!((distance - want_distance).abs() <= 1e-6 * want_distance, "{distance} vs {want_distance}");
        assert!((norm - want_norm).abs() <= 1e-6 * want_norm, "{norm} vs {want_norm}");
        // A tensor the step did not write is not found.
        assert!(sizes.of(&Tensor::<1>::zeros([12_000], &device).inner()).is_none());
    }
}

/// A training step's update ratio and weight RMS, as the statistics row gives them, against the weights read
/// before and after the step, through the fused updates' own measure
/// (the default SGD with momentum, plain SGD and Adam).
#[test]
fn a_step_s_weight_figures_are_those_of_the_weights() {
    use convscope::config::{BackendKind, OptimizerKind, TrainConfig};
    use convscope::train::{StepOutcome, Trainer};
    for optimizer in [OptimizerKind::Momentum, OptimizerKind::Sgd, OptimizerKind::Adam] {
        let config = TrainConfig { test_every: 0, optimizer, weight_decay: 1e-3, ..TrainConfig::default() };
        let mut trainer = Trainer::new(config, crate::support::mnist(), BackendKind::Flex).unwrap();
        trainer.set_stats_every(1);
        for _ in 0..3 {
            let before: Vec<Vec<f32>> = (0..).map_while(|i| trainer.layer_weights(i).ok()).map(|w| w.data).collect();
            let layers = before.len();
            let StepOutcome::Updated { row, .. } = trainer.step(false).unwrap() else { panic!("diverged") };
            assert_eq!(row.stats.len(), layers, "{optimizer:?}");
            for (i, (stats, before)) in row.stats.iter().zip(&before).enumerate() {
                let after = trainer.layer_weights(i).unwrap().data;
                let norm: f64 = after.iter().map(|&w| f64::from(w).powi(2)).sum();
                let change: f64 = after.iter().zip(before).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                let (ratio, rms) = ((change / norm).sqrt(), (norm / after.len() as f64).sqrt());
                let case = format!("{optimizer:?}, layer {i}: {stats:?}");
                assert!(ratio > 0.0, "{case}");
                assert!((f64::from(stats.update_ratio) - ratio).abs() <= 1e-4 * ratio, "{case}: ratio {ratio}");
                assert!((f64::from(stats.weight_rms) - rms).abs() <= 1e-5 * rms, "{case}: rms {rms}");
            }
        }
    }
}
