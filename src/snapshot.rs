//! Plain data the training worker sends out: metric rows, snapshots of weights, gradients and activations,
//! histograms. No burn and no egui types, so the UI, the exporters and the tests read it freely.

use serde::{Deserialize, Serialize};

use crate::arch::{Activation, LayerKind, LayerSettings, OutputKind, Shape};
use crate::task::RegressionMetrics;

/// Number of bins in every pre-activation histogram.
pub const HISTOGRAM_BINS: usize = 64;

/// The largest share of wall time snapshots may take: after a snapshot that cost `c`, the next waits at
/// least `c / SNAPSHOT_BUDGET`. Small nets on the CPU never reach it (ref-mnist's ≈ 1 ms every 100 ms is
/// ≈ 1 %); a wide one's bigger activation maps then refresh less often instead of slowing training.
pub const SNAPSHOT_BUDGET: f64 = 0.02;

/// A dense f32 array with its shape (row-major, like burn's `TensorData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FloatArray {
    /// Dimensions, outermost first; e.g. `[filters, in_channels, k, k]` for conv weights.
    pub shape: Vec<usize>,
    /// The values, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

impl FloatArray {
    /// Wraps `data` with `shape`; `None` when the lengths disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Option<Self> {
        (shape.iter().product::<usize>() == data.len()).then_some(FloatArray { shape, data })
    }

    /// Smallest and largest finite value, or `None` when there is none.
    pub fn finite_range(&self) -> Option<(f32, f32)> {
        finite_range(&self.data)
    }

    /// Largest absolute finite value (0 when there is none).
    pub fn max_abs(&self) -> f32 {
        self.data.iter().filter(|v| v.is_finite()).fold(0.0_f32, |m, v| m.max(v.abs()))
    }

    /// The L2 norm of all values.
    pub fn l2_norm(&self) -> f32 {
        self.data.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt() as f32
    }
}

