//! The architecture spec: its grammar, the activation / init / output choices, and the shape-inference pass
//! that turns a spec into a checked layer plan. Plain data, no burn and no egui, so the UI can validate a
//! spec as the user types it.
//!
//! # Grammar
//! A spec is a list of layers separated by `,` or `->`; each layer is a keyword followed by its arguments:
//!
//! ```text
//! conv FILTERS KxK [pad P] [stride S] [OPTION…]   e.g. conv 8 5x5 pad 2
//! pool N          (max pooling, window and stride N)
//! dense UNITS [OPTION…]
//! OPTION := ACTIVATION | bias | nobias | bn | nobn | init=he|xavier|uniform|normal:SIGMA
//! ```
//! `pad` defaults to "same" (`K / 2`). The output layer (`dense CLASSES`, softmax or sigmoid) is appended
//! by the plan, so a spec only lists the hidden layers. A spec may also be a preset name such as `ref-mnist`.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::data::ImageShape;

/// Leaky ReLU's slope for negative inputs.
pub const LEAKY_RELU_SLOPE: f64 = 0.01;
/// ELU's saturation value for very negative inputs (`α` in `α·(eˣ − 1)`).
pub const ELU_ALPHA: f64 = 1.0;

/// Named architectures a user can pass instead of a spec string.
pub const NAMED_ARCHS: &[(&str, &str, &str)] = &[
    (
        "ref-mnist",
        "conv 8 5x5 pad 2, pool 2, conv 16 5x5 pad 2, pool 2",
        "the reference net: two 5×5 convolutions with pooling, then the dense output layer",
    ),
    (
        "deep6",
        "conv 8 3x3, conv 8 3x3, pool 2, conv 16 3x3, conv 16 3x3, pool 2, conv 32 3x3, conv 32 3x3, pool 2",
        "six 3×3 convolutions: deep enough for gradients to vanish through sigmoid layers",
    ),
    (
        "wide",
        "conv 32 5x5 pad 2, pool 2, conv 64 5x5 pad 2, pool 2",
        "ref-mnist with 32 and 64 filters, so convolution dominates the cost",
    ),
    ("mlp", "dense 128", "no convolutions: one hidden dense layer of 128 units"),
];

/// Largest number of values one layer may produce per example: far beyond what this tool can show, small
/// enough that a typo cannot ask for gigabytes.
pub const MAX_LAYER_VALUES: usize = 1 << 24;
/// Largest number of weights in one layer, for the same reason.
pub const MAX_LAYER_WEIGHTS: usize = 1 << 26;

/// The default architecture.
pub const DEFAULT_ARCH: &str = "ref-mnist";

// ---------------------------------------------------------------------------------------------------------

/// A hidden layer's nonlinearity. Switchable between two training steps without touching the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `x` for `x > 0`, else [`LEAKY_RELU_SLOPE`]`·x`.
    LeakyRelu,
    /// `x` for `x > 0`, else [`ELU_ALPHA`]`·(eˣ − 1)`.
    Elu,
    /// `x·Φ(x)`, the Gaussian error linear unit (exact, erf-based).
    Gelu,
    /// No nonlinearity: the layer stays linear.
    Identity,
}

impl Activation {
    /// Every activation, in the order the UI lists them.
    pub const ALL: [Activation; 7] = [
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Gelu,
        Activation::Identity,
    ];

