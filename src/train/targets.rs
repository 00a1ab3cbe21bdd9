//! A regression run's state beside the trainer's: each example's target (scaled for the loss) and the running
//! training errors. The trainer's regression methods — the test split's evaluation, its scatter and pinned
//! share — are in `regression.rs`.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::arch::Activation;
use crate::data::DataSplit;
use crate::snapshot::RegressionEval;
use crate::task::{ErrorSums, RegressionMetrics, TargetScale, Task, pinned, unreachable};
use crate::train::error::TrainError;

/// Every example's regression target in target units, and how they are scaled for the loss.
#[derive(Debug)]
pub(crate) struct RegressionTargets {
    pub(crate) train: Vec<f32>,
    pub(crate) test: Vec<f32>,
    pub(crate) scale: TargetScale,
}

/// A regression run's state beside the trainer's: its targets (shared by forks) and its measured errors.
#[derive(Debug, Clone)]
pub(crate) struct Regression {
    pub(crate) targets: Arc<RegressionTargets>,
    /// Error sums of the recent training batches, in target units (as `recent_accuracy` for classes).
    pub(crate) recent: VecDeque<ErrorSums>,
    /// The last evaluation of the test split.
    pub(crate) eval: Option<RegressionEval>,
}

impl Regression {
    /// The targets `task` asks for on `data` (`None` for classification); standardised unless `standardize` is
    /// off. Fails when the task reads a targets file and the data has none.
    pub(crate) fn for_task(task: Task, data: &DataSplit, standardize: bool) -> Result<Option<Regression>, TrainError> {
        let Task::Regression(target) = task else { return Ok(None) };
        // Only a file's targets can be missing; slant and ink are computed from the pixels.
        let (train, test) = crate::data::targets::targets_of(data, target).ok_or(TrainError::NoTargets)?;
        let scale = if standardize { TargetScale::of(&train) } else { TargetScale::default() };
        let targets = Arc::new(RegressionTargets { train, test, scale });
        Ok(Some(Regression { targets, recent: VecDeque::new(), eval: None }))
    }

    /// Counts a training batch: `outputs` are the net's (scaled) outputs for the training examples `indices`,
    /// through the output layer's `activation`; the last `window` batches are kept.
    pub(crate) fn record_batch(&mut self, outputs: &[f32], indices: &[usize], activation: Activation, window: usize) {
        let mut sums = ErrorSums::default();
        let scale = self.targets.scale;
        for (&output, &index) in outputs.iter().zip(indices) {
            if let Some(&target) = self.targets.train.get(index) {
                sums.add(scale.from_model(output), target);
                let scaled = scale.to_model(target);
                sums.reach(pinned(activation, output, scaled), unreachable(activation, scaled));
            }
        }
        while self.recent.len() >= window.max(1) {
            self.recent.pop_front();
        }
        self.recent.push_back(sums);
    }

    /// MSE, MAE and R² over the recent training batches.
    pub(crate) fn train_metrics(&self) -> Option<RegressionMetrics> {
        self.recent.iter().fold(ErrorSums::default(), |all, &sums| all.merged(sums)).metrics()
    }
}