/// Smallest and largest finite value of `values`, or `None` when there is none.
pub fn finite_range(values: &[f32]) -> Option<(f32, f32)> {
    values.iter().filter(|v| v.is_finite()).fold(None, |acc, &v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A histogram over `[min, max]` in equal bins; values that are not finite are counted, never dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Histogram {
    /// Left edge of the first bin.
    pub min: f32,
    /// Right edge of the last bin.
    pub max: f32,
    /// Count per bin.
    pub counts: Vec<u32>,
    /// NaN and ±∞ values seen.
    pub non_finite: u32,
}

impl Histogram {
    /// Bins `values` into `bins` equal bins spanning their finite range.
    pub fn of(values: &[f32], bins: usize) -> Histogram {
        let non_finite = values.iter().filter(|v| !v.is_finite()).count() as u32;
        Histogram::binned(values, bins, finite_range(values), non_finite)
    }

    /// Bins `values` into `bins` equal bins over `range`, their finite range measured beforehand (`None`
    /// when no value is finite); `non_finite` of them are NaN or infinite and are counted apart.
    pub fn binned(values: &[f32], bins: usize, range: Option<(f32, f32)>, non_finite: u32) -> Histogram {
        let bins = bins.max(1);
        let Some((min, max)) = range else {
            return Histogram { min: 0.0, max: 0.0, counts: vec![0; bins], non_finite };
        };
        let scale = bins as f32 / (max - min).max(f32::MIN_POSITIVE);
        let last = (bins - 1) as f32;
        let bin_of = |v: f32| ((v - min) * scale).max(0.0).min(last) as usize;
        // Four interleaved tallies: neighbouring values often share a bin, and one tally would make each
        // increment wait for the last. A non-finite value lands in some bin but adds zero (`max` turns NaN
        // into 0), which keeps the loop free of branches.
        let mut tallies = vec![[0_u32; 4]; bins];
        let quads = values.chunks_exact(4);
        let rest = quads.remainder();
        for quad in quads {
            let bins_of_quad = [bin_of(quad[0]), bin_of(quad[1]), bin_of(quad[2]), bin_of(quad[3])];
            for (lane, (&bin, &v)) in bins_of_quad.iter().zip(quad).enumerate() {
                if let Some(tally) = tallies.get_mut(bin) {
                    tally[lane] += u32::from(v.is_finite());
                }
            }
        }
        for &v in rest {
            if let Some(tally) = tallies.get_mut(bin_of(v)) {
                tally[0] += u32::from(v.is_finite());
            }
        }
        let counts = tallies.iter().map(|tally| tally.iter().sum()).collect();
        Histogram { min, max, counts, non_finite }
    }

    /// Width of one bin.
    pub fn bin_width(&self) -> f32 {
        (self.max - self.min) / self.counts.len().max(1) as f32
    }

    /// Total number of values binned (finite ones).
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// What a layer is, as the UI lists it. Sent once per reset in [`crate::protocol::WorkerEvent::Started`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// `conv1`, `pool1`, `dense1`….
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Shape of its output per example.
    pub out_shape: Shape,
    /// Live settings for layers with weights; `None` for pooling.
    pub settings: Option<LayerSettings>,
    /// Whether this is the output layer (its activation is part of the loss).
    pub output: bool,
    /// Index among the layers with weights, as commands address them.
    pub weighted_index: Option<usize>,
}

/// One logged step. Rows are never dropped: the worker batches them into events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Training step this row describes (1-based: the step that just ran).
    pub step: u64,
    /// Completed passes over the training set.
    pub epoch: usize,
    /// Mean loss of this step's batch.
    pub loss: f32,
    /// Accuracy over the recent training batches (a running mean, see the worker's window).
    pub train_accuracy: f32,
    /// The latest test-set accuracy (evaluated every few hundred steps; carried forward in between).
    pub test_accuracy: f32,
    /// The step whose weights `test_accuracy` was measured with (0: the freshly built net).
    #[serde(default)]
    pub test_step: u64,
    /// The learning rate the step used.
    pub lr: f64,
    /// L2 norm of each weight tensor's gradient, layers with weights in input-to-output order.
    pub grad_norms: Vec<f32>,
    /// Seconds of compute since the run (or the last reset) began: steps and test evaluations, paused time
    /// excluded.
    pub elapsed_secs: f64,
    /// Seconds spent in training steps alone (evaluations excluded): what training throughput is measured by.
    pub step_secs: f64,
    /// Per-layer statistics, layers with weights in input-to-output order; empty on steps that took none
    /// (they are taken with every snapshot, and every step in `convscope train`).
    pub stats: Vec<LayerStats>,
    /// Regression only: MSE, MAE and R² over the recent training batches (the accuracies are then NaN).
    #[serde(default)]
    pub train_regression: Option<RegressionMetrics>,
    /// Regression only: the same over the test split at `test_step`.
    #[serde(default)]
    pub test_regression: Option<RegressionMetrics>,
}

/// Most points a regression's scatter carries: enough to see its shape, few enough to send every evaluation.
pub const MAX_SCATTER_POINTS: usize = 2000;

/// A regression head's test-split evaluation: predictions against targets (in target units) for the scatter
/// and the residuals, and how many outputs are pinned at an edge of the output activation's range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionEval {
    /// The step whose weights were evaluated.
    pub step: u64,
    /// MSE, MAE and R² over the whole test split, and the shares of its outputs pinned and of its targets
    /// unreachable.
    pub metrics: RegressionMetrics,
    /// Targets of the points shown (every test example, or an even sample of at most [`MAX_SCATTER_POINTS`]).
    pub targets: Vec<f32>,
    /// The net's predictions for the same points.
    pub predictions: Vec<f32>,
    /// Whether each point's output is pinned: at an edge of the activation's range, its target beyond it.
    pub pinned: Vec<bool>,
    /// The output layer's activation.
    pub activation: Activation,
    /// The activation's lowest and highest value, in target units (`None`: unbounded): where the floor and
    /// ceiling lie on the scatter.
    pub edges: (Option<f32>, Option<f32>),
}

