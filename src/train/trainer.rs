//! The synchronous training core: model, optimiser, data and step counter in one value, and the changes a
//! run takes between two steps (settings, probe, restore). Stepping is in `step.rs`, snapshots in
//! `capture.rs`; the [`Driver`](crate::train::Driver) decides when to evaluate and what to report.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::arch::{LayerSettings, NetPlan};
use crate::config::{BackendKind, OptimizerKind, Setting, TrainConfig};
use crate::data::DataSplit;
use crate::data::batch::{BatchSampler, Normalization};
use crate::kernels::{FusedAdam, FusedSgd};
use crate::model::Cnn;
use crate::protocol::{RunInfo, Thumbnail};
use crate::snapshot::{Confusion, ConfusionExample, FloatArray, LayerInfo};
use crate::train::device::autodiff_device;
use crate::train::error::{TrainError, readback};
use crate::train::stats::UnitTracker;
use crate::train::targets::Regression;
use crate::train::tensors::{BatchTargets, make_batch, predictions, weight_array};

/// How often (in steps) a healthy state — weights and optimiser state — is kept for "restore".
pub const HEALTHY_EVERY: u64 = 25;
/// Number of recent batches the running training accuracy averages over.
pub const TRAIN_ACCURACY_WINDOW: usize = 50;
/// Images per forward pass when evaluating the test split.
const EVAL_BATCH: usize = 100;
/// Mixed into the seed for the augmentation generator, so shifts do not mirror the shuffling order.
const SHIFT_SEED_SALT: u64 = 0x5EED_0005_41F7;

/// Model, optimiser, data and counters of one training run.
pub struct Trainer {
    pub(crate) config: TrainConfig,
    pub(crate) plan: NetPlan,
    pub(crate) model: Cnn,
    pub(crate) optimizer: ModuleOptimizer,
    pub(crate) device: Device,
    pub(crate) data: Arc<DataSplit>,
    pub(crate) normalization: Normalization,
    pub(crate) sampler: BatchSampler,
    pub(crate) shift_rng: ChaCha8Rng,
    pub(crate) step: u64,
    pub(crate) recent_accuracy: VecDeque<(usize, usize)>,
    pub(crate) test_accuracy: f32,
    /// The step at the last evaluation.
    pub(crate) test_step: u64,
    pub(crate) elapsed_secs: f64,
    pub(crate) step_secs: f64,
    /// The last step's batch, weight gradients (flattened), their norms and loss: what a snapshot shows.
    pub(crate) last_indices: Vec<usize>,
    pub(crate) last_grads: Vec<Option<Tensor<1>>>,
    pub(crate) last_grad_norms: Vec<f32>,
    pub(crate) last_loss: f32,
    /// The first step's loss and gradient norms since the build: the explosion rule's reference.
    pub(crate) reference: Option<(f32, Vec<f32>)>,
    /// Consecutive steps with an exploding loss.
    pub(crate) exploding_steps: u32,
    /// The latest state kept while training was healthy: step, weights and optimiser state.
    pub(crate) healthy: Option<HealthyState>,
    /// Take layer statistics every this many steps (0: only with snapshots).
    pub(crate) stats_every: u64,
    /// Which units spoke lately: the dead-unit count's memory.
    pub(crate) units: UnitTracker,
    /// The user's own probe image (C×H×W bytes in the data's shape) and its name, instead of a test image.
    pub(crate) own_probe: Option<(Vec<u8>, String)>,
    /// A fault test's injected panic: the step with this number panics once, after its backward pass.
    pub(crate) panic_at: Option<u64>,
    /// The test split's confusion matrix at the last evaluation.
    pub(crate) confusion: Option<Confusion>,
    /// A regression head's targets and measured errors (`None` for classification).
    pub(crate) regression: Option<Regression>,
}

/// A copy of the net from a healthy moment, to go back to after a divergence.
#[derive(Clone)]
pub(crate) struct HealthyState {
    pub(crate) step: u64,
    pub(crate) model: Cnn,
    /// The loss these weights gave on the batch of the step that kept them, and the running accuracy then:
    /// what the window shows after a restore, instead of the thrown-away steps' figures.
    pub(crate) loss: f32,
    pub(crate) recent_accuracy: VecDeque<(usize, usize)>,
    /// The optimiser state, serialised (its record type cannot be cloned).
    pub(crate) optimizer: burn::tensor::Bytes,
}

