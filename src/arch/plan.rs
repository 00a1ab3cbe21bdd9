//! Shape inference: a parsed spec, the input shape and the class count become a checked [`NetPlan`] with
//! every layer's shapes and initial settings (the output layer appended).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::arch::{
    Activation, ArchSpec, ImageShape, Init, LayerKind, LayerSettings, LayerSpec, MAX_LAYER_VALUES, MAX_LAYER_WEIGHTS,
    OutputKind, SpecError,
};

impl ArchSpec {
    /// Shape inference: checks every layer against the shape that reaches it and returns the plan with
    /// the output layer appended. Fails with the offending layer underlined, before burn ever sees it.
    pub fn plan(&self, input: ImageShape, classes: usize, defaults: &LayerDefaults) -> Result<NetPlan, SpecError> {
        let text = &self.text;
        let mut shape = Shape::Map { channels: input.channels, height: input.height, width: input.width };
        let mut layers: Vec<LayerPlan> = Vec::new();
        let mut counts = LayerCounts::default();
        for (index, layer) in self.layers.iter().enumerate() {
            let at = |message: String| {
                let written: String = text[layer.span.clone()].chars().take(60).collect();
                SpecError::new(text, layer.span.clone(), format!("layer {} `{written}`: {message}", index + 1))
            };
            let (name, out_shape) = counts.infer(layer.kind, shape).map_err(at)?;
            if out_shape.len() > MAX_LAYER_VALUES {
                return Err(at(format!(
                    "its output {out_shape} is too large (at most {MAX_LAYER_VALUES} values per example)"
                )));
            }
            let weighted = layers.iter().filter(|l| l.settings.is_some()).count();
            let settings = layer_settings(layer, defaults, weighted);
            layers.push(LayerPlan { name, kind: layer.kind, in_shape: shape, out_shape, settings, output: false });
            shape = out_shape;
        }
        let weighted = layers.iter().filter(|l| l.settings.is_some()).count();
        if let Some(extra) = defaults.layer_activations.get(weighted) {
            return Err(SpecError::new(
                text,
                0..text.len(),
                format!(
                    "{} per-layer activations were given (the first unused is `{extra}`) but the spec has only {weighted} hidden {} with weights",
                    defaults.layer_activations.len(),
                    if weighted == 1 { "layer" } else { "layers" },
                ),
            ));
        }
        if shape.len().checked_mul(classes).is_none_or(|n| n > MAX_LAYER_WEIGHTS) {
            return Err(SpecError::new(
                text,
                0..text.len(),
                format!(
                    "the output layer would connect {shape} values to {classes} classes, too many weights (at most {MAX_LAYER_WEIGHTS}) — pool more before it"
                ),
            ));
        }
        counts.denses += 1;
        layers.push(LayerPlan {
            name: format!("dense{}", counts.denses),
            kind: LayerKind::Dense { units: classes },
            in_shape: shape,
            out_shape: Shape::Flat(classes),
            settings: Some(LayerSettings {
                // A classifier's softmax / sigmoid belongs to its loss; a regression head's activation is a choice.
                activation: if defaults.output.is_regression() {
                    defaults.output_activation
                } else {
                    Activation::Identity
                },
                bias: defaults.bias,
                batch_norm: false,
                init: defaults.init.unwrap_or(Init::Xavier),
            }),
            output: true,
        });
        Ok(NetPlan { spec: text.clone(), input, classes, output: defaults.output, layers })
    }
}

/// The layers of each kind named so far (`conv1`, `conv2`, `pool1`…).
#[derive(Default)]
struct LayerCounts {
    convs: usize,
    pools: usize,
    denses: usize,
}

impl LayerCounts {
    /// The name and output shape of a `kind` layer that receives `shape`, or what is wrong with it there.
    fn infer(&mut self, kind: LayerKind, shape: Shape) -> Result<(String, Shape), String> {
        match (kind, shape) {
            (LayerKind::Conv { filters, kernel, padding, stride }, Shape::Map { channels, height, width }) => {
                let padded = |side: usize| padding.checked_mul(2).and_then(|p| side.checked_add(p));
                let (Some(h), Some(w)) = (padded(height), padded(width)) else {
                    return Err(format!("padding {padding} is far too large"));
                };
                let weights =
                    [filters, channels, kernel, kernel].iter().try_fold(1_usize, |acc, &n| acc.checked_mul(n));
                if weights.is_none_or(|n| n > MAX_LAYER_WEIGHTS) {
                    return Err(format!(
                        "{filters} filters of {kernel}×{kernel} over {channels} channels is too many weights (at most {MAX_LAYER_WEIGHTS})"
                    ));
                }
                if h < kernel || w < kernel {
                    return Err(format!(
                        "the input here is {shape}; a {kernel}×{kernel} kernel with padding {padding} does not fit — use a smaller kernel, more padding, or fewer pooling layers before it"
                    ));
                }
                self.convs += 1;
                let (height, width) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
                Ok((format!("conv{}", self.convs), Shape::Map { channels: filters, height, width }))
            }
            (LayerKind::Conv { .. }, Shape::Flat(_)) => {
                Err("a convolution cannot follow a dense layer: put every conv and pool before the first dense".into())
            }
            (LayerKind::Pool { size }, Shape::Map { channels, height, width }) => {
                if height / size == 0 || width / size == 0 {
                    return Err(format!(
                        "the input here is {shape}; pooling by {size} would leave {}×{} — remove this pool or use a smaller window",
                        height / size,
                        width / size
                    ));
                }
                self.pools += 1;
                Ok((format!("pool{}", self.pools), Shape::Map { channels, height: height / size, width: width / size }))
            }
            (LayerKind::Pool { .. }, Shape::Flat(_)) => {
                Err("pooling needs an image-shaped input; it cannot follow a dense layer".into())
            }
            (LayerKind::Dense { units }, _) => {
                if shape.len().checked_mul(units).is_none_or(|n| n > MAX_LAYER_WEIGHTS) {
                    return Err(format!(
                        "{units} units over {} inputs is too many weights (at most {MAX_LAYER_WEIGHTS}) — pool more before it",
                        shape.len()
                    ));
                }
                self.denses += 1;
                Ok((format!("dense{}", self.denses), Shape::Flat(units)))
            }
        }
    }
}

