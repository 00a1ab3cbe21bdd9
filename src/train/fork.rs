//! Forks: a second, independent trainer that is an exact copy of a running one — weights, optimiser state,
//! batch order and cursor, augmentation generator, step, counters — so that two arms, given the same live
//! settings, go on bit for bit alike, and any difference between them after a change comes from that change.

use burn::module::RunningState;

use crate::model::Cnn;
use crate::train::error::TrainError;
use crate::train::trainer::{Trainer, build_optimizer};

impl Trainer {
    /// An exact copy of this trainer that trains on independently from here (the data is shared, read-only).
    /// The optimiser state travels through its serialised record, as a checkpoint's does: burn's optimiser
    /// cannot be cloned, and the record is what an exact resume is proven with.
    pub fn fork(&self) -> Result<Trainer, TrainError> {
        let state = self
            .optimizer
            .into_bytes()
            .map_err(|e| TrainError::OptimizerState { action: "save", detail: format!("{e:?}") })?;
        let optimizer = build_optimizer(&self.config)
            .from_bytes(state)
            .map_err(|e| TrainError::OptimizerState { action: "restore", detail: format!("{e:?}") })?;
        Ok(Trainer {
            config: self.config.clone(),
            plan: self.plan.clone(),
            model: with_own_running_statistics(self.model.clone()),
            optimizer,
            device: self.device.clone(),
            data: self.data.clone(),
            normalization: self.normalization,
            sampler: self.sampler.clone(),
            shift_rng: self.shift_rng.clone(),
            step: self.step,
            recent_accuracy: self.recent_accuracy.clone(),
            test_accuracy: self.test_accuracy,
            test_step: self.test_step,
            elapsed_secs: self.elapsed_secs,
            step_secs: self.step_secs,
            last_indices: self.last_indices.clone(),
            last_grads: self.last_grads.clone(),
            last_grad_norms: self.last_grad_norms.clone(),
            last_loss: self.last_loss,
            reference: self.reference.clone(),
            exploding_steps: self.exploding_steps,
            healthy: self.healthy.clone().map(|mut healthy| {
                healthy.model = with_own_running_statistics(healthy.model);
                healthy
            }),
            stats_every: self.stats_every,
            units: self.units.clone(),
            own_probe: self.own_probe.clone(),
            // A fault test's injected panic belongs to the arm it was injected into.
            panic_at: None,
            confusion: self.confusion.clone(),
            regression: self.regression.clone(),
        })
    }
}

/// `model` with batch-norm running statistics of its own. Weights are immutable tensor handles (each arm's
/// update makes new ones), but a `RunningState` is shared state behind an `Arc`: a plain clone would have both
/// arms update one running mean and variance, mixing their batches into each other's evaluation.
fn with_own_running_statistics(mut model: Cnn) -> Cnn {
    for layer in &mut model.layers {
        layer.norm.running_mean = RunningState::new(layer.norm.running_mean.value_sync());
        layer.norm.running_var = RunningState::new(layer.norm.running_var.value_sync());
    }
    model
}
