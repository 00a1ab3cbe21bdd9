//! One training step: batch, forward, loss, backward, the finite and explosion checks, the update, and the
//! statistics and snapshot taken from the step's own activations. Nothing after the update may fail the step:
//! what goes wrong there comes back as a warning beside the metric row.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use crate::data::batch::Shift;
use crate::kernels::StepSizes;
use crate::model::{Trace, WeightedLayer};
use crate::snapshot::{MetricRow, Snapshot};
use crate::train::error::{TrainError, readback};
use crate::train::stats;
use crate::train::tensors::{BatchTargets, count_correct, make_batch};
use crate::train::trainer::{HEALTHY_EVERY, HealthyState, TRAIN_ACCURACY_WINDOW, Trainer};

/// A finite loss counts as exploding when it is this many times the run's starting loss…
pub const EXPLOSION_FACTOR: f32 = 10.0;
/// …for this many consecutive steps: then training is treated as diverged, like a NaN. (A ReLU net at a huge
/// rate sits at losses of hundreds without ever producing NaN; one noisy batch must not stop a healthy run.)
pub const EXPLOSION_STEPS: u32 = 3;
/// A normal init wider than this is blamed for a divergence before the learning rate is…
const INIT_STD_SUSPECT: f64 = 1.0;
/// …when the divergence comes within this many steps of the start.
const INIT_BLAME_STEPS: u64 = 20;

/// A setting's value for a message: five significant digits at most, so 0.7 / 10 reads 0.07 and 1e308 stays
/// 1e308 (Rust's `Display` would print 309 digits).
fn short(value: f64) -> String {
    let rounded: f64 = format!("{value:.4e}").parse().unwrap_or(value);
    format!("{rounded:?}")
}

/// The result of one step.
#[derive(Debug)]
pub enum StepOutcome {
    /// The weights were updated.
    Updated {
        /// The step's metric row.
        row: MetricRow,
        /// The snapshot, when one was asked for (and could be taken).
        snapshot: Option<Box<Snapshot>>,
        /// What could not be measured after the update (statistics, the snapshot); the step itself counts.
        warnings: Vec<TrainError>,
    },
    /// The loss or a gradient was not finite: nothing was updated and the step counter did not move.
    Diverged {
        /// The step that was attempted.
        step: u64,
        /// What was not finite, where, and what to try.
        message: String,
    },
}

/// The weight gradients of a step and their squared norms, read back in one go.
struct Gradients {
    /// Every layer's weight gradient, flattened (`None` for a layer that took no part).
    weights: Vec<Option<Tensor<1>>>,
    /// Squared norms per layer: its weight first, then bias and batch-norm parameters.
    squares: Vec<Vec<f32>>,
    /// Each layer's weight-gradient L2 norm.
    norms: Vec<f32>,
}

impl Gradients {
    fn measure(layers: &[WeightedLayer], grads: &burn::tensor::Gradients, device: &Device) -> Result<Self, TrainError> {
        let mut pieces = Vec::new();
        let mut counts = Vec::with_capacity(layers.len());
        let mut weights = Vec::with_capacity(layers.len());
        for layer in layers {
            let grad: Option<Tensor<1>> = match (&layer.conv_weight, &layer.dense_weight) {
                (Some(w), _) => w.grad(grads).map(|g| g.flatten::<1>(0, 3)),
                (None, Some(w)) => w.grad(grads).map(|g| g.flatten::<1>(0, 1)),
                (None, None) => None,
            };
            let before = pieces.len();
            // A weight always takes part in the forward pass; a zero keeps the layout if one ever does not.
            pieces.push((grad.clone().unwrap_or_else(|| Tensor::zeros([1], &device.clone().inner())), None));
            weights.push(grad);
            for extra in [layer.bias.grad(grads), layer.norm.gamma.grad(grads), layer.norm.beta.grad(grads)]
                .into_iter()
                .flatten()
            {
                pieces.push((extra, None));
            }
            counts.push(pieces.len() - before);
        }
        let flat = super::stats::square_sums(pieces, "the gradient norms")?;
        let mut rest = flat.as_slice();
        let squares: Vec<Vec<f32>> = counts
            .iter()
            .map(|&n| {
                let (head, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                head.to_vec()
            })
            .collect();
        let norms = squares.iter().map(|s| s.first().copied().unwrap_or(0.0).sqrt()).collect();
        Ok(Gradients { weights, squares, norms })
    }

    fn all_finite(&self) -> bool {
        self.squares.iter().flatten().all(|v| v.is_finite())
    }
}

impl Trainer {
    /// Runs one training step on the next batch; with `capture`, also returns a snapshot.
    pub fn step(&mut self, capture: bool) -> Result<StepOutcome, TrainError> {
        let indices = self.sampler.next_indices(self.config.batch_size);
        convscope_kernels::with_threads_awake(|| self.step_on(&indices, capture))
    }

