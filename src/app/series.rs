//! Plot series kept decimated as metric rows arrive: each new row costs O(1), drawing costs O(buckets) however
//! long the run, so a ten-minute run paints as fast as a ten-second one. Spikes survive: every bucket keeps its
//! lowest and highest point.

use crate::protocol::SeedRuns;
use crate::snapshot::MetricRow;

/// Buckets drawn per series at most (two points each): about two points per pixel of plot width.
pub const PLOT_BUCKETS: usize = 300;

/// One series reduced to the lowest and highest point of equal runs of consecutive points. When the buckets
/// reach twice [`PLOT_BUCKETS`], neighbours merge and each bucket covers twice as many points.
#[derive(Debug, Clone, Default)]
pub struct Decimator {
    /// Points per closed bucket (a power of two).
    per_bucket: usize,
    /// Closed buckets: (lowest, highest) point, in x order; `None` for one without a finite value (kept, so
    /// series fed the same rows stay bucket for bucket aligned).
    buckets: Vec<Option<([f64; 2], [f64; 2])>>,
    /// Sum and count of the finite values of each closed bucket (for the heat map's means).
    sums: Vec<(f64, u32)>,
    /// The bucket being filled, its sum and count, and how many points (finite or not) it has seen.
    open: Option<([f64; 2], [f64; 2])>,
    open_sum: (f64, u32),
    open_count: usize,
}

impl Decimator {
    /// Adds the next point (x increasing). A point with a non-finite y still counts towards its bucket but is
    /// not drawn.
    pub fn push(&mut self, point: [f64; 2]) {
        self.per_bucket = self.per_bucket.max(1);
        if point[1].is_finite() {
            self.open_sum = (self.open_sum.0 + point[1], self.open_sum.1 + 1);
            self.open = Some(match self.open {
                None => (point, point),
                Some((low, high)) => {
                    (if point[1] < low[1] { point } else { low }, if point[1] > high[1] { point } else { high })
                }
            });
        }
        self.open_count += 1;
        if self.open_count < self.per_bucket {
            return;
        }
        self.buckets.push(self.open.take());
        self.sums.push(self.open_sum);
        self.open_sum = (0.0, 0);
        self.open_count = 0;
        if self.buckets.len() >= 2 * PLOT_BUCKETS {
            self.buckets = self.buckets.chunks(2).map(|pair| pair.iter().flatten().copied().reduce(merge)).collect();
            self.sums =
                self.sums.chunks(2).map(|pair| pair.iter().fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1))).collect();
            self.per_bucket *= 2;
        }
    }

    /// The mean of each bucket's finite values, oldest first (NaN for a bucket without any).
    pub fn means(&self) -> Vec<f64> {
        self.sums
            .iter()
            .chain(self.open.is_some().then_some(&self.open_sum))
            .map(|&(sum, count)| if count > 0 { sum / f64::from(count) } else { f64::NAN })
            .collect()
    }

    /// The points to draw, in x order.
    pub fn points(&self) -> Vec<[f64; 2]> {
        let mut points = Vec::with_capacity(2 * (self.buckets.len() + 1));
        for &(low, high) in self.buckets.iter().flatten().chain(self.open.iter()) {
            match low[0].total_cmp(&high[0]) {
                std::cmp::Ordering::Equal => points.push(low),
                std::cmp::Ordering::Less => points.extend([low, high]),
                std::cmp::Ordering::Greater => points.extend([high, low]),
            }
        }
        points
    }
}

/// The lowest and highest point of two buckets.
fn merge(a: ([f64; 2], [f64; 2]), b: ([f64; 2], [f64; 2])) -> ([f64; 2], [f64; 2]) {
    let ((low_a, high_a), (low_b, high_b)) = (a, b);
    (if low_b[1] < low_a[1] { low_b } else { low_a }, if high_b[1] > high_a[1] { high_b } else { high_a })
}

/// The run's series that every frame draws, fed as rows arrive.
#[derive(Debug, Clone, Default)]
pub struct RunSeries {
    /// Batch loss per step.
    pub loss: Decimator,
    /// Running training accuracy (a regression's: R²).
    pub train_accuracy: Decimator,
    /// Test accuracy (carried forward between evaluations).
    pub test_accuracy: Decimator,
    /// log₁₀ of the learning rate.
    pub log_lr: Decimator,
    /// log₁₀ of each layer's gradient norm.
    pub log_grad_norms: Vec<Decimator>,
}

impl RunSeries {
    /// Adds one row.
    pub fn push(&mut self, row: &MetricRow) {
        let x = row.step as f64;
        self.loss.push([x, f64::from(row.loss)]);
        // A regression's rows carry R² where a classifier's carry accuracy: the same plot, the same "higher is better".
        let train = row.train_regression.map_or(row.train_accuracy, |m| m.r2);
        let test = row.test_regression.map_or(row.test_accuracy, |m| m.r2);
        self.train_accuracy.push([x, f64::from(train)]);
        self.test_accuracy.push([x, f64::from(test)]);
        self.log_lr.push([x, row.lr.max(1e-30).log10()]);
        if self.log_grad_norms.len() < row.grad_norms.len() {
            self.log_grad_norms.resize_with(row.grad_norms.len(), Decimator::default);
        }
        for (series, &norm) in self.log_grad_norms.iter_mut().zip(&row.grad_norms) {
            // A zero gradient (a dead layer) has no logarithm: a gap, rather than a line at 1e-30.
            let log = if norm > 0.0 { f64::from(norm).log10() } else { f64::NAN };
            series.push([x, log]);
        }
    }
}