    /// The name used on the command line, in specs and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::LeakyRelu => "leaky-relu",
            Activation::Elu => "elu",
            Activation::Gelu => "gelu",
            Activation::Identity => "identity",
        }
    }

    /// Parses a name as [`Activation::name`] writes it (also `leakyrelu`, `leaky_relu`, `linear`, `none`).
    pub fn parse(name: &str) -> Option<Activation> {
        match name.to_ascii_lowercase().as_str() {
            "relu" => Some(Activation::Relu),
            "sigmoid" => Some(Activation::Sigmoid),
            "tanh" => Some(Activation::Tanh),
            "leaky-relu" | "leakyrelu" | "leaky_relu" => Some(Activation::LeakyRelu),
            "elu" => Some(Activation::Elu),
            "gelu" => Some(Activation::Gelu),
            "identity" | "linear" | "none" => Some(Activation::Identity),
            _ => None,
        }
    }

    /// `f(x)`, computed in f64 on the host (the UI draws it; tests check it against burn's kernels).
    pub fn f(self, x: f64) -> f64 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    LEAKY_RELU_SLOPE * x
                }
            }
            Activation::Elu => {
                if x > 0.0 {
                    x
                } else {
                    ELU_ALPHA * x.exp_m1()
                }
            }
            Activation::Gelu => x * std_normal_cdf(x),
            Activation::Identity => x,
        }
    }

    /// `f′(x)`. At ReLU's kink the derivative is taken as 0, as the autodiff kernels do.
    pub fn df(self, x: f64) -> f64 {
        match self {
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            Activation::Tanh => 1.0 - x.tanh().powi(2),
            Activation::LeakyRelu => {
                if x > 0.0 {
                    1.0
                } else {
                    LEAKY_RELU_SLOPE
                }
            }
            Activation::Elu => {
                if x > 0.0 {
                    1.0
                } else {
                    ELU_ALPHA * x.exp()
                }
            }
            Activation::Gelu => std_normal_cdf(x) + x * std_normal_pdf(x),
            Activation::Identity => 1.0,
        }
    }

    /// The initialisation that keeps activations at a healthy scale for this nonlinearity:
    /// He for the ReLU family, Xavier (Glorot) for the symmetric, saturating ones.
    pub fn default_init(self) -> Init {
        match self {
            Activation::Relu | Activation::LeakyRelu | Activation::Elu | Activation::Gelu => Init::He,
            Activation::Sigmoid | Activation::Tanh | Activation::Identity => Init::Xavier,
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn std_normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn std_normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7): plenty for drawing a curve.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x >= 0.0 { y } else { -y }
}

// ---------------------------------------------------------------------------------------------------------

/// How a layer's weights are drawn at reset. Biases always start at zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// Kaiming normal, std `√(2 / fan_in)`: keeps ReLU activations at unit scale.
    He,
    /// Glorot normal, std `√(2 / (fan_in + fan_out))`: suits sigmoid and tanh.
    Xavier,
    /// Uniform in `±1/√fan_in` (PyTorch's default).
    Uniform,
    /// Normal with a fixed standard deviation, whatever the layer's size.
    Normal {
        /// The standard deviation σ.
        std: f64,
    },
}

impl Init {
    /// The variance of the weights this scheme draws for a layer with the given fans.
    pub fn variance(self, fan_in: f64, fan_out: f64) -> f64 {
        let fan_in = fan_in.max(1.0);
        match self {
            Init::He => 2.0 / fan_in,
            Init::Xavier => 2.0 / (fan_in + fan_out.max(1.0)),
            // Uniform in ±b has variance b²/3.
            Init::Uniform => 1.0 / (3.0 * fan_in),
            Init::Normal { std } => std * std,
        }
    }

    /// Parses `he`, `xavier`, `uniform` or `normal:SIGMA`.
    pub fn parse(text: &str) -> Option<Init> {
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "he" | "kaiming" => Some(Init::He),
            "xavier" | "glorot" => Some(Init::Xavier),
            "uniform" => Some(Init::Uniform),
            _ => {
                let sigma = lower.strip_prefix("normal:")?.parse::<f64>().ok()?;
                (sigma.is_finite() && sigma > 0.0).then_some(Init::Normal { std: sigma })
            }
        }
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::He => f.write_str("he"),
            Init::Xavier => f.write_str("xavier"),
            Init::Uniform => f.write_str("uniform"),
            Init::Normal { std } => write!(f, "normal:{std}"),
        }
    }
}

/// The output layer and its loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// Softmax over the classes with cross-entropy loss.
    #[default]
    Softmax,
    /// An independent sigmoid per class with binary cross-entropy against the one-hot target.
    Sigmoid,
}

impl OutputKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Softmax => "softmax",
            OutputKind::Sigmoid => "sigmoid",
        }
    }
}

// ---------------------------------------------------------------------------------------------------------

/// What one token group of the spec asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerKind {
    /// A 2-D convolution with square kernels.
    Conv {
        /// Output channels.
        filters: usize,
        /// Kernel side.
        kernel: usize,
        /// Zero padding on every side.
        padding: usize,
        /// Step between kernel positions.
        stride: usize,
    },
    /// Max pooling with a square window and the same stride.
    Pool {
        /// Window side and stride.
        size: usize,
    },
    /// A fully connected layer (the input is flattened first).
    Dense {
        /// Output units.
        units: usize,
    },
}

