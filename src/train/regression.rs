//! Regression heads on the trainer: the test split's evaluation — MSE, MAE, R², the scatter of predictions
//! against targets, and how many outputs sit pinned at the edge of the output activation's range — and the
//! figures a row and a snapshot carry.

use crate::arch::Activation;
use crate::protocol::WorkerEvent;
use crate::snapshot::{MAX_SCATTER_POINTS, RegressionEval};
use crate::task::{ErrorSums, RegressionMetrics, pinned, unreachable};
use crate::train::targets::Regression;
use crate::train::trainer::Trainer;

impl Trainer {
    /// The regression head's test metrics at the last evaluation (`None` for classification or before one).
    pub fn test_regression(&self) -> Option<RegressionMetrics> {
        self.regression.as_ref().and_then(|r| r.eval.as_ref()).map(|eval| eval.metrics)
    }

    /// The regression head's running training metrics.
    pub fn train_regression(&self) -> Option<RegressionMetrics> {
        self.regression.as_ref().and_then(Regression::train_metrics)
    }

    /// The last evaluation's scatter, residuals and pinned share (regression only).
    pub fn regression_eval(&self) -> Option<&RegressionEval> {
        self.regression.as_ref().and_then(|r| r.eval.as_ref())
    }

    /// What the last evaluation found besides its figures, as the events that carry it: the confusion matrix,
    /// or a regression's scatter.
    pub(crate) fn evaluation_events(&self) -> Vec<WorkerEvent> {
        let confusion = self.confusion().cloned().map(|c| WorkerEvent::Confusion(Box::new(c)));
        let regression = self.regression_eval().cloned().map(|r| WorkerEvent::Regression(Box::new(r)));
        confusion.into_iter().chain(regression).collect()
    }

    /// Keeps the test split's evaluation from every test example's (scaled) output, in order.
    pub(crate) fn keep_regression_eval(&mut self, outputs: &[f32]) {
        let activation = self.model.layers.last().map_or(Activation::Identity, |l| l.settings.activation);
        let step = self.step;
        let Some(regression) = self.regression.as_mut() else { return };
        let (targets, scale) = (&regression.targets.test, regression.targets.scale);
        let mut sums = ErrorSums::default();
        let stride = targets.len().div_ceil(MAX_SCATTER_POINTS).max(1);
        let (mut shown_targets, mut predictions, mut pinned_points) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (&output, &target)) in outputs.iter().zip(targets).enumerate() {
            let prediction = scale.from_model(output);
            sums.add(prediction, target);
            let is_pinned = pinned(activation, output, scale.to_model(target));
            sums.reach(is_pinned, unreachable(activation, scale.to_model(target)));
            if i % stride == 0 {
                shown_targets.push(target);
                predictions.push(prediction);
                pinned_points.push(is_pinned);
            }
        }
        let (low, high) = activation.range();
        let edge = |value: Option<f64>| value.map(|v| scale.from_model(v as f32));
        let nan = f32::NAN;
        let metrics =
            sums.metrics().unwrap_or(RegressionMetrics { mse: nan, mae: nan, r2: nan, pinned: nan, unreachable: nan });
        regression.eval = Some(RegressionEval {
            step,
            metrics,
            targets: shown_targets,
            predictions,
            pinned: pinned_points,
            activation,
            edges: (edge(low), edge(high)),
        });
    }
}
