//! The per-layer choices: activation functions (with their curves and slopes), weight inits, the output
//! layer's kind, a layer's live settings, and the shape of an input image.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Leaky ReLU's slope for negative inputs.
pub const LEAKY_RELU_SLOPE: f64 = 0.01;
/// ELU's saturation value for very negative inputs (`α` in `α·(eˣ − 1)`).
pub const ELU_ALPHA: f64 = 1.0;

// ---------------------------------------------------------------------------------------------------------

/// A hidden layer's nonlinearity. Switchable between two training steps without touching the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
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
    /// `ln(1 + eˣ)`, a smooth ReLU: its slope σ(x) never reaches 0, so a unit cannot die.
    Softplus,
    /// No nonlinearity: the layer stays linear.
    Identity,
}

impl Activation {
    /// Every activation, in the order the UI lists them.
    pub const ALL: [Activation; 8] = [
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Gelu,
        Activation::Softplus,
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
            Activation::Softplus => "softplus",
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
            "softplus" => Some(Activation::Softplus),
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
            // ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|), exact without overflow for large |x|.
            Activation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            Activation::Identity => x,
        }
    }

    /// The smallest and largest value `f` can give (`None`: unbounded on that side). A regression output
    /// "pinned" at such an edge gives no gradient to move it back when its target lies beyond.
    pub fn range(self) -> (Option<f64>, Option<f64>) {
        match self {
            Activation::Relu | Activation::Softplus => (Some(0.0), None),
            Activation::Sigmoid => (Some(0.0), Some(1.0)),
            Activation::Tanh => (Some(-1.0), Some(1.0)),
            Activation::Elu => (Some(-ELU_ALPHA), None),
            // GELU's minimum, x·Φ(x) at x ≈ −0.7518.
            Activation::Gelu => (Some(-0.169_971), None),
            Activation::LeakyRelu | Activation::Identity => (None, None),
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
            Activation::Softplus => sigmoid(x),
            Activation::Identity => 1.0,
        }
    }

    /// The largest slope of an activation that saturates (sigmoid 0.25 and tanh 1, both at z = 0), or `None`
    /// for one whose slope does not fade to zero on both sides.
    pub fn peak_slope(self) -> Option<f32> {
        match self {
            Activation::Sigmoid => Some(0.25),
            Activation::Tanh => Some(1.0),
            Activation::Relu
            | Activation::LeakyRelu
            | Activation::Elu
            | Activation::Gelu
            | Activation::Softplus
            | Activation::Identity => None,
        }
    }

    /// The initialisation that keeps activations at a healthy scale for this nonlinearity:
    /// He for the ReLU family, Xavier (Glorot) for the symmetric, saturating ones.
    pub fn default_init(self) -> Init {
        match self {
            Activation::Relu | Activation::LeakyRelu | Activation::Elu | Activation::Gelu | Activation::Softplus => {
                Init::He
            }
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

    /// Parses `he`, `xavier`, `uniform` or `normal:SIGMA` (0 < SIGMA ≤ [`MAX_INIT_STD`]).
    pub fn parse(text: &str) -> Option<Init> {
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "he" | "kaiming" => Some(Init::He),
            "xavier" | "glorot" => Some(Init::Xavier),
            "uniform" => Some(Init::Uniform),
            _ => {
                let sigma = lower.strip_prefix("normal:")?.parse::<f64>().ok()?;
                (sigma > 0.0 && sigma <= MAX_INIT_STD).then_some(Init::Normal { std: sigma })
            }
        }
    }

    /// A run's init as the window names it: the scheme, or "by activation" when each layer takes its
    /// activation's default.
    pub fn describe(init: Option<Init>) -> String {
        init.map_or_else(|| "by activation".to_owned(), |init| init.to_string())
    }
}

/// The widest normal init accepted: already far past any useful net (the weights' products overflow f32 a few
/// layers in), so a typo such as `1e308` is refused instead of silently building a dead net.
pub const MAX_INIT_STD: f64 = 100.0;

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

/// The output layer and its loss: two heads for classes, two losses for a number (regression).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// Softmax over the classes with cross-entropy loss.
    #[default]
    Softmax,
    /// An independent sigmoid per class with binary cross-entropy against the one-hot target.
    Sigmoid,
    /// Regression: one output (after the output layer's own activation) with mean squared error.
    Mse,
    /// Regression: one output with the Huber loss (δ = 1): squared near the target, linear far from it, so a few
    /// wild targets pull less.
    Huber,
}

impl OutputKind {
    /// Every head, in the order the UI lists them.
    pub const ALL: [OutputKind; 4] = [OutputKind::Softmax, OutputKind::Sigmoid, OutputKind::Mse, OutputKind::Huber];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Softmax => "softmax",
            OutputKind::Sigmoid => "sigmoid",
            OutputKind::Mse => "mse",
            OutputKind::Huber => "huber",
        }
    }

    /// Whether the head predicts a number (one output, a regression loss) rather than classes.
    pub fn is_regression(self) -> bool {
        matches!(self, OutputKind::Mse | OutputKind::Huber)
    }
}

/// The live settings of a layer with weights: what can change between two steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerSettings {
    /// The nonlinearity after the (normalised) pre-activation. Identity on a classifier's output layer,
    /// whose softmax / sigmoid belongs to the loss; a regression head's output activation is a free choice.
    pub activation: Activation,
    /// Whether the bias is added.
    pub bias: bool,
    /// Whether batch-norm runs before the activation.
    pub batch_norm: bool,
    /// How the weights were drawn at reset.
    pub init: Init,
}

/// Channel-first size of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// 1 for grey, 3 for RGB.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// Values per image, `channels × height × width` (saturating; `Dataset::new` rejects overflow).
    pub fn pixels(&self) -> usize {
        self.checked_pixels().unwrap_or(usize::MAX)
    }

    /// Values per image, or `None` when the product overflows.
    pub fn checked_pixels(&self) -> Option<usize> {
        self.channels.checked_mul(self.height)?.checked_mul(self.width)
    }
}

impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}×{}", self.channels, self.height, self.width)
    }
}