/// The starting settings of a layer with weights (`None` for pooling): what the spec writes, else the
/// run-wide defaults; `weighted` is how many layers with weights come before it.
fn layer_settings(layer: &LayerSpec, defaults: &LayerDefaults, weighted: usize) -> Option<LayerSettings> {
    match layer.kind {
        LayerKind::Pool { .. } => None,
        LayerKind::Conv { .. } | LayerKind::Dense { .. } => {
            let activation =
                layer.activation.or_else(|| defaults.activation_for(weighted)).unwrap_or(defaults.activation);
            Some(LayerSettings {
                activation,
                bias: layer.bias.unwrap_or(defaults.bias),
                batch_norm: layer.batch_norm.unwrap_or(defaults.batch_norm),
                init: layer.init.or(defaults.init).unwrap_or_else(|| activation.default_init()),
            })
        }
    }
}

/// The run-wide choices a spec's layers fall back on when they do not name their own.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDefaults {
    /// The activation of every hidden layer that names none.
    pub activation: Activation,
    /// Per-layer activations in order of the hidden layers with weights (overrides `activation`).
    pub layer_activations: Vec<Activation>,
    /// Whether layers start with their bias on.
    pub bias: bool,
    /// Whether hidden layers start with batch-norm on.
    pub batch_norm: bool,
    /// An init for every layer; `None` picks each activation's [`Activation::default_init`].
    pub init: Option<Init>,
    /// The output layer and its loss.
    pub output: OutputKind,
    /// The output layer's activation when `output` is a regression head (identity, ReLU, sigmoid…).
    pub output_activation: Activation,
}

impl Default for LayerDefaults {
    fn default() -> Self {
        LayerDefaults {
            activation: Activation::Relu,
            layer_activations: Vec::new(),
            bias: true,
            batch_norm: false,
            init: None,
            output: OutputKind::Softmax,
            output_activation: Activation::Identity,
        }
    }
}

impl LayerDefaults {
    fn activation_for(&self, weighted_index: usize) -> Option<Activation> {
        self.layer_activations.get(weighted_index).copied()
    }
}

/// The shape of the tensor between two layers, per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// Channels × height × width.
    Map {
        /// Channels.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
    /// A flat vector of features.
    Flat(usize),
}

impl Shape {
    /// Number of values per example.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Map { channels, height, width } => channels.saturating_mul(height).saturating_mul(width),
            Shape::Flat(n) => n,
        }
    }

    /// Whether the shape holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map { channels, height, width } => write!(f, "{channels}×{height}×{width}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// One layer after shape inference.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    /// `conv1`, `pool1`, `dense1`…; the output layer is the last `dense`.
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// The shape that reaches it.
    pub in_shape: Shape,
    /// The shape it produces.
    pub out_shape: Shape,
    /// Settings for layers with weights; `None` for pooling.
    pub settings: Option<LayerSettings>,
    /// Whether this is the appended output layer.
    pub output: bool,
}

/// A checked network: every layer with its shapes and initial settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NetPlan {
    /// The spec text it was built from.
    pub spec: String,
    /// The input image shape.
    pub input: ImageShape,
    /// Number of classes (the output layer's width).
    pub classes: usize,
    /// The output layer and its loss.
    pub output: OutputKind,
    /// Every layer, input to output, the output layer last.
    pub layers: Vec<LayerPlan>,
}

impl NetPlan {
    /// The layers with weights (conv and dense), input to output: what commands and snapshots index.
    pub fn weighted(&self) -> impl Iterator<Item = &LayerPlan> {
        self.layers.iter().filter(|l| l.settings.is_some())
    }

    /// Floating-point operations of one training step per example in the convolutions and dense layers (a
    /// multiply-add counts two): the forward pass, the weight gradient, and the input gradient of every layer
    /// but the first (nothing needs the image's). Pooling, activations and the update are left out: a small
    /// share, and not what the FMA peak measures.
    pub fn training_flops_per_example(&self) -> f64 {
        let mut flops = 0.0;
        for (index, layer) in self.weighted().enumerate() {
            let in_channels = match layer.in_shape {
                Shape::Map { channels, .. } => channels,
                Shape::Flat(n) => n,
            };
            let macs = match layer.kind {
                LayerKind::Conv { kernel, .. } => (layer.out_shape.len() * in_channels * kernel * kernel) as f64,
                LayerKind::Dense { units } => (layer.in_shape.len() * units) as f64,
                LayerKind::Pool { .. } => 0.0,
            };
            let passes = if index == 0 { 2.0 } else { 3.0 };
            flops += 2.0 * macs * passes;
        }
        flops
    }

    /// Number of layers with weights, the output layer included.
    pub fn weighted_count(&self) -> usize {
        self.weighted().count()
    }
}