/// One layer as written in the spec, before shape inference.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// What the layer computes.
    pub kind: LayerKind,
    /// An activation written in the spec, overriding the run's default.
    pub activation: Option<Activation>,
    /// `bias` / `nobias` written in the spec.
    pub bias: Option<bool>,
    /// `bn` / `nobn` written in the spec.
    pub batch_norm: Option<bool>,
    /// `init=…` written in the spec.
    pub init: Option<Init>,
    /// Byte range of this layer in the spec text, for error carets.
    pub span: Range<usize>,
}

/// A parsed spec: the text it came from and its layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchSpec {
    /// The spec as written (a preset name is expanded to its spec).
    pub text: String,
    /// The layers, input to output, without the appended output layer.
    pub layers: Vec<LayerSpec>,
}

/// A spec that does not parse or does not fit the input, with the offending part of the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecError {
    /// The spec text the span points into.
    pub text: String,
    /// Byte range of the bad token or layer.
    pub span: Range<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "architecture spec: {}", self.message)?;
        writeln!(f, "  {}", self.text)?;
        let start = self.text.get(..self.span.start).map_or(0, |s| s.chars().count());
        let width = self.text.get(self.span.clone()).map_or(1, |s| s.chars().count()).max(1);
        write!(f, "  {}{}", " ".repeat(start), "^".repeat(width))
    }
}

impl SpecError {
    fn new(text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        SpecError { text: text.to_string(), span, message: message.into() }
    }
}

/// Expands a preset name to its spec text; any other text is returned as it is.
pub fn resolve_arch(name_or_spec: &str) -> &str {
    let trimmed = name_or_spec.trim();
    NAMED_ARCHS.iter().find(|(name, _, _)| name.eq_ignore_ascii_case(trimmed)).map_or(name_or_spec, |(_, spec, _)| spec)
}

/// A word of the spec with its byte range.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    span: (usize, usize),
}

impl Token<'_> {
    fn range(&self) -> Range<usize> {
        self.span.0..self.span.1
    }
}

/// Splits `text` into layers (by `,` or `->`) and each layer into whitespace-separated words, keeping offsets.
fn tokenize(text: &str) -> Vec<(Range<usize>, Vec<Token<'_>>)> {
    let bytes = text.as_bytes();
    let mut segments = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            segments.push(start..i);
            start = i + 1;
        } else if bytes[i] == b'-' && bytes.get(i + 1) == Some(&b'>') {
            segments.push(start..i);
            start = i + 2;
            i += 1;
        }
        i += 1;
    }
    segments.push(start..text.len());
    segments
        .into_iter()
        .map(|segment| {
            let mut words = Vec::new();
            let mut word_start = None;
            for (offset, ch) in text[segment.clone()].char_indices() {
                let at = segment.start + offset;
                if ch.is_whitespace() {
                    if let Some(ws) = word_start.take() {
                        words.push(Token { text: &text[ws..at], span: (ws, at) });
                    }
                } else if word_start.is_none() {
                    word_start = Some(at);
                }
            }
            if let Some(ws) = word_start {
                words.push(Token { text: &text[ws..segment.end], span: (ws, segment.end) });
            }
            let span = match (words.first(), words.last()) {
                (Some(first), Some(last)) => first.span.0..last.span.1,
                _ => segment,
            };
            (span, words)
        })
        .collect()
}

fn parse_count(text: &str, token: Token<'_>, what: &str) -> Result<usize, SpecError> {
    match token.text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(SpecError::new(
            text,
            token.range(),
            format!("expected {what} (a whole number ≥ 1), found `{}`", token.text),
        )),
    }
}

fn parse_kernel(text: &str, token: Token<'_>) -> Result<usize, SpecError> {
    let bad = || {
        SpecError::new(
            text,
            token.range(),
            format!("expected a square kernel size such as `5x5`, found `{}`", token.text),
        )
    };
    let lower = token.text.to_ascii_lowercase();
    let (a, b) = lower.split_once('x').ok_or_else(bad)?;
    match (a.parse::<usize>(), b.parse::<usize>()) {
        (Ok(a), Ok(b)) if a == b && a > 0 => Ok(a),
        (Ok(a), Ok(b)) if a > 0 && b > 0 => Err(SpecError::new(
            text,
            token.range(),
            format!("kernel `{}` is not square: only KxK kernels are supported", token.text),
        )),
        _ => Err(bad()),
    }
}