/// What one layer with weights looked like during one step: the numbers behind "why isn't my net learning?".
/// A *unit* is a channel of a conv layer or a neuron of a dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// Root mean square of the weight gradient (its L2 norm over √count: comparable across layer sizes).
    pub grad_rms: f32,
    /// Root mean square of the weights after the update.
    pub weight_rms: f32,
    /// ‖ΔW‖ / ‖W‖ of this step's update; the rule of thumb for healthy training is about 1e-3.
    pub update_ratio: f32,
    /// Mean slope f′(z) of the activation over the batch: the factor the backward pass multiplies by here.
    /// `None` for the output layer, whose nonlinearity belongs to the loss.
    pub mean_slope: Option<f32>,
    /// Share of ReLU units dead: zero output for every example of the last
    /// [`DEAD_UNIT_WINDOW`](crate::diagnose::DEAD_UNIT_WINDOW) statistics batches. `None` unless ReLU.
    pub dead_fraction: Option<f32>,
    /// Share of sigmoid / tanh units saturated: mean f′(z) below
    /// [`SATURATED_SLOPE_FRACTION`](crate::diagnose::SATURATED_SLOPE_FRACTION) of the peak slope. `None`
    /// unless sigmoid or tanh.
    pub saturated_fraction: Option<f32>,
    /// Mean of the pre-activations z (after bias and batch-norm).
    pub pre_activation_mean: f32,
    /// Variance of the pre-activations.
    pub pre_activation_var: f32,
    /// The pre-activation variance the layer's init scheme aims for, given the second moment of what the
    /// layer receives now: fan-in × Var(w at init) × E[x²]. Far above it, activations are exploding.
    pub init_pre_activation_var: f32,
    /// Mean of the activations f(z).
    pub activation_mean: f32,
    /// Variance of the activations.
    pub activation_var: f32,
}

/// What one layer with weights looked like at a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSnapshot {
    /// The layer's name.
    pub name: String,
    /// Settings in force at this step.
    pub settings: LayerSettings,
    /// Weights after the step's update: `[filters, in_channels, k, k]` for conv, `[inputs, units]` for dense
    /// (burn's layout).
    pub weights: FloatArray,
    /// ∂loss/∂weights of the step's batch at the weights before its update, same layout; `None` before the
    /// first step.
    pub weight_grads: Option<FloatArray>,
    /// Histogram of the pre-activations (after batch-norm when it is on) over this step's batch.
    pub pre_activation_histogram: Histogram,
    /// Smallest and largest post-activation value over the batch.
    pub activation_range: (f32, f32),
    /// Smallest and largest weight-gradient value.
    pub grad_range: (f32, f32),
    /// L2 norm of the weights.
    pub weight_norm: f32,
    /// L2 norm of the weight gradient.
    pub grad_norm: f32,
}

/// Reads one statistic of a layer (`None` where it does not apply).
pub type StatReader = fn(&LayerStats) -> Option<f32>;

impl LayerStats {
    /// Every statistic with its CSV column prefix (`<prefix>_<layer>`), in column order.
    pub const COLUMNS: [(&'static str, StatReader); 11] = [
        ("grad_rms", |s| Some(s.grad_rms)),
        ("weight_rms", |s| Some(s.weight_rms)),
        ("update_ratio", |s| Some(s.update_ratio)),
        ("mean_slope", |s| s.mean_slope),
        ("dead_fraction", |s| s.dead_fraction),
        ("saturated_fraction", |s| s.saturated_fraction),
        ("pre_mean", |s| Some(s.pre_activation_mean)),
        ("pre_var", |s| Some(s.pre_activation_var)),
        ("init_pre_var", |s| Some(s.init_pre_activation_var)),
        ("act_mean", |s| Some(s.activation_mean)),
        ("act_var", |s| Some(s.activation_var)),
    ];
}

/// The probe image pushed through the net: every layer's maps and the class probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSnapshot {
    /// Index of the probe in the test split (meaningless for the user's own image).
    pub index: usize,
    /// Its true class; `None` for the user's own image.
    pub label: Option<usize>,
    /// The name of the user's own image when that is the probe.
    pub own_image: Option<String>,
    /// The normalised input, `[channels, height, width]`.
    pub input: FloatArray,
    /// Per layer with weights: pre-activation, `[channels, h, w]` for conv, `[units]` for dense.
    pub pre_activations: Vec<FloatArray>,
    /// Per layer with weights: post-activation, same shapes.
    pub post_activations: Vec<FloatArray>,
    /// Class probabilities (softmax, or per-class sigmoid for a sigmoid output).
    pub probabilities: Vec<f32>,
    /// ∂loss/∂input, the loss taken against `attributed_class` with the net in inference mode, `[channels,
    /// height, width]` like `input`: the saliency map is its magnitude, gradient × input its product with
    /// `input`. (Last, and defaulted, so histories recorded before it still read.)
    #[serde(default)]
    pub input_grad: Option<FloatArray>,
    /// Per layer with weights: ∂loss/∂post-activation, shaped like `post_activations`.
    #[serde(default)]
    pub activation_grads: Vec<FloatArray>,
    /// The class the attribution's loss is taken against: the label, or the predicted class for the user's
    /// own image.
    #[serde(default)]
    pub attributed_class: Option<usize>,
    /// A regression head's prediction for the probe and its target (`None` for the user's own image), in
    /// target units; `None` for a classifier.
    #[serde(default)]
    pub regression: Option<(f32, Option<f32>)>,
}