/// The exponential moving average of the loss (debiased like TensorBoard's smoothing), kept decimated and
/// extended as rows arrive; rebuilt from the rows still kept when the factor or the run changes.
#[derive(Debug, Clone, Default)]
pub struct SmoothedLoss {
    factor: f64,
    /// The run it follows, and the newest step consumed.
    run: u64,
    last_step: Option<u64>,
    average: f64,
    weight: f64,
    series: Decimator,
}

impl SmoothedLoss {
    /// Brings the series up to date with `rows` (oldest first, steps increasing) of run `run` and returns the
    /// points to draw.
    pub fn update(&mut self, rows: &[MetricRow], factor: f64, run: u64) -> Vec<[f64; 2]> {
        if factor != self.factor || run != self.run {
            *self = SmoothedLoss { factor, run, ..SmoothedLoss::default() };
        }
        let start = self.last_step.map_or(0, |last| rows.partition_point(|r| r.step <= last));
        for row in rows.get(start..).unwrap_or_default() {
            let loss = f64::from(row.loss);
            if loss.is_finite() {
                self.average = factor * self.average + (1.0 - factor) * loss;
                self.weight = factor * self.weight + (1.0 - factor);
            }
            let smoothed = if self.weight > 0.0 { self.average / self.weight } else { loss };
            self.series.push([row.step as f64, smoothed]);
            self.last_step = Some(row.step);
        }
        self.series.points()
    }
}

/// The band a run's settings make over seeds: at steps `steps`, the lowest, highest and mean smoothed loss of
/// the seeds that reached the step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeedBand {
    pub steps: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
    pub mean: Vec<f64>,
}

impl SeedBand {
    /// The band of `runs`' losses, each smoothed as the live loss is (exponential moving average `factor`, debiased),
    /// at most about [`PLOT_BUCKETS`] × 2 steps apart evenly.
    pub fn of(runs: &SeedRuns, factor: f64) -> SeedBand {
        let smoothed: Vec<Vec<f64>> = runs
            .runs
            .iter()
            .map(|run| {
                let (mut average, mut weight) = (0.0, 0.0);
                run.losses
                    .iter()
                    .map(|&loss| {
                        let loss = f64::from(loss);
                        if loss.is_finite() {
                            average = factor * average + (1.0 - factor) * loss;
                            weight = factor * weight + (1.0 - factor);
                        }
                        if weight > 0.0 { average / weight } else { f64::NAN }
                    })
                    .collect()
            })
            .collect();
        let longest = smoothed.iter().map(Vec::len).max().unwrap_or(0);
        let stride = longest.div_ceil(2 * PLOT_BUCKETS).max(1);
        let mut band = SeedBand::default();
        for index in (0..longest).step_by(stride) {
            let at: Vec<f64> =
                smoothed.iter().filter_map(|s| s.get(index).copied()).filter(|v| v.is_finite()).collect();
            if at.is_empty() {
                continue;
            }
            band.steps.push((index + 1) as f64);
            band.low.push(at.iter().copied().fold(f64::INFINITY, f64::min));
            band.high.push(at.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            band.mean.push(at.iter().sum::<f64>() / at.len() as f64);
        }
        band
    }

    /// The part from step `start` on.
    pub fn from_step(mut self, start: f64) -> SeedBand {
        let first = self.steps.partition_point(|&s| s < start);
        for series in [&mut self.steps, &mut self.low, &mut self.high, &mut self.mean] {
            series.drain(..first);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_series_stays_small_keeps_its_spike_and_its_order() {
        let mut series = Decimator::default();
        for i in 0..100_000 {
            series.push([i as f64, if i == 51_234 { 100.0 } else { (i % 7) as f64 }]);
        }
        let points = series.points();
        assert!(points.len() <= 4 * PLOT_BUCKETS + 2, "{} points", points.len());
        assert!(points.iter().any(|p| p[1] == 100.0), "the spike survives");
        assert!(points.windows(2).all(|w| w[0][0] <= w[1][0]), "x stays in order");
        assert_eq!(points.first().map(|p| p[0]), Some(0.0));
    }

    #[test]
    fn few_points_are_drawn_as_they_are_and_non_finite_ones_are_left_out() {
        let mut series = Decimator::default();
        for (i, y) in [1.0, f64::NAN, 3.0].into_iter().enumerate() {
            series.push([i as f64, y]);
        }
        assert_eq!(series.points(), [[0.0, 1.0], [2.0, 3.0]]);
    }

    #[test]
    fn a_seed_band_spans_the_seeds_smoothed_losses_step_by_step() {
        use crate::protocol::{Arm, SeedCurve};
        let curve = |seed, losses: Vec<f32>| SeedCurve { seed, losses, test: None, diverged_at: None };
        let runs = SeedRuns {
            arm: Arm::A,
            asked: 3,
            steps: 3,
            // The third diverged at its second step and stopped there.
            runs: vec![curve(1, vec![2.0, 1.0, 0.5]), curve(2, vec![4.0, 3.0, 1.5]), curve(3, vec![3.0])],
        };
        let band = SeedBand::of(&runs, 0.0);
        assert_eq!(band.steps, [1.0, 2.0, 3.0]);
        assert_eq!(band.low, [2.0, 1.0, 0.5]);
        assert_eq!(band.high, [4.0, 3.0, 1.5]);
        assert_eq!(band.mean, [3.0, 2.0, 1.0], "a step averages the seeds that reached it");
        // Smoothed as the live loss is: the debiased average of 2 and 1 at factor 0.5 is 4/3.
        let smoothed = SeedBand::of(&runs, 0.5);
        assert!((smoothed.low[1] - 4.0 / 3.0).abs() < 1e-12, "{:?}", smoothed.low);
        assert_eq!(band.from_step(2.0).steps, [2.0, 3.0]);
    }
}