impl ArchSpec {
    /// Parses a spec string or a preset name ([`NAMED_ARCHS`]).
    pub fn parse(name_or_spec: &str) -> Result<ArchSpec, SpecError> {
        let text = resolve_arch(name_or_spec);
        let mut layers = Vec::new();
        for (span, words) in tokenize(text) {
            let Some((keyword, args)) = words.split_first() else {
                if text.trim().is_empty() {
                    return Err(SpecError::new(
                        text,
                        0..text.len(),
                        "the spec is empty: list at least one layer, e.g. `conv 8 5x5, pool 2`, or a preset name such as `ref-mnist`",
                    ));
                }
                return Err(SpecError::new(text, span, "empty layer between separators"));
            };
            let mut args = args.iter().copied().peekable();
            let missing =
                |what: &str| SpecError::new(text, keyword.range(), format!("`{}` needs {what}", keyword.text));
            let mut kind = match keyword.text.to_ascii_lowercase().as_str() {
                "conv" => {
                    let filters =
                        args.next().ok_or_else(|| missing("a filter count and a kernel, e.g. `conv 8 5x5`"))?;
                    let filters = parse_count(text, filters, "a filter count")?;
                    let kernel =
                        args.next().ok_or_else(|| missing("a kernel size after the filter count, e.g. `5x5`"))?;
                    let kernel = parse_kernel(text, kernel)?;
                    LayerKind::Conv { filters, kernel, padding: kernel / 2, stride: 1 }
                }
                "pool" | "maxpool" => {
                    let size = args.next().ok_or_else(|| missing("a window size, e.g. `pool 2`"))?;
                    LayerKind::Pool { size: parse_count(text, size, "a window size")? }
                }
                "dense" | "fc" | "linear" => {
                    let units = args.next().ok_or_else(|| missing("a unit count, e.g. `dense 64`"))?;
                    LayerKind::Dense { units: parse_count(text, units, "a unit count")? }
                }
                other => {
                    let hint = if NAMED_ARCHS.iter().any(|(n, _, _)| n.starts_with(other)) {
                        format!(
                            " (did you mean the preset `{}`?)",
                            NAMED_ARCHS.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join("`, `")
                        )
                    } else {
                        String::new()
                    };
                    return Err(SpecError::new(
                        text,
                        keyword.range(),
                        format!("unknown layer `{other}`: expected `conv`, `pool` or `dense`{hint}"),
                    ));
                }
            };
            let mut layer = LayerSpec { kind, activation: None, bias: None, batch_norm: None, init: None, span };
            while let Some(word) = args.next() {
                let lower = word.text.to_ascii_lowercase();
                let is_pool = matches!(kind, LayerKind::Pool { .. });
                match lower.as_str() {
                    "pad" | "stride" => {
                        let LayerKind::Conv { ref mut padding, ref mut stride, .. } = kind else {
                            return Err(SpecError::new(
                                text,
                                word.range(),
                                format!("`{lower}` only applies to `conv` layers"),
                            ));
                        };
                        let value = args.next().ok_or_else(|| {
                            SpecError::new(text, word.range(), format!("`{lower}` needs a number, e.g. `{lower} 1`"))
                        })?;
                        if lower == "pad" {
                            *padding = value.text.parse::<usize>().map_err(|_| {
                                SpecError::new(
                                    text,
                                    value.range(),
                                    format!("expected a padding (a whole number ≥ 0), found `{}`", value.text),
                                )
                            })?;
                        } else {
                            *stride = parse_count(text, value, "a stride")?;
                        }
                        layer.kind = kind;
                    }
                    _ if is_pool => {
                        return Err(SpecError::new(
                            text,
                            word.range(),
                            format!("unexpected `{}`: a pool layer takes only its window size", word.text),
                        ));
                    }
                    "bias" => layer.bias = Some(true),
                    "nobias" => layer.bias = Some(false),
                    "bn" | "batchnorm" => layer.batch_norm = Some(true),
                    "nobn" => layer.batch_norm = Some(false),
                    _ if lower.starts_with("init=") => {
                        let value = &word.text["init=".len()..];
                        layer.init = Some(Init::parse(value).ok_or_else(|| {
                            SpecError::new(
                                text,
                                word.range(),
                                format!("unknown init `{value}`: expected he, xavier, uniform or normal:SIGMA (e.g. normal:0.1)"),
                            )
                        })?);
                    }
                    _ => {
                        layer.activation = Some(Activation::parse(&lower).ok_or_else(|| {
                            SpecError::new(
                                text,
                                word.range(),
                                format!(
                                    "unexpected `{}`: expected pad N, stride N, an activation ({}), bias/nobias, bn/nobn or init=…",
                                    word.text,
                                    Activation::ALL.map(Activation::name).join(", ")
                                ),
                            )
                        })?);
                    }
                }
            }
            layers.push(layer);
        }
        Ok(ArchSpec { text: text.to_string(), layers })
    }

