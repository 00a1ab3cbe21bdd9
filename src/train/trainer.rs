//! The synchronous training core: model, optimiser, data and step counter in one value. One call is one
//! training step (batch, forward, loss, backward, finite check, update), optionally capturing a snapshot.
//! The worker thread, `convscope train` and `convscope bench` all drive this same code.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::arch::{LayerSettings, NetPlan};
use crate::data::batch::{BatchSampler, Normalization, Shift, fill_batch};
use crate::data::{DataError, DataSplit, Dataset};
use crate::model::Cnn;
use crate::snapshot::{
    FloatArray, HISTOGRAM_BINS, Histogram, LayerInfo, LayerSnapshot, MetricRow, ProbeSnapshot, Snapshot,
};
use crate::train::config::{BackendKind, OptimizerKind, TrainConfig};
use crate::train::stats::{self, HostLayer, UnitTracker};

/// A finite loss counts as exploding when it is this many times the run's starting loss…
pub const EXPLOSION_FACTOR: f32 = 10.0;
/// …for this many consecutive steps: then training is treated as diverged, like a NaN. (A ReLU net at a huge
/// rate sits at losses of hundreds without ever producing NaN; one noisy batch must not stop a healthy run.)
pub const EXPLOSION_STEPS: u32 = 3;
/// How often (in steps) a healthy state — weights and optimiser state — is kept for "restore".
pub const HEALTHY_EVERY: u64 = 25;

/// Number of recent batches the running training accuracy averages over.
pub const TRAIN_ACCURACY_WINDOW: usize = 50;
/// Images per forward pass when evaluating the test split.
const EVAL_BATCH: usize = 100;
/// Mixed into the seed for the augmentation generator, so shifts do not mirror the shuffling order.
const SHIFT_SEED_SALT: u64 = 0x5EED_0005_41F7;

/// Why a trainer could not be built or a step could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The architecture spec does not parse or does not fit the data.
    #[error(transparent)]
    Spec(#[from] crate::arch::SpecError),
    /// The data could not be batched.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// The backend is not compiled into this binary.
    #[error("the {0} backend is not compiled in: rebuild with `--features {0}`")]
    BackendMissing(&'static str),
    /// The backend is compiled in but its device could not be set up (e.g. no GPU).
    #[error(
        "the {backend} backend could not start: {detail} — is there a GPU with a Vulkan, Metal or DX12 driver? Use --backend flex to train on the CPU"
    )]
    DeviceUnavailable {
        /// The backend.
        backend: &'static str,
        /// What failed.
        detail: String,
    },
    /// A tensor could not be read back from the device.
    #[error("could not read {what} back from the device: {detail}")]
    Readback {
        /// Which tensor.
        what: &'static str,
        /// The backend's message.
        detail: String,
    },
}

/// The result of one step.
#[derive(Debug)]
pub enum StepOutcome {
    /// The weights were updated.
    Updated {
        /// The step's metric row.
        row: MetricRow,
        /// The snapshot, when one was asked for.
        snapshot: Option<Box<Snapshot>>,
    },
    /// The loss or a gradient was not finite: nothing was updated and the step counter did not move.
    Diverged {
        /// The step that was attempted.
        step: u64,
        /// What was not finite, where, and what to try.
        message: String,
    },
}