    /// Runs one training step on the given training-set indices.
    pub fn step_on(&mut self, indices: &[usize], capture: bool) -> Result<StepOutcome, TrainError> {
        let started = Instant::now();
        let shift = Shift { max_pixels: self.config.augment_shift };
        let augment = (shift.max_pixels > 0).then_some((&shift, &mut self.shift_rng));
        let batch_targets = match &self.regression {
            Some(r) => BatchTargets::Values(&r.targets.train, r.targets.scale),
            None => BatchTargets::OneHot(self.plan.classes),
        };
        let (images, targets, labels) =
            make_batch(&self.data.train, indices, &self.normalization, augment, batch_targets, &self.device)?;
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
            // A snapshot's histograms need the pre-activations; statistics alone are measured in the pass.
            let (logits, trace) =
                if capture { self.model.forward_traced(images) } else { self.model.forward_measured(images) };
            (logits, Some(trace))
        } else {
            (self.model.forward(images), None)
        };
        let loss = self.model.loss(logits.clone(), targets);
        let loss_value = readback("the loss", loss.clone().into_data())?.first().copied().unwrap_or(f32::NAN);
        let outputs = readback("the logits", logits.into_data())?;
        let grads = loss.backward();
        let gradients = Gradients::measure(&self.model.layers, &grads, &self.device)?;
        if self.diverges(loss_value, &gradients) {
            for (layer, (mean, var)) in self.model.layers.iter().filter(|l| l.settings.batch_norm).zip(saved_statistics)
            {
                layer.norm.running_mean.update(mean);
                layer.norm.running_var.update(var);
            }
            self.elapsed_secs += started.elapsed().as_secs_f64();
            self.exploding_steps = 0;
            let message = self.divergence_message(step, loss_value, &gradients);
            return Ok(StepOutcome::Diverged { step, message });
        }
        self.keep_healthy_state(loss_value, &gradients.norms);
        let weights_before: Vec<Tensor<1>> =
            if want_stats { self.model.layers.iter().filter_map(|l| l.flat_weight()).collect() } else { Vec::new() };
        let grads = GradientsParams::from_grads(grads, &self.model);
        if self.panic_at.take_if(|at| *at == step).is_some() {
            panic!("a fault injected at step {step} (a test of the recovery path)");
        }
        // Cloning the module copies handles only; a panic inside the update leaves the old model in place.
        // Forget the sizes of updates made since the last step (none in training; a test's, say), then keep this one's.
        crate::kernels::take_step_sizes();
        self.model = self.optimizer.step(self.config.lr, self.model.clone(), grads);
        let step_sizes = crate::kernels::take_step_sizes();
        self.step = step;
        self.last_indices = indices.to_vec();
        self.last_grads = gradients.weights;
        self.last_grad_norms.clone_from(&gradients.norms);
        self.last_loss = loss_value;
        match self.regression.as_mut() {
            Some(regression) => {
                let output = self.model.layers.last().map(|l| l.settings.activation);
                let activation = output.unwrap_or(crate::arch::Activation::Identity);
                regression.record_batch(&outputs, indices, activation, TRAIN_ACCURACY_WINDOW);
            }
            None => {
                if self.recent_accuracy.len() == TRAIN_ACCURACY_WINDOW {
                    self.recent_accuracy.pop_front();
                }
                self.recent_accuracy.push_back((count_correct(&outputs, &labels, self.plan.classes), labels.len()));
            }
        }
        let spent = started.elapsed().as_secs_f64();
        self.elapsed_secs += spent;
        self.step_secs += spent;
        Ok(self.observe(trace, capture, (&weights_before, &step_sizes), gradients.norms))
    }

    /// Whether this step's loss or gradients mean the run has diverged (counting exploding steps).
    fn diverges(&mut self, loss: f32, gradients: &Gradients) -> bool {
        let reference_loss = self.reference.as_ref().map_or(loss, |(loss, _)| *loss);
        self.exploding_steps =
            if loss > EXPLOSION_FACTOR * reference_loss.max(f32::MIN_POSITIVE) { self.exploding_steps + 1 } else { 0 };
        !loss.is_finite() || !gradients.all_finite() || self.exploding_steps >= EXPLOSION_STEPS
    }