/// Everything the UI draws for one moment of training. Latest wins: an unread snapshot is replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Steps taken so far.
    pub step: u64,
    /// Completed passes over the training set.
    pub epoch: usize,
    /// Current learning rate.
    pub lr: f64,
    /// Loss of the latest step.
    pub loss: f32,
    /// Running training accuracy.
    pub train_accuracy: f32,
    /// Every layer with weights, input to output.
    pub layers: Vec<LayerSnapshot>,
    /// The output layer's nonlinearity and loss (its `settings.activation` is identity: the loss owns it).
    #[serde(default)]
    pub output: OutputKind,
    /// The probe image through the net.
    pub probe: ProbeSnapshot,
    /// What taking this snapshot cost training: its step's time beyond a plain step's, in seconds (0 until a
    /// plain step has been timed, and for snapshots taken outside training).
    #[serde(default)]
    pub cost_secs: f32,
    /// Seconds until the next snapshot: the configured interval, stretched when snapshots are costly.
    #[serde(default)]
    pub gap_secs: f32,
}

impl Snapshot {
    /// The nonlinearity after layer `index` (with weights) in words: its activation, or for the output layer
    /// the output kind (`softmax`, `sigmoid`).
    pub fn nonlinearity(&self, index: usize) -> &'static str {
        match self.layers.get(index) {
            Some(_) if index + 1 == self.layers.len() => self.output.name(),
            Some(layer) => layer.settings.activation.name(),
            None => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_finite_value_and_tallies_the_rest() {
        let values = [0.0, 0.5, 1.0, 1.0, f32::NAN, f32::INFINITY, -0.25];
        let h = Histogram::of(&values, 5);
        assert_eq!((h.min, h.max), (-0.25, 1.0));
        assert_eq!(h.total(), 5);
        assert_eq!(h.non_finite, 2);
        assert_eq!(h.counts[4], 2, "the maximum lands in the last bin");
        assert_eq!(h.counts[0], 1);
    }

    #[test]
    fn histogram_bins_agree_with_the_definition_for_every_value() {
        // 1,003 values: whole quads and a remainder; NaN and infinities among them.
        let mut values: Vec<f32> = (0..1003).map(|i| ((i as f32 * 0.618_034).fract() * 7.0 - 3.0).powi(3)).collect();
        values[10] = f32::NAN;
        values[501] = f32::NEG_INFINITY;
        values[1002] = f32::INFINITY;
        let h = Histogram::of(&values, 16);
        let mut want = vec![0_u32; 16];
        for v in values.iter().filter(|v| v.is_finite()) {
            let bin = ((v - h.min) * 16.0 / (h.max - h.min)).floor() as usize;
            want[bin.min(15)] += 1;
        }
        assert_eq!(h.counts, want);
        assert_eq!((h.total(), h.non_finite), (1000, 3));
    }

    #[test]
    fn float_array_checks_its_shape() {
        assert!(FloatArray::new(vec![2, 3], vec![0.0; 5]).is_none());
        let a = FloatArray::new(vec![2], vec![3.0, -4.0]).unwrap();
        assert_eq!(a.l2_norm(), 5.0);
        assert_eq!(a.max_abs(), 4.0);
    }
}

/// Wrongly classified test images kept per cell of the confusion matrix, to show on a click.
pub const CONFUSION_EXAMPLES_PER_CELL: usize = 8;
/// …and at most this many in all (a 100-class data set has 9,900 off-diagonal cells).
pub const CONFUSION_EXAMPLES: usize = 320;

/// The test split's confusion matrix after an evaluation: how often each true class was predicted as each
/// class, and a few of the wrongly classified images per cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// The step the evaluation followed.
    pub step: u64,
    /// Classes: the matrix is `classes × classes`.
    pub classes: usize,
    /// Row-major counts: `counts[true_class * classes + predicted]`. An image whose logits were not finite is
    /// counted in no cell (`unscored` counts them).
    pub counts: Vec<u32>,
    /// Test images whose logits were not finite.
    pub unscored: u32,
    /// Up to [`CONFUSION_EXAMPLES_PER_CELL`] wrongly classified images per cell, in test-set order.
    pub examples: Vec<ConfusionExample>,
}