    /// Shape inference: checks every layer against the shape that reaches it and returns the plan with
    /// the output layer appended. Fails with the offending layer underlined, before burn ever sees it.
    pub fn plan(&self, input: ImageShape, classes: usize, defaults: &LayerDefaults) -> Result<NetPlan, SpecError> {
        let text = &self.text;
        let mut shape = Shape::Map { channels: input.channels, height: input.height, width: input.width };
        let mut layers = Vec::new();
        let (mut convs, mut pools, mut denses) = (0, 0, 0);
        for (index, layer) in self.layers.iter().enumerate() {
            let at = |message: String| {
                SpecError::new(
                    text,
                    layer.span.clone(),
                    format!("layer {} `{}`: {message}", index + 1, &text[layer.span.clone()]),
                )
            };
            let in_shape = shape;
            let (name, out_shape) = match (layer.kind, shape) {
                (LayerKind::Conv { filters, kernel, padding, stride }, Shape::Map { channels, height, width }) => {
                    let padded = |side: usize| padding.checked_mul(2).and_then(|p| side.checked_add(p));
                    let (Some(h), Some(w)) = (padded(height), padded(width)) else {
                        return Err(at(format!("padding {padding} is far too large")));
                    };
                    let weights =
                        [filters, channels, kernel, kernel].iter().try_fold(1_usize, |acc, &n| acc.checked_mul(n));
                    if weights.is_none_or(|n| n > MAX_LAYER_WEIGHTS) {
                        return Err(at(format!(
                            "{filters} filters of {kernel}×{kernel} over {channels} channels is too many weights (at most {MAX_LAYER_WEIGHTS})"
                        )));
                    }
                    if h < kernel || w < kernel {
                        return Err(at(format!(
                            "the input here is {in_shape}; a {kernel}×{kernel} kernel with padding {padding} does not fit — use a smaller kernel, more padding, or fewer pooling layers before it"
                        )));
                    }
                    convs += 1;
                    let out = Shape::Map {
                        channels: filters,
                        height: (h - kernel) / stride + 1,
                        width: (w - kernel) / stride + 1,
                    };
                    (format!("conv{convs}"), out)
                }
                (LayerKind::Conv { .. }, Shape::Flat(_)) => {
                    return Err(at(
                        "a convolution cannot follow a dense layer: put every conv and pool before the first dense"
                            .into(),
                    ));
                }
                (LayerKind::Pool { size }, Shape::Map { channels, height, width }) => {
                    if height / size == 0 || width / size == 0 {
                        return Err(at(format!(
                            "the input here is {in_shape}; pooling by {size} would leave {}×{} — remove this pool or use a smaller window",
                            height / size,
                            width / size
                        )));
                    }
                    pools += 1;
                    (format!("pool{pools}"), Shape::Map { channels, height: height / size, width: width / size })
                }
                (LayerKind::Pool { .. }, Shape::Flat(_)) => {
                    return Err(at("pooling needs an image-shaped input; it cannot follow a dense layer".into()));
                }
                (LayerKind::Dense { units }, _) => {
                    if in_shape.len().checked_mul(units).is_none_or(|n| n > MAX_LAYER_WEIGHTS) {
                        return Err(at(format!(
                            "{units} units over {} inputs is too many weights (at most {MAX_LAYER_WEIGHTS}) — pool more before it",
                            in_shape.len()
                        )));
                    }
                    denses += 1;
                    (format!("dense{denses}"), Shape::Flat(units))
                }
            };
            if out_shape.len() > MAX_LAYER_VALUES {
                return Err(at(format!(
                    "its output {out_shape} is too large (at most {MAX_LAYER_VALUES} values per example)"
                )));
            }
            let settings = match layer.kind {
                LayerKind::Pool { .. } => None,
                LayerKind::Conv { .. } | LayerKind::Dense { .. } => {
                    let activation = layer
                        .activation
                        .or_else(|| {
                            defaults.activation_for(layers.iter().filter(|l: &&LayerPlan| l.settings.is_some()).count())
                        })
                        .unwrap_or(defaults.activation);
                    Some(LayerSettings {
                        activation,
                        bias: layer.bias.unwrap_or(defaults.bias),
                        batch_norm: layer.batch_norm.unwrap_or(defaults.batch_norm),
                        init: layer.init.or(defaults.init).unwrap_or_else(|| activation.default_init()),
                    })
                }
            };
            layers.push(LayerPlan { name, kind: layer.kind, in_shape, out_shape, settings, output: false });
            shape = out_shape;
        }
        if let Some(extra) = defaults.layer_activations.get(layers.iter().filter(|l| l.settings.is_some()).count()) {
            return Err(SpecError::new(
                text,
                0..text.len(),
                format!(
                    "{} per-layer activations were given (the first unused is `{extra}`) but the spec has only {} hidden layers with weights",
                    defaults.layer_activations.len(),
                    layers.iter().filter(|l| l.settings.is_some()).count()
                ),
            ));
        }
        denses += 1;
        let output_init = defaults.init.unwrap_or(Init::Xavier);
        layers.push(LayerPlan {
            name: format!("dense{denses}"),
            kind: LayerKind::Dense { units: classes },
            in_shape: shape,
            out_shape: Shape::Flat(classes),
            settings: Some(LayerSettings {
                activation: Activation::Identity,
                bias: defaults.bias,
                batch_norm: false,
                init: output_init,
            }),
            output: true,
        });
        Ok(NetPlan { spec: text.clone(), input, classes, output: defaults.output, layers })
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

/// The live settings of a layer with weights: what can change between two steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerSettings {
    /// The nonlinearity after the (normalised) pre-activation. Always identity on the output layer,
    /// whose softmax / sigmoid belongs to the loss.
    pub activation: Activation,
    /// Whether the bias is added.
    pub bias: bool,
    /// Whether batch-norm runs before the activation.
    pub batch_norm: bool,
    /// How the weights were drawn at reset.
    pub init: Init,
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

    /// Number of layers with weights, the output layer included.
    pub fn weighted_count(&self) -> usize {
        self.weighted().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mnist() -> ImageShape {
        ImageShape { channels: 1, height: 28, width: 28 }
    }

    #[test]
    fn ref_mnist_plans_to_the_reference_shapes() {
        let spec = ArchSpec::parse("ref-mnist").unwrap();
        let plan = spec.plan(mnist(), 10, &LayerDefaults::default()).unwrap();
        let names: Vec<_> = plan.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["conv1", "pool1", "conv2", "pool2", "dense1"]);
        let shapes: Vec<_> = plan.layers.iter().map(|l| l.out_shape.to_string()).collect();
        assert_eq!(shapes, ["8×28×28", "8×14×14", "16×14×14", "16×7×7", "10"]);
        assert_eq!(plan.layers[4].in_shape.len(), 784);
        assert!(plan.layers[4].output);
        assert_eq!(plan.weighted_count(), 3);
        let conv1 = plan.layers[0].settings.unwrap();
        assert_eq!((conv1.activation, conv1.init, conv1.bias), (Activation::Relu, Init::He, true));
    }

    #[test]
    fn options_and_separators_parse() {
        let spec =
            ArchSpec::parse("conv 4 3x3 pad 0 stride 2 tanh nobias bn init=normal:0.5 -> pool 2 -> dense 32 sigmoid")
                .unwrap();
        assert_eq!(spec.layers.len(), 3);
        assert_eq!(spec.layers[0].kind, LayerKind::Conv { filters: 4, kernel: 3, padding: 0, stride: 2 });
        assert_eq!(spec.layers[0].activation, Some(Activation::Tanh));
        assert_eq!(spec.layers[0].bias, Some(false));
        assert_eq!(spec.layers[0].batch_norm, Some(true));
        assert_eq!(spec.layers[0].init, Some(Init::Normal { std: 0.5 }));
        let plan = spec.plan(mnist(), 10, &LayerDefaults::default()).unwrap();
        // (28 - 3) / 2 + 1 = 13, pooled to 6.
        assert_eq!(plan.layers[1].out_shape, Shape::Map { channels: 4, height: 6, width: 6 });
        assert_eq!(plan.layers[2].settings.unwrap().init, Init::Xavier);
    }

    #[test]
    fn too_deep_a_spec_is_rejected_at_the_bad_pool() {
        let text = "conv 8 3x3, pool 2, pool 2, pool 2, pool 2, pool 2";
        let err = ArchSpec::parse(text).unwrap().plan(mnist(), 10, &LayerDefaults::default()).unwrap_err();
        // 28 → 14 → 7 → 3 → 1 → 0: the fifth pool (layer 6) is the bad one.
        assert_eq!(&text[err.span.clone()], "pool 2");
        assert_eq!(err.span.start, text.rfind("pool 2").unwrap());
        let shown = err.to_string();
        assert!(shown.contains("layer 6"), "{shown}");
        assert!(shown.contains("would leave 0×0"), "{shown}");
        assert!(shown.lines().last().unwrap().trim_start().starts_with("^^^^^^"), "{shown}");
    }

    #[test]
    fn bad_tokens_point_at_themselves() {
        for (text, bad, needle) in [
            ("conv 8 5y5", "5y5", "kernel size"),
            ("conv eight 5x5", "eight", "filter count"),
            ("conv 8 5x3", "5x3", "not square"),
            ("conv 8 5x5, blah 3", "blah", "unknown layer"),
            ("conv 8 5x5 swish", "swish", "unexpected `swish`"),
            ("pool 2 relu", "relu", "only its window size"),
            ("dense 10, conv 8 3x3", "conv 8 3x3", "cannot follow a dense"),
            ("conv 8 5x5 init=magic", "init=magic", "unknown init"),
            ("conv 8 29x29 pad 0", "conv 8 29x29 pad 0", "does not fit"),
            ("conv 8 3x3 pad 99999999999999999999", "99999999999999999999", "padding"),
            ("conv 8 3x3 pad 9999999999999999999", "conv 8 3x3 pad 9999999999999999999", "far too large"),
            ("dense 100000000", "dense 100000000", "too many weights"),
            ("conv 100000 3x3", "conv 100000 3x3", "too large"),
        ] {
            let err = ArchSpec::parse(text).and_then(|s| s.plan(mnist(), 10, &LayerDefaults::default())).unwrap_err();
            assert_eq!(&text[err.span.clone()], bad, "{text}: {err}");
            assert!(err.message.contains(needle), "{text}: {err}");
        }
        assert!(ArchSpec::parse("  ").unwrap_err().message.contains("empty"));
    }

    #[test]
    fn per_layer_activations_apply_in_order_and_excess_is_an_error() {
        let defaults = LayerDefaults {
            layer_activations: vec![Activation::Sigmoid, Activation::Tanh],
            ..LayerDefaults::default()
        };
        let plan = ArchSpec::parse("ref-mnist").unwrap().plan(mnist(), 10, &defaults).unwrap();
        let acts: Vec<_> = plan.weighted().map(|l| l.settings.unwrap().activation).collect();
        assert_eq!(acts, [Activation::Sigmoid, Activation::Tanh, Activation::Identity]);
        let too_many = LayerDefaults { layer_activations: vec![Activation::Relu; 3], ..LayerDefaults::default() };
        let err = ArchSpec::parse("ref-mnist").unwrap().plan(mnist(), 10, &too_many).unwrap_err();
        assert!(err.message.contains("only 2 hidden layers"), "{err}");
    }

    #[test]
    fn activation_math_matches_known_values() {
        assert!((Activation::Sigmoid.f(0.0) - 0.5).abs() < 1e-12);
        assert!((Activation::Sigmoid.df(0.0) - 0.25).abs() < 1e-12);
        assert!((Activation::Tanh.df(0.0) - 1.0).abs() < 1e-12);
        assert_eq!(Activation::Relu.df(-1.0), 0.0);
        assert!((Activation::Gelu.f(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((Activation::Elu.f(-1.0) - (-0.632_120_56)).abs() < 1e-6);
        // f′ agrees with a central difference everywhere away from kinks.
        for act in Activation::ALL {
            for x in [-3.0, -0.7, 0.4, 2.5] {
                let h = 1e-5;
                let numeric = (act.f(x + h) - act.f(x - h)) / (2.0 * h);
                assert!((numeric - act.df(x)).abs() < 1e-4, "{act} at {x}: {numeric} vs {}", act.df(x));
            }
            assert_eq!(Activation::parse(act.name()), Some(act));
        }
    }
}