    /// Remembers the first healthy loss as the explosion rule's reference, and keeps a healthy state now and
    /// then (cloning the module copies handles, the optimiser record its state).
    fn keep_healthy_state(&mut self, loss: f32, grad_norms: &[f32]) {
        if self.reference.is_none() {
            self.reference = Some((loss, grad_norms.to_vec()));
        }
        if self.exploding_steps == 0
            && self.step.is_multiple_of(HEALTHY_EVERY)
            && let Ok(optimizer) = self.optimizer.into_bytes()
        {
            self.healthy = Some(HealthyState {
                step: self.step,
                model: self.model.clone(),
                optimizer,
                loss,
                recent_accuracy: self.recent_accuracy.clone(),
            });
        }
    }

    /// The metric row, the layer statistics and the snapshot of a step whose update is done.
    fn observe(
        &mut self,
        trace: Option<Trace>,
        capture: bool,
        (weights_before, step_sizes): (&[Tensor<1>], &StepSizes),
        grad_norms: Vec<f32>,
    ) -> StepOutcome {
        let mut warnings = Vec::new();
        let host =
            trace.and_then(|trace| stats::read_trace(&self.model, trace, capture).map_err(|e| warnings.push(e)).ok());
        let stats = match &host {
            Some((layers, inputs)) => stats::layer_stats(
                &self.model,
                layers,
                inputs,
                weights_before,
                step_sizes,
                &grad_norms,
                &mut self.units,
            )
            .unwrap_or_else(|e| {
                warnings.push(e);
                Vec::new()
            }),
            None => Vec::new(),
        };
        let snapshot = host
            .filter(|_| capture)
            .and_then(|(layers, _)| self.snapshot_with(Some(layers)).map_err(|e| warnings.push(e)).ok())
            .map(Box::new);
        let row = MetricRow {
            step: self.step,
            epoch: self.sampler.epoch(),
            loss: self.last_loss,
            train_accuracy: self.train_accuracy(),
            test_accuracy: self.test_accuracy,
            test_step: self.test_step,
            lr: self.config.lr,
            grad_norms,
            elapsed_secs: self.elapsed_secs,
            step_secs: self.step_secs,
            stats,
            train_regression: self.train_regression(),
            test_regression: self.test_regression(),
        };
        StepOutcome::Updated { row, snapshot, warnings }
    }

    fn divergence_message(&self, step: u64, loss: f32, gradients: &Gradients) -> String {
        let non_finite_layer = self
            .model
            .layers
            .iter()
            .zip(&gradients.squares)
            .find(|(_, squares)| squares.iter().any(|v| !v.is_finite()))
            .map(|(layer, _)| layer.name.clone());
        // The layer whose gradient grew most against its first step, when everything is still finite.
        let exploding_layer = self.reference.as_ref().and_then(|(_, first)| {
            self.model
                .layers
                .iter()
                .zip(gradients.norms.iter().zip(first))
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
        format!("training diverged at step {step}: {what}; the update was skipped — {}", self.divergence_cause())
    }

    /// The setting most likely to blame for a divergence, and what to try: a weight decay so strong that one
    /// step more than cancels the weights, initial weights far too large, or else the learning rate.
    fn divergence_cause(&self) -> String {
        let (lr, decay) = (self.config.lr, self.config.weight_decay);
        // Plain and momentum SGD subtract lr·decay·w each step: at 1 or more that flips the weights' sign.
        let sgd = self.config.optimizer != crate::config::OptimizerKind::Adam;
        if sgd && lr * decay >= 1.0 {
            return format!(
                "the weight decay {} is far too strong (with the learning rate {}, each step more than cancels the weights): try 5e-4",
                short(decay),
                short(lr)
            );
        }
        // A too-wide init shows in the first steps, and only where no batch-norm rescales it.
        let widest_init =
            self.model.settings().into_iter().filter(|settings| !settings.batch_norm).filter_map(|settings| {
                match settings.init {
                    crate::arch::Init::Normal { std } => Some(std),
                    _ => None,
                }
            });
        let early = self.step < INIT_BLAME_STEPS;
        if let Some(std) = widest_init.max_by(f64::total_cmp).filter(|&std| early && std > INIT_STD_SUSPECT) {
            return format!(
                "the initial weights (init normal:{}) are far too large: use --init he or xavier, or a standard deviation near 0.01",
                short(std)
            );
        }
        format!("the learning rate {} is probably too high, try {}", short(lr), short(lr / 10.0))
    }
}