/// One wrongly classified test image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionExample {
    /// Its index in the test split (what `Command::SetProbe` takes).
    pub test_index: usize,
    pub true_class: usize,
    pub predicted: usize,
    /// C×H×W bytes in the data's shape.
    pub pixels: Vec<u8>,
}

impl Confusion {
    /// An empty matrix for `classes` classes after step `step`.
    pub fn new(step: u64, classes: usize) -> Confusion {
        Confusion { step, classes, counts: vec![0; classes * classes], unscored: 0, examples: Vec::new() }
    }

    /// Counts one image: `predicted` is `None` when its logits were not finite. Returns whether the image
    /// should be kept as an example (wrong, and its cell and the whole still have room).
    pub fn count(&mut self, true_class: usize, predicted: Option<usize>) -> bool {
        let Some(predicted) = predicted.filter(|&p| p < self.classes && true_class < self.classes) else {
            self.unscored += 1;
            return false;
        };
        self.counts[true_class * self.classes + predicted] += 1;
        predicted != true_class
            && self.examples.len() < CONFUSION_EXAMPLES
            && self.examples_of(true_class, predicted).count() < CONFUSION_EXAMPLES_PER_CELL
    }

    /// The count of images of class `true_class` predicted as `predicted`.
    pub fn at(&self, true_class: usize, predicted: usize) -> u32 {
        if true_class < self.classes && predicted < self.classes {
            self.counts[true_class * self.classes + predicted]
        } else {
            0
        }
    }

    /// Images of class `true_class`, counted in every column.
    pub fn row_total(&self, true_class: usize) -> u32 {
        (0..self.classes).map(|p| self.at(true_class, p)).sum()
    }

    /// The kept examples of one cell.
    pub fn examples_of(&self, true_class: usize, predicted: usize) -> impl Iterator<Item = &ConfusionExample> {
        self.examples.iter().filter(move |e| e.true_class == true_class && e.predicted == predicted)
    }

    /// The matrix as CSV: a header (`true\predicted` then the class names), then one row per true class.
    pub fn csv(&self, class_names: &[String]) -> String {
        let name =
            |i: usize| class_names.get(i).cloned().unwrap_or_else(|| i.to_string()).replace([',', '"', '\n'], " ");
        let mut text = String::from("true\\predicted");
        for predicted in 0..self.classes {
            text += &format!(",{}", name(predicted));
        }
        text.push('\n');
        for true_class in 0..self.classes {
            text += &name(true_class);
            for predicted in 0..self.classes {
                text += &format!(",{}", self.at(true_class, predicted));
            }
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod confusion_tests {
    use super::*;

    #[test]
    fn counts_fill_rows_and_examples_stay_within_their_limits() {
        let mut confusion = Confusion::new(7, 3);
        assert!(!confusion.count(0, Some(0)), "a right answer is no example");
        assert!(confusion.count(0, Some(2)), "a mistake is");
        assert!(!confusion.count(1, None), "non-finite outputs are counted apart");
        assert!(!confusion.count(5, Some(1)), "a label outside the classes is no cell");
        assert_eq!((confusion.at(0, 0), confusion.at(0, 2), confusion.unscored), (1, 1, 2));
        assert_eq!(confusion.row_total(0), 2);
        for _ in 0..CONFUSION_EXAMPLES_PER_CELL {
            confusion.examples.push(ConfusionExample {
                test_index: 0,
                true_class: 2,
                predicted: 1,
                pixels: Vec::new(),
            });
        }
        assert!(!confusion.count(2, Some(1)), "a full cell keeps no more");
        assert!(confusion.count(1, Some(2)), "another cell still does");
        let names = ["zero".to_owned(), "one, two".to_owned(), "two".to_owned()];
        let csv = confusion.csv(&names);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "true\\predicted,zero,one  two,two");
        assert_eq!(lines[1], "zero,1,0,1");
        assert_eq!(lines[3], "two,0,1,0");
    }
}