impl BackendKind {
    /// The autodiff device for this backend.
    pub fn device(self) -> Result<Device, TrainError> {
        match self {
            BackendKind::Flex => Ok(Device::flex().autodiff()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // burn-ndarray is deprecated upstream; kept as the slower alternative
            BackendKind::Ndarray => Ok(Device::ndarray().autodiff()),
            #[cfg(not(feature = "ndarray"))]
            BackendKind::Ndarray => Err(TrainError::BackendMissing("ndarray")),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => {
                let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
                // wgpu sets itself up lazily and panics when no adapter answers: try it once here, so a
                // machine without a usable GPU gets a message instead.
                let probe = device.clone();
                std::panic::catch_unwind(move || Tensor::<1>::zeros([1], &probe).into_data()).map_err(|payload| {
                    TrainError::DeviceUnavailable {
                        backend: "wgpu",
                        detail: payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_else(|| "no usable GPU adapter".to_owned()),
                    }
                })?;
                Ok(device.autodiff())
            }
            #[cfg(not(feature = "wgpu"))]
            BackendKind::Wgpu => Err(TrainError::BackendMissing("wgpu")),
        }
    }
}

/// Model, optimiser, data and counters of one training run.
pub struct Trainer {
    config: TrainConfig,
    plan: NetPlan,
    model: Cnn,
    optimizer: ModuleOptimizer,
    device: Device,
    data: Arc<DataSplit>,
    normalization: Normalization,
    sampler: BatchSampler,
    shift_rng: ChaCha8Rng,
    step: u64,
    recent_accuracy: VecDeque<(usize, usize)>,
    test_accuracy: f32,
    elapsed_secs: f64,
    step_secs: f64,
    /// Whether `step` evaluates the test split every `test_every` steps itself (the worker schedules its own).
    auto_evaluate: bool,
    /// The last step's batch, weight gradients (flattened), their norms and loss: what a snapshot shows.
    last_indices: Vec<usize>,
    last_grads: Vec<Option<Tensor<1>>>,
    last_grad_norms: Vec<f32>,
    last_loss: f32,
    /// The first step's loss and gradient norms since the build or the last restore: the explosion rule's
    /// reference.
    reference: Option<(f32, Vec<f32>)>,
    /// Consecutive steps with an exploding loss.
    exploding_steps: u32,
    /// The latest state kept while training was healthy: step, weights and optimiser state.
    healthy: Option<HealthyState>,
    /// Take layer statistics every this many steps (0: only with snapshots).
    stats_every: u64,
    /// Which units spoke lately: the dead-unit count's memory.
    units: UnitTracker,
    /// The user's own probe image (C×H×W bytes in the data's shape) and its name, instead of a test image.
    own_probe: Option<(Vec<u8>, String)>,
}

/// A copy of the net from a healthy moment, to go back to after a divergence.
struct HealthyState {
    step: u64,
    model: Cnn,
    /// The optimiser state, serialised (its record type cannot be cloned).
    optimizer: burn::tensor::Bytes,
}

pub(crate) fn readback(what: &'static str, data: TensorData) -> Result<Vec<f32>, TrainError> {
    // Moves the values out where nothing else holds them (the CPU backends), rather than copying them.
    data.try_into_vec::<f32>().map_err(|e| TrainError::Readback { what, detail: format!("{e:?}") })
}

fn build_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay = (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    match config.optimizer {
        OptimizerKind::Sgd => SgdConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::Momentum => SgdConfig::new()
            .with_weight_decay(decay)
            // burn's default dampening is 0.1; PyTorch (and the reference) use none.
            .with_momentum(Some(MomentumConfig::new().with_momentum(config.momentum).with_dampening(0.0)))
            .init(),
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
    }
}

impl Trainer {
    /// Builds the net for `data` from `config` on `backend`.
    pub fn new(config: TrainConfig, data: Arc<DataSplit>, backend: BackendKind) -> Result<Trainer, TrainError> {
        config.validate().map_err(TrainError::Config)?;
        let plan = config.plan(data.train.shape(), data.train.classes())?;
        let device = backend.device()?;
        let model = Cnn::new(&plan, config.seed, &device);
        let normalization =
            if config.normalize { Normalization::from_dataset(&data.train) } else { Normalization::none() };
        let sampler = BatchSampler::new(data.train.len(), config.seed);
        let mut trainer = Trainer {
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
            elapsed_secs: 0.0,
            step_secs: 0.0,
            auto_evaluate: true,
            last_indices: Vec::new(),
            last_grads: Vec::new(),
            last_grad_norms: Vec::new(),
            last_loss: f32::NAN,
            reference: None,
            exploding_steps: 0,
            healthy: None,
            stats_every: 0,
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

    /// Leaves test evaluation to the caller instead of every `test_every` steps (the worker schedules it
    /// within a time budget).
    pub fn set_manual_evaluation(&mut self) {
        self.auto_evaluate = false;
    }

    /// Takes layer statistics ([`MetricRow::stats`]) every `every` steps as well as with every snapshot
    /// (0: only with snapshots). They cost reading the step's activations to the host and one pass over them
    /// (≈ 25 % of a ref-mnist step on the CPU).
    pub fn set_stats_every(&mut self, every: u64) {
        self.stats_every = every;
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

    // --- live changes ------------------------------------------------------------------------------------

    /// Sets the learning rate used from the next step on.
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<(), String> {
        self.try_config(|c| c.lr = lr)
    }

    /// Sets the batch size used from the next step on.
    pub fn set_batch_size(&mut self, batch_size: usize) -> Result<(), String> {
        self.try_config(|c| c.batch_size = batch_size)
    }

    /// Sets the momentum factor, keeping the optimiser's velocities.
    pub fn set_momentum(&mut self, momentum: f64) -> Result<(), String> {
        self.try_config(|c| c.momentum = momentum)?;
        self.rebuild_optimizer_keeping_state();
        Ok(())
    }

    /// Sets the L2 weight decay, keeping the optimiser's state.
    pub fn set_weight_decay(&mut self, weight_decay: f64) -> Result<(), String> {
        self.try_config(|c| c.weight_decay = weight_decay)?;
        self.rebuild_optimizer_keeping_state();
        Ok(())
    }

    /// Switches the update rule; the new one starts from fresh state.
    pub fn set_optimizer(&mut self, optimizer: OptimizerKind) {
        self.config.optimizer = optimizer;
        self.optimizer = build_optimizer(&self.config);
    }

    /// Chooses the probe image by test-set index.
    pub fn set_probe(&mut self, index: usize) -> Result<(), String> {
        let len = self.data.test.len();
        if index >= len {
            return Err(format!("probe index {index} is past the end of the test split ({len} images)"));
        }
        self.config.probe_index = index;
        self.own_probe = None;
        Ok(())
    }

    /// Makes the user's own image (C×H×W bytes in the data's shape) the probe, until a test image is chosen.
    pub fn set_probe_image(&mut self, pixels: Vec<u8>, name: String) -> Result<(), String> {
        let shape = self.data.test.shape();
        if pixels.len() != shape.pixels() {
            return Err(format!(
                "{name}: {} bytes do not make one {shape} image ({} bytes): convert it to the data's shape first",
                pixels.len(),
                shape.pixels()
            ));
        }
        self.own_probe = Some((pixels, name));
        Ok(())
    }

    /// Changes one layer's live settings (activation, bias, batch-norm) without touching any parameter.
    pub fn update_layer(&mut self, layer: usize, change: impl FnOnce(&mut LayerSettings)) -> Result<(), String> {
        let count = self.model.layers.len();
        let Some(target) = self.model.layers.get_mut(layer) else {
            return Err(format!("there is no layer {layer}: the net has {count} layers with weights (0..{count})"));
        };
        let mut settings = target.settings;
        change(&mut settings);
        if target.output && (settings.activation != target.settings.activation || settings.batch_norm) {
            return Err(format!(
                "{} is the output layer: its softmax / sigmoid belongs to the loss, and it has no batch-norm",
                target.name
            ));
        }
        target.settings = settings;
        Ok(())
    }

    fn try_config(&mut self, change: impl FnOnce(&mut TrainConfig)) -> Result<(), String> {
        let mut next = self.config.clone();
        change(&mut next);
        next.validate()?;
        self.config = next;
        Ok(())
    }

    fn rebuild_optimizer_keeping_state(&mut self) {
        // The record holds the per-parameter state (velocities); the new config only changes hyper-parameters.
        let record = self.optimizer.to_record();
        self.optimizer = build_optimizer(&self.config).load_record(record);
    }

    /// The loss on the given training-set indices with the current weights, without any update (batch-norm,
    /// when on, uses the batch's statistics as in training). For finite-difference checks.
    pub fn batch_loss(&self, indices: &[usize]) -> Result<f32, TrainError> {
        let (images, targets, _) =
            make_batch(&self.data.train, indices, &self.normalization, None, self.plan.classes, &self.device)?;
        let loss = self.model.loss(self.model.forward(images), targets);
        Ok(readback("the loss", loss.into_data())?.first().copied().unwrap_or(f32::NAN))
    }

    /// The current weights of layer `layer` (index among the layers with weights).
    pub fn layer_weights(&self, layer: usize) -> Result<FloatArray, TrainError> {
        let Some(target) = self.model.layers.get(layer) else {
            return Err(TrainError::Config(format!("there is no layer {layer}")));
        };
        weight_array(target)
    }

    /// Overwrites layer `layer`'s weights (same shape), keeping the parameter's identity so the optimiser's
    /// state still lines up.
    pub fn set_layer_weights(&mut self, layer: usize, weights: &FloatArray) -> Result<(), TrainError> {
        let device = self.device.clone();
        let Some(target) = self.model.layers.get_mut(layer) else {
            return Err(TrainError::Config(format!("there is no layer {layer}")));
        };
        if weights.shape != target.weight_shape() {
            return Err(TrainError::Config(format!(
                "weights of shape {:?} do not fit layer {layer} of shape {:?}",
                weights.shape,
                target.weight_shape()
            )));
        }
        let data = TensorData::new(weights.data.clone(), weights.shape.clone());
        if let Some(param) = target.conv_weight.take() {
            target.conv_weight = Some(param.map(|_| Tensor::<4>::from_data(data, &device).require_grad()));
        } else if let Some(param) = target.dense_weight.take() {
            target.dense_weight = Some(param.map(|_| Tensor::<2>::from_data(data, &device).require_grad()));
        }
        Ok(())
    }

    // --- stepping ----------------------------------------------------------------------------------------

    /// Runs one training step on the next batch; with `capture`, also returns a snapshot.
    pub fn step(&mut self, capture: bool) -> Result<StepOutcome, TrainError> {
        let indices = self.sampler.next_indices(self.config.batch_size);
        self.step_on(&indices, capture)
    }

    /// Runs one training step on the given training-set indices.
    pub fn step_on(&mut self, indices: &[usize], capture: bool) -> Result<StepOutcome, TrainError> {
        let started = Instant::now();
        let shift = Shift { max_pixels: self.config.augment_shift };
        let augment = (shift.max_pixels > 0).then_some((&shift, &mut self.shift_rng));
        let (images, targets, labels) =
            make_batch(&self.data.train, indices, &self.normalization, augment, self.plan.classes, &self.device)?;
        // Batch-norm updates its running statistics during the forward pass: keep them, so a step that turns
        // out to diverge leaves no trace (NaN statistics would poison every later evaluation).
        let saved_statistics: Vec<(Tensor<1>, Tensor<1>)> = self
            .model
            .layers
            .iter()
            .filter(|l| l.settings.batch_norm)
            .map(|l| (l.norm.running_mean.value(), l.norm.running_var.value()))
            .collect();
        let step = self.step + 1;
        let want_stats = capture || (self.stats_every > 0 && step.is_multiple_of(self.stats_every));
        let (logits, trace) = if want_stats {
            let (logits, trace) = self.model.forward_traced(images);
            (logits, Some(trace))
        } else {
            (self.model.forward(images), None)
        };
        let loss = self.model.loss(logits.clone(), targets);
        let loss_value = readback("the loss", loss.clone().into_data())?.first().copied().unwrap_or(f32::NAN);
        let logits_host = readback("the logits", logits.into_data())?;
        let correct = count_correct(&logits_host, &labels, self.plan.classes);

        let grads = loss.backward();
        // Squared norms of every gradient, read back in one go: the finite check and the metric row's norms.
        // `counts[i]` is how many of them belong to layer i (its weight first, then bias and batch-norm).
        let mut squares = Vec::new();
        let mut counts = Vec::with_capacity(self.model.layers.len());
        let mut weight_grads = Vec::with_capacity(self.model.layers.len());
        for layer in &self.model.layers {
            let grad: Option<Tensor<1>> = match (&layer.conv_weight, &layer.dense_weight) {
                (Some(w), _) => w.grad(&grads).map(|g| g.flatten::<1>(0, 3)),
                (None, Some(w)) => w.grad(&grads).map(|g| g.flatten::<1>(0, 1)),
                (None, None) => None,
            };
            let before = squares.len();
            // A weight always takes part in the forward pass; a zero keeps the layout if one ever does not.
            squares.push(
                grad.clone().map_or_else(|| Tensor::zeros([1], &self.device.clone().inner()), |g| g.square().sum()),
            );
            weight_grads.push(grad);
            for extra in [layer.bias.grad(&grads), layer.norm.gamma.grad(&grads), layer.norm.beta.grad(&grads)]
                .into_iter()
                .flatten()
            {
                squares.push(extra.square().sum());
            }
            counts.push(squares.len() - before);
        }
        let squares = readback("the gradient norms", Tensor::cat(squares, 0).into_data())?;
        let per_layer: Vec<&[f32]> = {
            let mut rest = squares.as_slice();
            counts
                .iter()
                .map(|&n| {
                    let (head, tail) = rest.split_at(n.min(rest.len()));
                    rest = tail;
                    head
                })
                .collect()
        };
        let grad_norms: Vec<f32> = per_layer.iter().map(|s| s.first().copied().unwrap_or(0.0).sqrt()).collect();
        let non_finite = !loss_value.is_finite() || squares.iter().any(|v| !v.is_finite());
        let reference_loss = self.reference.as_ref().map_or(loss_value, |(loss, _)| *loss);
        self.exploding_steps = if loss_value > EXPLOSION_FACTOR * reference_loss.max(f32::MIN_POSITIVE) {
            self.exploding_steps + 1
        } else {
            0
        };
        if non_finite || self.exploding_steps >= EXPLOSION_STEPS {
            for (layer, (mean, var)) in self.model.layers.iter().filter(|l| l.settings.batch_norm).zip(saved_statistics)
            {
                layer.norm.running_mean.update(mean);
                layer.norm.running_var.update(var);
            }
            self.elapsed_secs += started.elapsed().as_secs_f64();
            self.exploding_steps = 0;
            let message = self.divergence_message(step, loss_value, &per_layer, &grad_norms);
            return Ok(StepOutcome::Diverged { step, message });
        }
        if self.reference.is_none() {
            self.reference = Some((loss_value, grad_norms.clone()));
        }
        // Keep a healthy state now and then: cloning the module copies handles, the optimiser record its state.
        if self.exploding_steps == 0
            && self.step.is_multiple_of(HEALTHY_EVERY)
            && let Ok(optimizer) = self.optimizer.into_bytes()
        {
            self.healthy = Some(HealthyState { step: self.step, model: self.model.clone(), optimizer });
        }

        let weights_before: Vec<Tensor<1>> =
            if want_stats { self.model.layers.iter().filter_map(|l| l.flat_weight()).collect() } else { Vec::new() };
        let grads = GradientsParams::from_grads(grads, &self.model);
        // Cloning the module copies handles only; a panic inside the update leaves the old model in place.
        self.model = self.optimizer.step(self.config.lr, self.model.clone(), grads);
        self.step = step;
        self.last_indices = indices.to_vec();
        self.last_grads = weight_grads;
        self.last_grad_norms = grad_norms.clone();
        self.last_loss = loss_value;
        if self.recent_accuracy.len() == TRAIN_ACCURACY_WINDOW {
            self.recent_accuracy.pop_front();
        }
        self.recent_accuracy.push_back((correct, labels.len()));
        let spent = started.elapsed().as_secs_f64();
        self.elapsed_secs += spent;
        self.step_secs += spent;
        // The update is done: from here on nothing may fail the step, or its metric row would be lost. A
        // failed read-back (not seen on the CPU backends) keeps the last test accuracy and skips the snapshot.
        if self.auto_evaluate && self.config.test_every > 0 && step.is_multiple_of(self.config.test_every) {
            self.evaluate().ok();
        }
        let host = trace.and_then(|trace| stats::read_trace(&self.model, trace).ok());
        let stats = match &host {
            Some((layers, inputs)) => {
                stats::layer_stats(&self.model, layers, inputs, &weights_before, &grad_norms, &mut self.units)
                    .unwrap_or_default()
            }
            None => Vec::new(),
        };
        let snapshot =
            host.filter(|_| capture).and_then(|(layers, _)| self.snapshot_with(Some(layers)).ok()).map(Box::new);
        let row = MetricRow {
            step,
            epoch: self.sampler.epoch(),
            loss: loss_value,
            train_accuracy: self.train_accuracy(),
            test_accuracy: self.test_accuracy,
            lr: self.config.lr,
            grad_norms,
            elapsed_secs: self.elapsed_secs,
            step_secs: self.step_secs,
            stats,
        };
        Ok(StepOutcome::Updated { row, snapshot })
    }

    fn divergence_message(&self, step: u64, loss: f32, per_layer: &[&[f32]], grad_norms: &[f32]) -> String {
        let non_finite_layer = self
            .model
            .layers
            .iter()
            .zip(per_layer)
            .find(|(_, squares)| squares.iter().any(|v| !v.is_finite()))
            .map(|(layer, _)| layer.name.clone());
        // The layer whose gradient grew most against its first step, when everything is still finite.
        let exploding_layer = self.reference.as_ref().and_then(|(_, first)| {
            self.model
                .layers
                .iter()
                .zip(grad_norms.iter().zip(first))
                .map(|(layer, (now, then))| (layer.name.clone(), now / then.max(f32::MIN_POSITIVE)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .filter(|(_, growth)| *growth > 1.0)
        });
        let reference = self.reference.as_ref().map_or(f32::NAN, |(loss, _)| *loss);
        let what = match (non_finite_layer, exploding_layer) {
            (Some(layer), _) if loss.is_finite() => format!("the gradient of {layer} is not finite (loss {loss})"),
            (Some(layer), _) => format!("the loss is {loss} and the gradient of {layer} is not finite"),
            (None, _) if !loss.is_finite() => format!("the loss is {loss}"),
            (None, Some((layer, growth))) => format!(
                "the loss exploded to {loss:.4e}, over {EXPLOSION_FACTOR}× its starting {reference:.3} for {EXPLOSION_STEPS} steps; {layer}'s gradient grew {growth:.0}× (exploding activations)"
            ),
            (None, None) => format!(
                "the loss exploded to {loss:.4e}, over {EXPLOSION_FACTOR}× its starting {reference:.3} for {EXPLOSION_STEPS} steps"
            ),
        };
        format!(
            "training diverged at step {step}: {what}; the update was skipped — the learning rate {} is probably too high, try {}",
            self.config.lr,
            self.config.lr / 10.0
        )
    }

    /// The step of the healthy state a [`Trainer::restore_healthy`] would go back to.
    pub fn healthy_step(&self) -> Option<u64> {
        self.healthy.as_ref().map(|h| h.step)
    }

    /// Goes back to the last healthy weights and optimiser state (the step counter keeps counting, so the
    /// metric history stays in order). Returns the step whose state was restored.
    pub fn restore_healthy(&mut self) -> Option<u64> {
        let healthy = self.healthy.as_ref()?;
        let optimizer = build_optimizer(&self.config).from_bytes(healthy.optimizer.clone()).ok()?;
        // Live settings (activations, bias, batch-norm) stay as the user has them now.
        let settings = self.model.settings();
        self.model = healthy.model.clone();
        for (layer, settings) in self.model.layers.iter_mut().zip(settings) {
            layer.settings = settings;
        }
        self.optimizer = optimizer;
        self.exploding_steps = 0;
        self.reference = None;
        self.units.clear();
        Some(healthy.step)
    }

    /// Accuracy over the whole test split with the current weights (batch-norm in inference mode).
    pub fn evaluate(&mut self) -> Result<f32, TrainError> {
        let started = Instant::now();
        let model = self.model.valid();
        let test = &self.data.test;
        let mut correct = 0;
        let all: Vec<usize> = (0..test.len()).collect();
        for chunk in all.chunks(EVAL_BATCH) {
            let (images, _, labels) =
                make_batch(test, chunk, &self.normalization, None, self.plan.classes, &self.device)?;
            let logits = readback("the test logits", model.forward(images.inner()).into_data())?;
            correct += count_correct(&logits, &labels, self.plan.classes);
        }
        self.test_accuracy = if test.is_empty() { f32::NAN } else { correct as f32 / test.len() as f32 };
        self.elapsed_secs += started.elapsed().as_secs_f64();
        Ok(self.test_accuracy)
    }

    /// A snapshot of the net as it is now: current weights, the last step's gradients, and activations of the
    /// last step's batch recomputed with the current weights (batch-norm in inference mode). Used after a
    /// change while paused, so the window shows its effect without a training step.
    pub fn refresh_snapshot(&self) -> Result<Snapshot, TrainError> {
        self.snapshot_with(None)
    }

    /// Weights after the last update, that update's gradients, the activations measured in `host` (or
    /// recomputed for the last batch when `None`), and the probe pass.
    fn snapshot_with(&self, host: Option<Vec<HostLayer>>) -> Result<Snapshot, TrainError> {
        let host = match host {
            Some(host) => host,
            None => {
                let indices: Vec<usize> = if self.last_indices.is_empty() {
                    (0..self.config.batch_size.min(self.data.train.len())).collect()
                } else {
                    self.last_indices.clone()
                };
                let (images, _, _) =
                    make_batch(&self.data.train, &indices, &self.normalization, None, self.plan.classes, &self.device)?;
                let (_, trace) = self.model.valid().forward_traced(images.inner());
                stats::read_trace(&self.model, trace)?.0
            }
        };
        let no_grad = None;
        let weight_grads =
            self.model.layers.iter().enumerate().map(|(i, _)| self.last_grads.get(i).unwrap_or(&no_grad));
        let grad_norms =
            self.model.layers.iter().enumerate().map(|(i, _)| self.last_grad_norms.get(i).copied().unwrap_or(0.0));
        let mut layers = Vec::with_capacity(self.model.layers.len());
        for ((layer, grad), (host, grad_norm)) in
            self.model.layers.iter().zip(weight_grads).zip(host.iter().zip(grad_norms))
        {
            let shape = layer.weight_shape();
            let weights = weight_array(layer)?;
            let weight_grads = match grad {
                Some(g) => FloatArray::new(shape, readback("gradients", g.clone().into_data())?),
                None => None,
            };
            let activity = &host.activity;
            layers.push(LayerSnapshot {
                name: layer.name.clone(),
                settings: layer.settings,
                grad_range: weight_grads.as_ref().and_then(FloatArray::finite_range).unwrap_or((0.0, 0.0)),
                weight_norm: weights.l2_norm(),
                weights,
                weight_grads,
                pre_activation_histogram: Histogram::binned(
                    &host.pre,
                    HISTOGRAM_BINS,
                    activity.pre_range,
                    activity.pre_non_finite,
                ),
                activation_range: activity.post_range.unwrap_or((0.0, 0.0)),
                grad_norm,
            });
        }
        Ok(Snapshot {
            step: self.step,
            epoch: self.sampler.epoch(),
            lr: self.config.lr,
            loss: self.last_loss,
            train_accuracy: self.train_accuracy(),
            layers,
            probe: self.probe()?,
            cost_secs: 0.0,
            gap_secs: 0.0,
        })
    }

    /// Pushes the probe image through the net (inference mode) and keeps every map.
    pub fn probe(&self) -> Result<ProbeSnapshot, TrainError> {
        let index = self.config.probe_index;
        let test = &self.data.test;
        let (image, label, own_image) = match &self.own_probe {
            Some((pixels, name)) => {
                let values: Vec<f32> = pixels.iter().map(|&p| self.normalization.apply(p)).collect();
                let shape = test.shape();
                let data = TensorData::new(values, [1, shape.channels, shape.height, shape.width]);
                (Tensor::<4>::from_data(data, &self.device), None, Some(name.clone()))
            }
            None => {
                let (image, _, labels) =
                    make_batch(test, &[index], &self.normalization, None, self.plan.classes, &self.device)?;
                (image, labels.first().map(|&l| l as usize), None)
            }
        };
        let model = self.model.valid();
        let image = image.inner();
        let input = readback("the probe image", image.clone().into_data())?;
        let (logits, trace) = model.forward_traced(image);
        let probabilities = readback("the probabilities", model.probabilities(logits).into_data())?;
        let mut pre_activations = Vec::with_capacity(trace.pre.len());
        let mut post_activations = Vec::with_capacity(trace.post.len());
        for (pre, post) in trace.pre.into_iter().zip(trace.post) {
            // [1, c, h, w] → [c, h, w]; dense layers come as [1, units, 1, 1] → [units].
            let [_, c, h, w] = pre.dims();
            let shape = if h == 1
                && w == 1
                && self.model.layers.get(pre_activations.len()).is_some_and(|l| l.dense_weight.is_some())
            {
                vec![c]
            } else {
                vec![c, h, w]
            };
            pre_activations
                .push(FloatArray::new(shape.clone(), readback("probe maps", pre.into_data())?).unwrap_or_default());
            post_activations
                .push(FloatArray::new(shape, readback("probe maps", post.into_data())?).unwrap_or_default());
        }
        let shape = test.shape();
        Ok(ProbeSnapshot {
            index,
            label,
            own_image,
            input: FloatArray::new(vec![shape.channels, shape.height, shape.width], input).unwrap_or_default(),
            pre_activations,
            post_activations,
            probabilities,
        })
    }
}

/// A layer's weights read back to the host with their shape.
fn weight_array(layer: &crate::model::WeightedLayer) -> Result<FloatArray, TrainError> {
    let values = match (&layer.conv_weight, &layer.dense_weight) {
        (Some(w), _) => readback("weights", w.val().inner().into_data())?,
        (None, Some(w)) => readback("weights", w.val().inner().into_data())?,
        (None, None) => Vec::new(),
    };
    FloatArray::new(layer.weight_shape(), values)
        .ok_or_else(|| TrainError::Config(format!("{}'s weights do not match their shape", layer.name)))
}

/// Images `[b, c, h, w]`, one-hot targets `[b, classes]` and the labels of `indices` in `data`.
fn make_batch(
    data: &Dataset,
    indices: &[usize],
    normalization: &Normalization,
    shift: Option<(&Shift, &mut ChaCha8Rng)>,
    classes: usize,
    device: &Device,
) -> Result<(Tensor<4>, Tensor<2>, Vec<i64>), TrainError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    fill_batch(data, indices, normalization, shift, &mut images, &mut labels)?;
    let shape = data.shape();
    let batch = indices.len();
    let mut one_hot = vec![0.0_f32; batch * classes];
    for (row, &label) in labels.iter().enumerate() {
        if let Some(cell) = usize::try_from(label).ok().and_then(|l| one_hot.get_mut(row * classes + l)) {
            *cell = 1.0;
        }
    }
    let images =
        Tensor::<4>::from_data(TensorData::new(images, [batch, shape.channels, shape.height, shape.width]), device);
    let targets = Tensor::<2>::from_data(TensorData::new(one_hot, [batch, classes]), device);
    Ok((images, targets, labels))
}

/// How many rows of `logits` (`[batch, classes]`, row-major) have their largest value at the label; a row
/// with a non-finite value counts as wrong.
fn count_correct(logits: &[f32], labels: &[i64], classes: usize) -> usize {
    logits
        .chunks(classes.max(1))
        .zip(labels)
        .filter(|(row, _)| row.iter().all(|v| v.is_finite()))
        .filter(|(row, label)| {
            let predicted = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
                .0;
            predicted as i64 == **label
        })
        .count()
}
