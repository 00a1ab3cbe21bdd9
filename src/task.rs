//! What a run predicts: classes (the default), or a number per image (regression) — a digit's slant or ink
//! computed from its pixels, or targets read from a CSV. Also the plain arithmetic regression needs on both
//! sides: target standardisation, the error sums behind MSE / MAE / R², and when an output is "pinned" at the
//! edge of its activation's range. Plain data, no burn or egui.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::arch::Activation;

/// What the net learns to predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Task {
    /// One class per image, from the data set's labels.
    #[default]
    Classification,
    /// One number per image.
    Regression(Target),
}

/// Where a regression target comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The digit's slant: the horizontal shear of its ink from the image moments, −μ₁₁/μ₀₂ (x to the right, y
    /// down). Positive when the top leans right, negative when it leans left; 0 for an upright stroke.
    Slant,
    /// The mean ink: mean intensity over the image, in [0, 1] (bounded, always ≥ 0).
    Ink,
    /// Read from the CSV given with `--targets` (`index,target`).
    File,
}

impl Target {
    /// Every target, in the order the UI lists them.
    pub const ALL: [Target; 3] = [Target::Slant, Target::Ink, Target::File];

    /// The name after `regression:`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Slant => "slant",
            Target::Ink => "ink",
            Target::File => "file",
        }
    }
}

impl Task {
    /// Whether the net predicts a number.
    pub fn is_regression(self) -> bool {
        matches!(self, Task::Regression(_))
    }

