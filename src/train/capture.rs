//! Snapshots: the weights, the last step's gradients, the activations' histograms and ranges, and the probe
//! image pushed through the net — plain data for the window, read back from the device.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

use crate::model::{Hook, LayerValues};
use crate::snapshot::{FloatArray, HISTOGRAM_BINS, Histogram, LayerSnapshot, ProbeSnapshot, Snapshot};
use crate::train::error::{TrainError, readback};
use crate::train::stats::{self, HostLayer};
use crate::train::targets::Regression;
use crate::train::tensors::{make_batch, weight_array};
use crate::train::trainer::Trainer;

impl Trainer {
    /// A snapshot of the net as it is now: current weights, the last step's gradients, and activations of the
    /// last step's batch recomputed with the current weights (batch-norm in inference mode). Used after a
    /// change while paused, so the window shows its effect without a training step.
    pub fn refresh_snapshot(&self) -> Result<Snapshot, TrainError> {
        self.snapshot_with(None)
    }

    /// Weights after the last update, that update's gradients, the activations measured in `host` (or
    /// recomputed for the last batch when `None`), and the probe pass.
    pub(crate) fn snapshot_with(&self, host: Option<Vec<HostLayer>>) -> Result<Snapshot, TrainError> {
        let host = match host {
            Some(host) => host,
            None => {
                let indices: Vec<usize> = if self.last_indices.is_empty() {
                    (0..self.config.batch_size.min(self.data.train.len())).collect()
                } else {
                    self.last_indices.clone()
                };
                let (images, _, _) = make_batch(
                    &self.data.train,
                    &indices,
                    &self.normalization,
                    None,
                    self.train_targets(),
                    &self.device,
                )?;
                let (_, trace) = self.model.valid().forward_traced(images.inner());
                stats::read_trace(&self.model, trace, true)?.0
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
            output: self.config.output,
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
                    make_batch(test, &[index], &self.normalization, None, self.test_targets(), &self.device)?;
                (image, labels.first().map(|&l| l as usize), None)
            }
        };
        let model = self.model.valid();
        let input = readback("the probe image", image.clone().inner().into_data())?;
        let (logits, trace) = model.forward_traced(image.clone().inner());
        let probabilities = readback("the probabilities", model.probabilities(logits).into_data())?;
        let dense_at = |layer: usize| self.model.layers.get(layer).is_some_and(|l| l.dense_weight.is_some());
        let mut pre_activations = Vec::with_capacity(trace.layers.len());
        let mut post_activations = Vec::with_capacity(trace.layers.len());
        for values in trace.layers {
            // `forward_traced` keeps every layer's values.
            let LayerValues::Kept { pre, post } = values else { continue };
            // [1, c, h, w] → [c, h, w]; dense layers come as [1, units, 1, 1] → [units].
            let [_, c, h, w] = pre.dims();
            let shape = if h == 1 && w == 1 && dense_at(pre_activations.len()) { vec![c] } else { vec![c, h, w] };
            pre_activations
                .push(FloatArray::new(shape.clone(), readback("probe maps", pre.into_data())?).unwrap_or_default());
            post_activations
                .push(FloatArray::new(shape, readback("probe maps", post.into_data())?).unwrap_or_default());
        }
        let predicted = probabilities.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
        // A regression's loss is taken against the probe's own target; a classifier's against its class.
        let (attributed_class, target) = match &self.regression {
            Some(regression) => {
                (None, Some(self.regression_probe_target(regression, own_image.is_some(), &probabilities)))
            }
            None => {
                let class = label.or(predicted);
                (class, class.map(|class| self.one_hot(class)))
            }
        };
        let (input_grad, activation_grads) = match target {
            Some(target) => self.attribution(image, target, &post_activations)?,
            None => (None, Vec::new()),
        };
        let regression = self.regression.as_ref().map(|regression| {
            let scale = regression.targets.scale;
            let prediction = scale.from_model(probabilities.first().copied().unwrap_or(f32::NAN));
            let target = regression.targets.test.get(index).copied().filter(|_| own_image.is_none());
            (prediction, target)
        });
        let shape = test.shape();
        Ok(ProbeSnapshot {
            index,
            label,
            own_image,
            input: FloatArray::new(vec![shape.channels, shape.height, shape.width], input).unwrap_or_default(),
            pre_activations,
            post_activations,
            probabilities,
            input_grad,
            activation_grads,
            attributed_class,
            regression,
        })
    }

