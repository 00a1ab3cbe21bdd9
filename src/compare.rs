//! A/B comparisons over seeds, as plain data: each arm's per-seed curves, their means and spreads at the end,
//! and the paired difference B − A over the seeds both arms share (a pair differs only in its knob, so the
//! paired spread says whether an effect is larger than the seed-to-seed noise).

use serde::Serialize;

pub use crate::protocol::Arm;

/// What one arm did with one seed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeedRun {
    /// The seed (weights, batch order, augmentation).
    pub seed: u64,
    /// The training loss of every step, first to last.
    pub losses: Vec<f32>,
    /// The running training accuracy after every step.
    pub train_accuracies: Vec<f32>,
    /// The test accuracy after the last step.
    pub test_accuracy: f32,
    /// A regression's test R² after the last step (its accuracies are NaN).
    pub test_r2: Option<f32>,
    /// The mean training loss over the last steps (as `train`'s summary gives it).
    pub final_loss: f32,
    /// The step at which the run diverged and stopped, if it did.
    pub diverged_at: Option<u64>,
}

/// Mean and sample standard deviation of a few numbers (`None` for the deviation of fewer than two;
/// non-finite numbers are left out and counted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Mean over the finite values (null when there are none).
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1).
    pub std: Option<f64>,
    /// How many values were finite.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let finite: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let n = finite.len();
        if n == 0 {
            return Spread { mean: None, std: None, n };
        }
        let mean = finite.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        // Six decimals: the inputs are f32 figures, and their f64 tails (0.32250000536…) are noise.
        let round = |v: f64| (v * 1e6).round() / 1e6;
        Spread { mean: Some(round(mean)), std: std.map(round), n }
    }
}

/// One arm's figures at the end, over every seed.
#[derive(Debug, Clone, Serialize)]
pub struct ArmSummary {
    /// The flags that make this arm, as given (a preset's arm B includes its knob).
    pub flags: String,
    pub test_accuracy_mean: Option<f64>,
    pub test_accuracy_std: Option<f64>,
    pub loss_mean: Option<f64>,
    pub loss_std: Option<f64>,
    pub train_accuracy_mean: Option<f64>,
    pub train_accuracy_std: Option<f64>,
    /// A regression's test R² (its accuracies are null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_r2_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_r2_std: Option<f64>,
    /// Seeds whose run diverged (stopped early: its figures are from the step before).
    pub diverged: usize,
    /// Per seed: test accuracy and final loss.
    pub per_seed: Vec<SeedFigures>,
}

/// One seed's end figures in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct SeedFigures {
    pub seed: u64,
    pub test_accuracy: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_r2: Option<f32>,
    pub loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diverged_at: Option<u64>,
}

/// B − A seed by seed, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct PairedDifference {
    /// Always "b - a".
    pub of: &'static str,
    pub test_accuracy_mean: Option<f64>,
    pub test_accuracy_std: Option<f64>,
    pub loss_mean: Option<f64>,
    pub loss_std: Option<f64>,
    /// Pairs in which B's test accuracy is higher than A's, out of `pairs`.
    pub b_higher_test_accuracy: usize,
    /// A regression's test R², B − A.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_r2_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_r2_std: Option<f64>,
    /// Pairs in which B's test R² is higher than A's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b_higher_test_r2: Option<usize>,
    pub pairs: usize,
}

/// Every run of a comparison: `runs[arm][i]` is the arm's run with the i-th seed.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub a: Vec<SeedRun>,
    pub b: Vec<SeedRun>,
}

fn finite(value: f32) -> Option<f32> {
    value.is_finite().then_some(value)
}

impl Comparison {
    /// The runs of `arm`.
    pub fn arm(&self, arm: Arm) -> &[SeedRun] {
        match arm {
            Arm::A => &self.a,
            Arm::B => &self.b,
        }
    }

    /// `arm`'s figures at the end, described by `flags`.
    pub fn summary(&self, arm: Arm, flags: &str) -> ArmSummary {
        let runs = self.arm(arm);
        let spread = |value: fn(&SeedRun) -> f32| Spread::of(runs.iter().map(|r| f64::from(value(r))));
        let (test, loss, train) =
            (spread(|r| r.test_accuracy), spread(|r| r.final_loss), spread(|r| last_or_nan(&r.train_accuracies)));
        let r2 = spread(|r| r.test_r2.unwrap_or(f32::NAN));
        ArmSummary {
            flags: flags.to_owned(),
            test_accuracy_mean: test.mean,
            test_accuracy_std: test.std,
            loss_mean: loss.mean,
            loss_std: loss.std,
            train_accuracy_mean: train.mean,
            train_accuracy_std: train.std,
            test_r2_mean: r2.mean,
            test_r2_std: r2.std,
            diverged: runs.iter().filter(|r| r.diverged_at.is_some()).count(),
            per_seed: runs
                .iter()
                .map(|r| SeedFigures {
                    seed: r.seed,
                    test_accuracy: finite(r.test_accuracy),
                    test_r2: r.test_r2.and_then(finite),
                    loss: finite(r.final_loss),
                    diverged_at: r.diverged_at,
                })
                .collect(),
        }
    }