pub(crate) fn build_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay = (config.weight_decay > 0.0).then_some(config.weight_decay);
    let clip = (config.grad_clip > 0.0).then_some(GradientClippingConfig::Norm(config.grad_clip as f32));
    // The project's one-pass updates, their state recorded as burn's `Sgd` and `Adam` record it. SGD's momentum
    // has no dampening (burn's default is 0.1; PyTorch and the reference use none); Adam has burn's defaults.
    let optimizer = match config.optimizer {
        OptimizerKind::Sgd => ModuleOptimizer::from(FusedSgd::new(None, decay)),
        OptimizerKind::Momentum => ModuleOptimizer::from(FusedSgd::new(Some(config.momentum), decay)),
        OptimizerKind::Adam => ModuleOptimizer::from(FusedAdam::new(decay)),
    };
    match clip {
        Some(clip) => optimizer.with_grad_clipping(clip.init()),
        None => optimizer,
    }
}

impl Trainer {
    /// Builds the net for `data` from `config` on `backend`.
    pub fn new(config: TrainConfig, data: Arc<DataSplit>, backend: BackendKind) -> Result<Trainer, TrainError> {
        config.validate()?;
        let plan = config.plan(data.train.shape(), data.train.classes())?;
        // Before any tensor exists: a net that would not fit is refused, not built until the machine swaps.
        crate::train::memory::check_memory(&plan, &config)?;
        let device = autodiff_device(backend)?;
        let model = Cnn::new(&plan, config.seed, &device);
        let normalization =
            if config.normalize { Normalization::from_dataset(&data.train) } else { Normalization::none() };
        let sampler = BatchSampler::new(data.train.len(), config.seed);
        let regression = Regression::for_task(config.task, &data, config.standardize_targets)?;
        let mut trainer = Trainer {
            regression,
            optimizer: build_optimizer(&config),
            shift_rng: ChaCha8Rng::seed_from_u64(config.seed ^ SHIFT_SEED_SALT),
            plan,
            model,
            device,
            normalization,
            sampler,
            step: 0,
            recent_accuracy: VecDeque::with_capacity(TRAIN_ACCURACY_WINDOW),
            test_accuracy: f32::NAN,
            test_step: 0,
            elapsed_secs: 0.0,
            step_secs: 0.0,
            last_indices: Vec::new(),
            last_grads: Vec::new(),
            last_grad_norms: Vec::new(),
            last_loss: f32::NAN,
            reference: None,
            exploding_steps: 0,
            healthy: None,
            stats_every: 0,
            panic_at: None,
            confusion: None,
            units: UnitTracker::default(),
            own_probe: None,
            data,
            config,
        };
        trainer.config.probe_index = trainer.config.probe_index.min(trainer.data.test.len().saturating_sub(1));
        Ok(trainer)
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The configuration, with every live change applied.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The checked layer plan.
    pub fn plan(&self) -> &NetPlan {
        &self.plan
    }

    /// The data this run trains and tests on (shared, so a reset reuses it without a copy).
    pub fn data(&self) -> &Arc<DataSplit> {
        &self.data
    }

    /// The net.
    pub fn model(&self) -> &Cnn {
        &self.model
    }

    /// The latest test accuracy (NaN before the first evaluation).
    pub fn test_accuracy(&self) -> f32 {
        self.test_accuracy
    }

    /// Completed passes over the training set.
    pub fn epoch(&self) -> usize {
        self.sampler.epoch()
    }

    /// Seconds spent in steps and evaluations since the run began.
    pub fn elapsed_secs(&self) -> f64 {
        self.elapsed_secs
    }

    /// Seconds spent in training steps alone.
    pub fn step_secs(&self) -> f64 {
        self.step_secs
    }

    /// Takes layer statistics ([`crate::snapshot::MetricRow::stats`]) every `every` steps as well as with every
    /// snapshot (0: only with snapshots). They cost reading the step's activations to the host and one pass over
    /// them (≈ 25 % of a ref-mnist step on the CPU).
    pub fn set_stats_every(&mut self, every: u64) {
        self.stats_every = every;
    }

    /// For fault tests: the step numbered `step` panics once, between its backward pass and the update, as a
    /// failure inside burn would (the recovery path is then exercised end to end).
    #[doc(hidden)]
    pub fn inject_panic_at(&mut self, step: u64) {
        self.panic_at = Some(step);
    }

    /// The step whose weights the test accuracy was measured with.
    pub fn test_step(&self) -> u64 {
        self.test_step
    }

    /// Running accuracy over the last [`TRAIN_ACCURACY_WINDOW`] batches.
    pub fn train_accuracy(&self) -> f32 {
        let (correct, total) = self.recent_accuracy.iter().fold((0, 0), |(c, t), (bc, bt)| (c + bc, t + bt));
        if total == 0 { f32::NAN } else { correct as f32 / total as f32 }
    }

    /// Layer descriptions for the UI, input to output.
    pub fn layer_infos(&self) -> Vec<LayerInfo> {
        let settings = self.model.settings();
        let mut weighted = 0;
        self.plan
            .layers
            .iter()
            .map(|layer| {
                let weighted_index = layer.settings.map(|_| {
                    weighted += 1;
                    weighted - 1
                });
                LayerInfo {
                    name: layer.name.clone(),
                    kind: layer.kind,
                    out_shape: layer.out_shape,
                    settings: weighted_index.and_then(|i| settings.get(i).copied()),
                    output: layer.output,
                    weighted_index,
                }
            })
            .collect()
    }

    /// What the window learns about this net: its layers, configuration, data and the first `thumbnails` test
    /// images for the probe picker.
    pub fn run_info(&self, thumbnails: usize) -> RunInfo {
        let (train, test) = (&self.data.train, &self.data.test);
        let thumbnails = (0..thumbnails.min(test.len()))
            .filter_map(|i| test.image(i).map(|pixels| Thumbnail { shape: test.shape(), pixels: pixels.to_vec() }))
            .collect();
        RunInfo {
            layers: self.layer_infos(),
            config: self.config.clone(),
            input: train.shape(),
            class_names: train.class_names().to_vec(),
            train_len: train.len(),
            test_len: test.len(),
            data_source: train.source().to_string(),
            thumbnails,
            step: self.step,
        }
    }

    // --- live changes ------------------------------------------------------------------------------------

    /// Applies a live setting from the next step on, without touching any parameter. A new optimiser kind
    /// starts from fresh state; a changed momentum or weight decay keeps the optimiser's state.
    pub fn change(&mut self, setting: &Setting) -> Result<(), TrainError> {
        if matches!(setting, Setting::Init(_)) && self.step > 0 {
            return Err(TrainError::InitAfterFirstStep { step: self.step });
        }
        let mut config = self.config.clone();
        let mut layers = self.model.settings();
        setting.apply(&mut config, &mut layers)?;
        if (config.batch_size, config.optimizer) != (self.config.batch_size, self.config.optimizer) {
            crate::train::memory::check_memory(&self.plan, &config)?;
        }
        let before = std::mem::replace(&mut self.config, config);
        for (layer, settings) in self.model.layers.iter_mut().zip(layers) {
            layer.settings = settings;
        }
        self.model.output_kind = self.config.output;
        self.plan.output = self.config.output;
        if before.optimizer != self.config.optimizer {
            self.optimizer = build_optimizer(&self.config);
        } else if (before.momentum, before.weight_decay, before.grad_clip)
            != (self.config.momentum, self.config.weight_decay, self.config.grad_clip)
        {
            // The record holds the per-parameter state (velocities); the new config only changes hyper-parameters.
            let record = self.optimizer.to_record();
            self.optimizer = build_optimizer(&self.config).load_record(record);
        }
        if matches!(setting, Setting::Init(_)) {
            self.redraw_weights()?;
        }
        Ok(())
    }

    /// Draws the net again from the run's seed with the configuration's init (before the first step, so no
    /// optimiser state, healthy copy or reference exists to keep); the live activations, biases and batch-norm
    /// switches stay.
    fn redraw_weights(&mut self) -> Result<(), TrainError> {
        let fresh = self.config.plan(self.data.train.shape(), self.data.train.classes())?;
        let mut plan = self.plan.clone();
        let weighted = plan.layers.iter_mut().zip(&fresh.layers).filter(|(planned, _)| planned.settings.is_some());
        for ((planned, fresh), live) in weighted.zip(self.model.settings()) {
            planned.settings = Some(LayerSettings { init: fresh.settings.map_or(live.init, |s| s.init), ..live });
        }
        self.model = Cnn::new(&plan, self.config.seed, &self.device);
        self.plan = plan;
        self.optimizer = build_optimizer(&self.config);
        (self.healthy, self.reference) = (None, None);
        Ok(())
    }

    /// Chooses the probe image by test-set index.
    pub fn set_probe(&mut self, index: usize) -> Result<(), TrainError> {
        let len = self.data.test.len();
        if index >= len {
            return Err(TrainError::ProbeIndex { index, len });
        }
        self.config.probe_index = index;
        self.own_probe = None;
        Ok(())
    }

    /// Makes the user's own image (C×H×W bytes in the data's shape) the probe, until a test image is chosen.
    pub fn set_probe_image(&mut self, pixels: Vec<u8>, name: String) -> Result<(), TrainError> {
        let shape = self.data.test.shape();
        if pixels.len() != shape.pixels() {
            return Err(TrainError::ProbeShape { name, got: pixels.len(), shape });
        }
        self.own_probe = Some((pixels, name));
        Ok(())
    }

    /// The step of the healthy state a [`Trainer::restore_healthy`] would go back to.
    pub fn healthy_step(&self) -> Option<u64> {
        self.healthy.as_ref().map(|h| h.step)
    }

    /// Goes back to the last healthy weights and optimiser state (the step counter keeps counting, so the
    /// metric history stays in order). Returns the step whose state was restored.
    pub fn restore_healthy(&mut self) -> Result<u64, TrainError> {
        let healthy = self.healthy.as_ref().ok_or(TrainError::NoHealthyState { every: HEALTHY_EVERY })?;
        let optimizer = build_optimizer(&self.config)
            .from_bytes(healthy.optimizer.clone())
            .map_err(|e| TrainError::OptimizerState { action: "restore", detail: format!("{e:?}") })?;
        // Live settings (activations, bias, batch-norm) stay as the user has them now.
        let settings = self.model.settings();
        self.model = healthy.model.clone();
        for (layer, settings) in self.model.layers.iter_mut().zip(settings) {
            layer.settings = settings;
        }
        self.optimizer = optimizer;
        self.exploding_steps = 0;
        // The thrown-away steps' loss, accuracy and gradients do not describe these weights: a snapshot taken
        // before the next step shows the healthy step's figures and no gradients.
        self.last_loss = healthy.loss;
        self.recent_accuracy.clone_from(&healthy.recent_accuracy);
        self.last_grads.clear();
        self.last_grad_norms.clear();
        // The explosion rule keeps the run's starting loss as its reference: a reference taken after a restore
        // late in a run would be near zero, and any ordinary batch would then look like an explosion.
        self.units.clear();
        Ok(healthy.step)
    }

    /// What the training split's batches carry as targets: one-hot classes, or the regression's numbers.
    pub(crate) fn train_targets(&self) -> BatchTargets<'_> {
        match &self.regression {
            Some(regression) => BatchTargets::Values(&regression.targets.train, regression.targets.scale),
            None => BatchTargets::OneHot(self.plan.classes),
        }
    }