    /// The name `--task` takes, e.g. `regression:slant`.
    pub fn name(self) -> String {
        match self {
            Task::Classification => "classification".to_owned(),
            Task::Regression(target) => format!("regression:{}", target.name()),
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Task {
    type Err = String;

    fn from_str(text: &str) -> Result<Task, String> {
        let lower = text.trim().to_ascii_lowercase();
        if lower == "classification" || lower == "classify" {
            return Ok(Task::Classification);
        }
        let target =
            lower.strip_prefix("regression:").and_then(|name| Target::ALL.into_iter().find(|t| t.name() == name));
        target.map(Task::Regression).ok_or_else(|| {
            format!(
                "unknown task `{text}`; expected classification, regression:slant, regression:ink or regression:file (targets from --targets FILE.csv)"
            )
        })
    }
}

impl From<Task> for String {
    fn from(task: Task) -> String {
        task.name()
    }
}

impl TryFrom<String> for Task {
    type Error = String;

    fn try_from(text: String) -> Result<Task, String> {
        text.parse()
    }
}

/// How targets are scaled for the loss: the net learns `(t − mean) / std`, and its outputs are turned back into
/// target units for every figure a user reads. Identity when standardisation is off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TargetScale {
    /// Subtracted first.
    pub mean: f32,
    /// Then divided by (never 0).
    pub std: f32,
}

impl Default for TargetScale {
    fn default() -> Self {
        TargetScale { mean: 0.0, std: 1.0 }
    }
}

impl TargetScale {
    /// The training targets' mean and standard deviation (a constant target keeps std 1, so nothing divides by 0).
    pub fn of(targets: &[f32]) -> TargetScale {
        let n = targets.len().max(1) as f64;
        let mean = targets.iter().map(|&t| f64::from(t)).sum::<f64>() / n;
        let var = targets.iter().map(|&t| (f64::from(t) - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt();
        TargetScale { mean: mean as f32, std: if std > 1e-12 { std as f32 } else { 1.0 } }
    }

    /// A target in the units the net learns.
    pub fn to_model(self, target: f32) -> f32 {
        (target - self.mean) / self.std
    }

    /// A net output in target units.
    pub fn from_model(self, output: f32) -> f32 {
        output * self.std + self.mean
    }
}

/// Sums over (prediction, target) pairs from which MSE, MAE and R² follow; adding is exact to merge.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorSums {
    count: u64,
    squared: f64,
    absolute: f64,
    target: f64,
    target_squared: f64,
    pinned: u64,
    unreachable: u64,
}

impl ErrorSums {
    /// Adds one pair (a non-finite prediction counts as an infinite error).
    pub fn add(&mut self, prediction: f32, target: f32) {
        let error = f64::from(prediction) - f64::from(target);
        let error = if error.is_finite() { error } else { f64::INFINITY };
        self.count += 1;
        self.squared += error * error;
        self.absolute += error.abs();
        self.target += f64::from(target);
        self.target_squared += f64::from(target) * f64::from(target);
    }

    /// Counts whether the last pair's output was pinned and whether its target is out of the activation's reach.
    pub fn reach(&mut self, pinned: bool, unreachable: bool) {
        self.pinned += u64::from(pinned);
        self.unreachable += u64::from(unreachable);
    }

    /// Both sets of pairs together.
    pub fn merged(self, other: ErrorSums) -> ErrorSums {
        ErrorSums {
            count: self.count + other.count,
            squared: self.squared + other.squared,
            absolute: self.absolute + other.absolute,
            target: self.target + other.target,
            target_squared: self.target_squared + other.target_squared,
            pinned: self.pinned + other.pinned,
            unreachable: self.unreachable + other.unreachable,
        }
    }

    /// MSE, MAE and R² (= 1 − SSE / SST, NaN when the targets do not vary), or `None` without pairs.
    pub fn metrics(self) -> Option<RegressionMetrics> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let total = self.target_squared - self.target * self.target / n;
        let r2 = if total > 1e-12 * n { 1.0 - self.squared / total } else { f64::NAN };
        Some(RegressionMetrics {
            mse: (self.squared / n) as f32,
            mae: (self.absolute / n) as f32,
            r2: r2 as f32,
            pinned: (self.pinned as f64 / n) as f32,
            unreachable: (self.unreachable as f64 / n) as f32,
        })
    }
}

/// How close a regression's predictions are to its targets, in target units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Mean squared error.
    pub mse: f32,
    /// Mean absolute error.
    pub mae: f32,
    /// Coefficient of determination: 1 is perfect, 0 is no better than always predicting the mean, below 0
    /// is worse than that.
    pub r2: f32,
    /// The share of outputs pinned at an edge of the output activation's range, their target beyond it.
    #[serde(default)]
    pub pinned: f32,
    /// The share of targets the output activation cannot produce at all.
    #[serde(default)]
    pub unreachable: f32,
}

/// Outputs this close to an edge of the activation's range (relative to the range, or absolute when one side is
/// open) count as at the edge: sigmoid reaches 0 and 1 only in the limit.
pub const PINNED_TOLERANCE: f64 = 1e-3;

/// Whether an output (in the net's units) sits at an edge of `activation`'s range while its target lies beyond
/// that edge: the output cannot reach the target, and the activation's slope there (0 for ReLU, ≈ 0 for a
/// saturated sigmoid) gives little or no gradient to move it.
pub fn pinned(activation: Activation, output: f32, target: f32) -> bool {
    let (low, high) = activation.range();
    let tolerance = match (low, high) {
        (Some(low), Some(high)) => PINNED_TOLERANCE * (high - low),
        _ => PINNED_TOLERANCE,
    };
    let (output, target) = (f64::from(output), f64::from(target));
    low.is_some_and(|low| output <= low + tolerance && target < low)
        || high.is_some_and(|high| output >= high - tolerance && target > high)
}

/// Whether `activation` cannot produce `target` (in the net's units): below its lowest or above its highest
/// value. What the `output-range` hint counts.
pub fn unreachable(activation: Activation, target: f32) -> bool {
    let (low, high) = activation.range();
    let target = f64::from(target);
    low.is_some_and(|low| target < low) || high.is_some_and(|high| target > high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_parse_and_print_the_same_names() {
        for task in [Task::Classification, Task::Regression(Target::Slant), Task::Regression(Target::Ink)] {
            assert_eq!(task.name().parse::<Task>(), Ok(task));
        }
        let error = "regression:height".parse::<Task>().unwrap_err();
        assert!(error.contains("regression:slant"), "{error}");
        let json = serde_json::to_string(&Task::Regression(Target::Slant)).unwrap();
        assert_eq!(json, "\"regression:slant\"");
    }

    #[test]
    fn r2_is_one_for_a_perfect_fit_zero_for_the_mean_and_negative_when_worse() {
        let targets = [1.0_f32, 2.0, 3.0, 4.0];
        let sums = |predict: &dyn Fn(f32) -> f32| {
            let mut sums = ErrorSums::default();
            targets.iter().for_each(|&t| sums.add(predict(t), t));
            sums.metrics().unwrap()
        };
        assert!((sums(&|t| t).r2 - 1.0).abs() < 1e-6);
        assert!(sums(&|_| 2.5).r2.abs() < 1e-6);
        let worse = sums(&|t| 5.0 - t);
        assert!(worse.r2 < 0.0 && (worse.mae - 2.0).abs() < 1e-6 && (worse.mse - 5.0).abs() < 1e-6, "{worse:?}");
        let (mut a, mut b) = (ErrorSums::default(), ErrorSums::default());
        a.add(1.0, 1.5);
        b.add(3.0, 2.0);
        let mut both = ErrorSums::default();
        both.add(1.0, 1.5);
        both.add(3.0, 2.0);
        assert_eq!(a.merged(b), both);
    }

    #[test]
    fn a_relu_output_is_pinned_at_zero_only_when_its_target_is_negative() {
        assert!(pinned(Activation::Relu, 0.0, -0.5));
        assert!(!pinned(Activation::Relu, 0.0, 0.5));
        assert!(!pinned(Activation::Relu, 0.3, -0.5));
        assert!(pinned(Activation::Sigmoid, 0.9999, 1.5));
        assert!(!pinned(Activation::Identity, -100.0, -200.0));
        assert!(unreachable(Activation::Relu, -0.1) && !unreachable(Activation::Relu, 0.0));
        assert!(unreachable(Activation::Tanh, 1.5) && !unreachable(Activation::Identity, -1e30));
        let scale = TargetScale::of(&[1.0, 3.0]);
        assert_eq!((scale.to_model(3.0), scale.from_model(-1.0)), (1.0, 1.0));
    }
}