    /// B − A over the seeds both arms finished.
    pub fn paired_difference(&self) -> PairedDifference {
        let pairs: Vec<(&SeedRun, &SeedRun)> = self.a.iter().zip(&self.b).filter(|(a, b)| a.seed == b.seed).collect();
        let difference = |value: fn(&SeedRun) -> f32| {
            Spread::of(pairs.iter().map(|(a, b)| f64::from(value(b)) - f64::from(value(a))))
        };
        let (test, loss) = (difference(|r| r.test_accuracy), difference(|r| r.final_loss));
        let r2 = difference(|r| r.test_r2.unwrap_or(f32::NAN));
        let regression = pairs.iter().all(|(a, b)| a.test_r2.is_some() && b.test_r2.is_some()) && !pairs.is_empty();
        PairedDifference {
            of: "b - a",
            test_accuracy_mean: test.mean,
            test_accuracy_std: test.std,
            loss_mean: loss.mean,
            loss_std: loss.std,
            b_higher_test_accuracy: pairs.iter().filter(|(a, b)| b.test_accuracy > a.test_accuracy).count(),
            test_r2_mean: r2.mean,
            test_r2_std: r2.std,
            b_higher_test_r2: regression.then(|| pairs.iter().filter(|(a, b)| b.test_r2 > a.test_r2).count()),
            pairs: pairs.len(),
        }
    }

    /// `arm`'s curve of `value` over its seeds at every step: (mean, lowest, highest), each step over the
    /// seeds that reached it. `value` picks a per-step series from a run.
    pub fn band(&self, arm: Arm, value: impl Fn(&SeedRun) -> Vec<f32>) -> Vec<(f32, f32, f32)> {
        let series: Vec<Vec<f32>> = self.arm(arm).iter().map(value).collect();
        let steps = series.iter().map(Vec::len).max().unwrap_or(0);
        (0..steps)
            .filter_map(|step| {
                let at: Vec<f32> =
                    series.iter().filter_map(|s| s.get(step).copied()).filter(|v| v.is_finite()).collect();
                let mean = at.iter().sum::<f32>() / at.len().max(1) as f32;
                let low = at.iter().copied().fold(f32::INFINITY, f32::min);
                let high = at.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                (!at.is_empty()).then_some((mean, low, high))
            })
            .collect()
    }
}

fn last_or_nan(values: &[f32]) -> f32 {
    values.last().copied().unwrap_or(f32::NAN)
}

/// The trailing mean of the last `window` values at every position (the noise of single batches smoothed
/// away, so that a plot shows the trend).
pub fn trailing_mean(values: &[f32], window: usize) -> Vec<f32> {
    let window = window.max(1);
    let mut sum = 0.0f64;
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| {
            sum += f64::from(value);
            if i >= window {
                sum -= f64::from(values[i - window]);
            }
            (sum / (i + 1).min(window) as f64) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, test_accuracy: f32, final_loss: f32) -> SeedRun {
        SeedRun {
            seed,
            losses: vec![2.3, final_loss],
            train_accuracies: vec![0.1, test_accuracy],
            test_accuracy,
            test_r2: None,
            final_loss,
            diverged_at: None,
        }
    }

    #[test]
    fn spreads_are_sample_deviations_over_finite_values() {
        let spread = Spread::of([1.0, 2.0, 3.0, f64::NAN]);
        assert_eq!(spread.n, 3);
        assert_eq!(spread.mean, Some(2.0));
        assert_eq!(spread.std, Some(1.0));
        assert_eq!(Spread::of([4.0]).std, None, "one value has no deviation");
        assert_eq!(Spread::of([]).mean, None);
    }

    #[test]
    fn the_paired_difference_cancels_what_a_seed_shares() {
        // Seed 2 is easy for both arms: the unpaired spreads are wide, the paired difference is exactly +0.1.
        let comparison =
            Comparison { a: vec![run(1, 0.5, 1.0), run(2, 0.8, 0.4)], b: vec![run(1, 0.6, 0.9), run(2, 0.9, 0.3)] };
        let b = comparison.summary(Arm::B, "--activation relu");
        assert!(b.test_accuracy_std.unwrap() > 0.2);
        let paired = comparison.paired_difference();
        assert!((paired.test_accuracy_mean.unwrap() - 0.1).abs() < 1e-6);
        assert!(paired.test_accuracy_std.unwrap() < 1e-6);
        assert!((paired.loss_mean.unwrap() + 0.1).abs() < 1e-6);
        assert_eq!((paired.b_higher_test_accuracy, paired.pairs), (2, 2));
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains("\"flags\":\"--activation relu\""), "{json}");
    }

    #[test]
    fn a_band_spans_the_seeds_at_every_step() {
        let comparison = Comparison { a: vec![run(1, 0.5, 1.0), run(2, 0.8, 0.4)], b: Vec::new() };
        let band = comparison.band(Arm::A, |r| r.losses.clone());
        assert_eq!(band.len(), 2);
        assert_eq!(band[1], (0.7, 0.4, 1.0));
        assert!(comparison.band(Arm::B, |r| r.losses.clone()).is_empty());
    }

    #[test]
    fn trailing_means_smooth_from_the_first_value() {
        assert_eq!(trailing_mean(&[1.0, 3.0, 5.0, 7.0], 2), vec![1.0, 2.0, 4.0, 6.0]);
        assert_eq!(trailing_mean(&[], 5), Vec::<f32>::new());
    }
}