    /// The same for the test split.
    pub(crate) fn test_targets(&self) -> BatchTargets<'_> {
        match &self.regression {
            Some(regression) => BatchTargets::Values(&regression.targets.test, regression.targets.scale),
            None => BatchTargets::OneHot(self.plan.classes),
        }
    }

    /// Accuracy over the whole test split with the current weights (batch-norm in inference mode); the
    /// confusion matrix of the same pass is kept for [`Trainer::confusion`]. A regression head's figures are
    /// kept for [`Trainer::regression_eval`] instead, and the accuracy is NaN.
    pub fn evaluate(&mut self) -> Result<f32, TrainError> {
        if self.regression.is_some() {
            return self.evaluate_regression();
        }
        let started = Instant::now();
        let model = self.model.valid();
        let test = &self.data.test;
        let mut confusion = Confusion::new(self.step, self.plan.classes);
        let all: Vec<usize> = (0..test.len()).collect();
        for chunk in all.chunks(EVAL_BATCH) {
            let (images, _, labels) =
                make_batch(test, chunk, &self.normalization, None, self.test_targets(), &self.device)?;
            let logits = readback("the test logits", model.forward(images.inner()).into_data())?;
            for ((&index, &label), predicted) in chunk.iter().zip(&labels).zip(predictions(&logits, self.plan.classes))
            {
                let true_class = usize::try_from(label).unwrap_or(usize::MAX);
                if confusion.count(true_class, predicted)
                    && let (Some(predicted), Some(pixels)) = (predicted, test.image(index))
                {
                    let pixels = pixels.to_vec();
                    confusion.examples.push(ConfusionExample { test_index: index, true_class, predicted, pixels });
                }
            }
        }
        let correct: u32 = (0..confusion.classes).map(|c| confusion.at(c, c)).sum();
        self.test_accuracy = if test.is_empty() { f32::NAN } else { correct as f32 / test.len() as f32 };
        self.test_step = self.step;
        self.confusion = Some(confusion);
        self.elapsed_secs += started.elapsed().as_secs_f64();
        Ok(self.test_accuracy)
    }

    fn evaluate_regression(&mut self) -> Result<f32, TrainError> {
        let started = Instant::now();
        let model = self.model.valid();
        let test = &self.data.test;
        let all: Vec<usize> = (0..test.len()).collect();
        let mut outputs = Vec::with_capacity(all.len());
        for chunk in all.chunks(EVAL_BATCH) {
            let (images, _, _) = make_batch(test, chunk, &self.normalization, None, self.test_targets(), &self.device)?;
            outputs.extend(readback("the test outputs", model.forward(images.inner()).into_data())?);
        }
        self.keep_regression_eval(&outputs);
        self.test_accuracy = f32::NAN;
        self.test_step = self.step;
        self.elapsed_secs += started.elapsed().as_secs_f64();
        Ok(self.test_accuracy)
    }

    /// The confusion matrix of the last evaluation, if there was one since the net was built.
    pub fn confusion(&self) -> Option<&Confusion> {
        self.confusion.as_ref()
    }

    /// The loss on the given training-set indices with the current weights, without any update (batch-norm,
    /// when on, uses the batch's statistics as in training). For finite-difference checks.
    pub fn batch_loss(&self, indices: &[usize]) -> Result<f32, TrainError> {
        let (images, targets, _) =
            make_batch(&self.data.train, indices, &self.normalization, None, self.train_targets(), &self.device)?;
        let loss = self.model.loss(self.model.forward(images), targets);
        Ok(readback("the loss", loss.into_data())?.first().copied().unwrap_or(f32::NAN))
    }

    /// The current weights of layer `layer` (index among the layers with weights).
    pub fn layer_weights(&self, layer: usize) -> Result<FloatArray, TrainError> {
        let count = self.model.layers.len();
        let target = self.model.layers.get(layer).ok_or(crate::config::SettingError::NoLayer { layer, count })?;
        weight_array(target)
    }

    /// Overwrites layer `layer`'s weights (same shape), keeping the parameter's identity so the optimiser's
    /// state still lines up.
    pub fn set_layer_weights(&mut self, layer: usize, weights: &FloatArray) -> Result<(), TrainError> {
        let device = self.device.clone();
        let count = self.model.layers.len();
        let target = self.model.layers.get_mut(layer).ok_or(crate::config::SettingError::NoLayer { layer, count })?;
        if weights.shape != target.weight_shape() {
            let (given, expected) = (weights.shape.clone(), target.weight_shape());
            return Err(TrainError::WeightShape { layer, given, expected });
        }
        let data = TensorData::new(weights.data.clone(), weights.shape.clone());
        if let Some(param) = target.conv_weight.take() {
            target.conv_weight = Some(param.map(|_| Tensor::<4>::from_data(data, &device).require_grad()));
        } else if let Some(param) = target.dense_weight.take() {
            target.dense_weight = Some(param.map(|_| Tensor::<2>::from_data(data, &device).require_grad()));
        }
        Ok(())
    }
}