    /// The probe's regression target `[1, 1]` in the net's units: the test image's own. An image of the user's
    /// has none, so the target is put one unit below the output: the loss's gradient is then a fixed multiple of
    /// ∂output/∂input, the maps show what moves the prediction.
    fn regression_probe_target(&self, regression: &Regression, own_image: bool, outputs: &[f32]) -> Tensor<2> {
        let output = outputs.first().copied().unwrap_or(0.0);
        let target = match regression.targets.test.get(self.config.probe_index) {
            Some(&target) if !own_image => regression.targets.scale.to_model(target),
            _ => output - 1.0,
        };
        Tensor::<2>::from_data(TensorData::new(vec![target], [1, 1]), &self.device)
    }

    /// The one-hot target `[1, classes]` of `class`, on the training device.
    fn one_hot(&self, class: usize) -> Tensor<2> {
        let mut target = vec![0.0_f32; self.plan.classes];
        if let Some(cell) = target.get_mut(class) {
            *cell = 1.0;
        }
        Tensor::<2>::from_data(TensorData::new(target, [1, self.plan.classes]), &self.device)
    }

    /// The loss of a normalised input `[channels, height, width]` against `class`, with the net in inference
    /// mode: the function the probe's attribution differentiates (for finite-difference checks).
    pub fn probe_loss(&self, input: &FloatArray, class: usize) -> Result<f32, TrainError> {
        let shape = self.data.test.shape();
        let data = TensorData::new(input.data.clone(), [1, shape.channels, shape.height, shape.width]);
        let model = self.model.valid();
        let image = Tensor::<4>::from_data(data, &self.device).inner();
        let target = self.one_hot(class).inner();
        let loss = model.loss(model.forward(image), target);
        Ok(readback("the probe loss", loss.into_data())?.first().copied().unwrap_or(f32::NAN))
    }

    /// ∂loss/∂input and every layer's ∂loss/∂activation for one image `[1, c, h, w]` (on the training device),
    /// the loss taken against `target` (one-hot, or a regression's number), from one backward pass through the net in inference mode (batch-norm on
    /// its running statistics, as the probe's maps are). Shapes follow `maps`.
    fn attribution(
        &self,
        image: Tensor<4>,
        target: Tensor<2>,
        maps: &[FloatArray],
    ) -> Result<(Option<FloatArray>, Vec<FloatArray>), TrainError> {
        // Frozen: no parameter takes part, and batch-norm takes its inference path on the training device.
        let model = self.model.clone().freeze();
        let image = image.detach().require_grad();
        let (logits, trace) = model.forward_hooked(image.clone());
        let grads = model.loss(logits, target).backward();
        let input_shape = image.dims()[1..].to_vec();
        let input_grad = match image.grad(&grads) {
            Some(g) => FloatArray::new(input_shape, readback("the input gradient", g.into_data())?),
            None => None,
        };
        let mut activation_grads = Vec::with_capacity(trace.hooks.len());
        for (hook, map) in trace.hooks.iter().zip(maps) {
            let grad = match hook {
                Hook::Map(leaf) => leaf.grad(&grads).map(Tensor::into_data),
                Hook::Flat(leaf) => leaf.grad(&grads).map(Tensor::into_data),
            };
            let values = match grad {
                Some(data) => readback("an activation gradient", data)?,
                None => vec![0.0; map.data.len()],
            };
            activation_grads.push(FloatArray::new(map.shape.clone(), values).unwrap_or_default());
        }
        Ok((input_grad, activation_grads))
    }
}
