//! The burn module: a CNN built from a checked [`NetPlan`], whose activations, biases and batch-norm switch
//! between two steps without touching the weights, plus its forward pass with taps and its losses.
//!
//! Every layer owns its bias and batch-norm parameters from the start; a switched-off bias or batch-norm is
//! simply skipped in `forward`, gets no gradient, and so stays exactly as it was until it is switched back on.

use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::arch::{
    Activation, ELU_ALPHA, Init, LEAKY_RELU_SLOPE, LayerKind, LayerSettings, NetPlan, OutputKind, Shape,
};
use crate::kernels::{self, Moments, Pointwise, Slope};

/// A regression head's output weights start this much smaller than its init draws them. The hidden ReLU
/// layers' activations are large enough that a Xavier output starts with predictions of standard deviation ≈ 2
/// against standardised targets of 1: a first loss near 5 whose first update throws a ReLU head dead for every
/// input. Started small, the first predictions sit near the targets' mean, with both signs.
pub const REGRESSION_HEAD_INIT_SCALE: f32 = 0.1;

/// Where a convolution's kernel goes: the parts of [`LayerKind::Conv`] the forward pass needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Step between kernel positions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

/// A conv or dense layer with its bias and batch-norm parameters, and the pooling that follows it.
#[derive(Module, Debug)]
pub struct WeightedLayer {
    /// `[filters, in_channels, k, k]`; `None` for a dense layer.
    pub conv_weight: Option<Param<Tensor<4>>>,
    /// `[inputs, units]` (burn's layout, the transpose of PyTorch's); `None` for a conv layer.
    pub dense_weight: Option<Param<Tensor<2>>>,
    /// One bias per output channel or unit; exists even while the bias is off.
    pub bias: Param<Tensor<1>>,
    /// Batch-norm over the output channels or units; exists even while batch-norm is off.
    pub norm: BatchNorm,
    /// The layer's name, e.g. `conv1`.
    #[module(skip)]
    pub name: String,
    /// Stride and padding of a conv layer.
    #[module(skip)]
    pub geometry: ConvGeometry,
    /// The live settings: the next forward pass uses whatever is here.
    #[module(skip)]
    pub settings: LayerSettings,
    /// Max-pool window sizes applied after the activation, in order.
    #[module(skip)]
    pub pools_after: Vec<usize>,
    /// Whether this is the output layer (identity activation; the loss owns softmax / sigmoid).
    #[module(skip)]
    pub output: bool,
}

/// The network: layers with weights in order, each followed by its pooling.
#[derive(Module, Debug)]
pub struct Cnn {
    /// Layers with weights, input to output; the last is the output layer.
    pub layers: Vec<WeightedLayer>,
    /// Max-pool window sizes applied to the input before the first layer.
    #[module(skip)]
    pub input_pools: Vec<usize>,
    /// The output layer's nonlinearity and loss.
    #[module(skip)]
    pub output_kind: OutputKind,
}

/// Pre- and post-activation of every layer with weights, taken during a forward pass.
/// Dense layers are reshaped to `[batch, units, 1, 1]` so one type holds both kinds. Its tensors are values
/// outside the autodiff graph: read, never differentiated (the hooks are how gradients are taken).
#[derive(Debug, Default)]
pub struct Trace {
    /// What each layer received (after the previous layer's pooling; dense layers `[batch, inputs, 1, 1]`).
    pub inputs: Vec<Tensor<4>>,
    /// Each layer's values after the bias and batch-norm (before the activation) and after the activation
    /// (before pooling), or their figures.
    pub layers: Vec<LayerValues>,
    /// With [`Cnn::forward_hooked`]: per layer, a zero leaf added to its post-activation, whose gradient after
    /// a backward pass is ∂loss/∂activation (the sum leaves the graph to the input connected).
    pub hooks: Vec<Hook>,
    hooked: bool,
    /// With [`Cnn::forward_measured`]: layers whose activation has a one-pass op, or is the identity, are measured
    /// in that pass.
    measured: bool,
}

/// A layer's values as a [`Trace`] holds them.
#[derive(Debug)]
// One per layer, moved once into the trace: boxing the tensors would only add allocations.
#[allow(clippy::large_enum_variant)]
pub enum LayerValues {
    /// The tensors themselves.
    Kept { pre: Tensor<4>, post: Tensor<4> },
    /// Measured in the activation's pass (which overwrote the pre-activations, or never stored the activations
    /// whole): the layer's figures, and its `[batch, units, height, width]`.
    Measured { moments: Moments, dims: [usize; 4] },
}

/// A layer's pre-activation as [`activate_traced`] gives it: kept, or measured with the activations.
enum PreActivation {
    Kept(Tensor<4>),
    Measured { moments: Moments, dims: [usize; 4] },
}

impl Trace {
    /// Adds a layer's values: the activations are kept where the pre-activations are.
    fn push(&mut self, pre: PreActivation, post: Tensor<4>) {
        self.layers.push(match pre {
            PreActivation::Kept(pre) => LayerValues::Kept { pre, post },
            PreActivation::Measured { moments, dims } => LayerValues::Measured { moments, dims },
        });
    }
}

/// A zero leaf added to one layer's post-activation: conv layers `[batch, c, h, w]`, dense `[batch, units]`.
#[derive(Debug, Clone)]
pub enum Hook {
    Map(Tensor<4>),
    Flat(Tensor<2>),
}

/// Draws `count` weights for a layer with the given fans, reproducibly from `rng`.
fn draw_weights(init: Init, fan_in: usize, fan_out: usize, count: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let fan_in = fan_in.max(1) as f64;
    let fan_out = fan_out.max(1) as f64;
    if init == Init::Uniform {
        let bound = 1.0 / fan_in.sqrt();
        return match Uniform::new(-bound, bound) {
            Ok(dist) => (0..count).map(|_| dist.sample(rng) as f32).collect(),
            Err(_) => vec![0.0; count],
        };
    }
    match Normal::new(0.0, init.variance(fan_in, fan_out).sqrt()) {
        Ok(dist) => (0..count).map(|_| dist.sample(rng) as f32).collect(),
        // Init::parse only admits a positive, finite σ; a zero net is the harmless answer to anything else.
        Err(_) => vec![0.0; count],
    }
}

impl Cnn {
    /// Builds the network for `plan`, drawing every weight from a generator seeded with `seed` (so a seed
    /// gives the same net on every backend and thread), biases at zero, batch-norm at identity.
    pub fn new(plan: &NetPlan, seed: u64, device: &Device) -> Cnn {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut input_pools = Vec::new();
        let mut layers: Vec<WeightedLayer> = Vec::new();
        for layer in &plan.layers {
            let settings = layer.settings;
            match (layer.kind, settings) {
                (LayerKind::Pool { size }, _) => match layers.last_mut() {
                    Some(previous) => previous.pools_after.push(size),
                    None => input_pools.push(size),
                },
                (LayerKind::Conv { filters, kernel, padding, stride }, Some(settings)) => {
                    let in_channels = match layer.in_shape {
                        Shape::Map { channels, .. } => channels,
                        Shape::Flat(n) => n,
                    };
                    let shape = [filters, in_channels, kernel, kernel];
                    let count = shape.iter().product();
                    let values = draw_weights(
                        settings.init,
                        in_channels * kernel * kernel,
                        filters * kernel * kernel,
                        count,
                        &mut rng,
                    );
                    let weight = Tensor::<4>::from_data(TensorData::new(values, shape), device);
                    layers.push(WeightedLayer {
                        conv_weight: Some(Param::from_tensor(weight)),
                        dense_weight: None,
                        bias: Param::from_tensor(Tensor::zeros([filters], device)),
                        norm: BatchNormConfig::new(filters).init(device),
                        name: layer.name.clone(),
                        geometry: ConvGeometry { stride, padding },
                        settings,
                        pools_after: Vec::new(),
                        output: layer.output,
                    });
                }
                (LayerKind::Dense { units }, Some(settings)) => {
                    let inputs = layer.in_shape.len();
                    let mut values = draw_weights(settings.init, inputs, units, inputs * units, &mut rng);
                    if layer.output && plan.output.is_regression() {
                        values.iter_mut().for_each(|w| *w *= REGRESSION_HEAD_INIT_SCALE);
                    }
                    let weight = Tensor::<2>::from_data(TensorData::new(values, [inputs, units]), device);
                    layers.push(WeightedLayer {
                        conv_weight: None,
                        dense_weight: Some(Param::from_tensor(weight)),
                        bias: Param::from_tensor(Tensor::zeros([units], device)),
                        norm: BatchNormConfig::new(units).init(device),
                        name: layer.name.clone(),
                        geometry: ConvGeometry { stride: 1, padding: 0 },
                        settings,
                        pools_after: Vec::new(),
                        output: layer.output,
                    });
                }
                // A conv or dense layer always has settings in a plan; nothing to build otherwise.
                (LayerKind::Conv { .. } | LayerKind::Dense { .. }, None) => {}
            }
        }
        Cnn { layers, input_pools, output_kind: plan.output }
    }

    /// Logits `[batch, classes]` for images `[batch, channels, height, width]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_impl(images, None)
    }

    /// Logits plus every layer's pre- and post-activation.
    pub fn forward_traced(&self, images: Tensor<4>) -> (Tensor<2>, Trace) {
        let mut trace = Trace::default();
        let logits = self.forward_impl(images, Some(&mut trace));
        (logits, trace)
    }

    /// Logits plus a trace in which each layer whose activation has a one-pass op, or is the identity, was measured
    /// in that pass ([`LayerValues::Measured`]) instead of kept: a statistics step without a copy of those
    /// pre-activations.
    pub fn forward_measured(&self, images: Tensor<4>) -> (Tensor<2>, Trace) {
        let mut trace = Trace { measured: true, ..Trace::default() };
        let logits = self.forward_impl(images, Some(&mut trace));
        (logits, trace)
    }

    /// Logits plus a trace whose [`Trace::hooks`] give each layer's activation gradient after a backward pass
    /// (on an autodiff device).
    pub fn forward_hooked(&self, images: Tensor<4>) -> (Tensor<2>, Trace) {
        let mut trace = Trace { hooked: true, ..Trace::default() };
        let logits = self.forward_impl(images, Some(&mut trace));
        (logits, trace)
    }

    fn forward_impl(&self, images: Tensor<4>, mut trace: Option<&mut Trace>) -> Tensor<2> {
        let mut map = pool_all(images, &self.input_pools);
        let mut flat: Option<Tensor<2>> = None;
        for layer in &self.layers {
            let settings = layer.settings;
            let bias = settings.bias.then(|| layer.bias.val());
            if let Some(weight) = &layer.conv_weight {
                if let Some(trace) = trace.as_deref_mut() {
                    trace.inputs.push(map.clone().inner());
                }
                map = layer.conv_forward(map, weight.val(), bias, trace.as_deref_mut());
            } else if let Some(weight) = &layer.dense_weight {
                let input = match flat.take() {
                    Some(x) => x,
                    None => map.clone().flatten::<2>(1, 3),
                };
                if let Some(trace) = trace.as_deref_mut() {
                    trace.inputs.push(traced(input.clone(), kernels::as_maps(&input.dims())));
                }
                let pre = kernels::linear(input, weight.val(), bias);
                let pre = if settings.batch_norm && !layer.output { layer.norm.forward(pre) } else { pre };
                // A classifier's output layer is identity (its plan says so); a regression head's is the user's choice.
                let (mut post, traced_pre) = match trace.as_deref() {
                    Some(trace) => {
                        let measure = trace.measured && !trace.hooked;
                        let (post, pre) = activate_traced(settings.activation, pre, measure);
                        (post, Some(pre))
                    }
                    None => (apply_activation(settings.activation, pre), None),
                };
                if let (Some(trace), Some(pre)) = (trace.as_deref_mut(), traced_pre) {
                    if trace.hooked {
                        let leaf = Tensor::<2>::zeros(post.dims(), &post.device()).require_grad();
                        post = post + leaf.clone();
                        trace.hooks.push(Hook::Flat(leaf));
                    }
                    trace.push(pre, traced(post.clone(), kernels::as_maps(&post.dims())));
                }
                flat = Some(post);
            }
        }
        // A plan always ends with its dense output layer, so `flat` is set; flattening keeps this total.
        flat.unwrap_or_else(|| map.flatten::<2>(1, 3))
    }

    /// The loss of `logits` against one-hot `targets` `[batch, classes]`: softmax cross-entropy, or binary
    /// cross-entropy on per-class sigmoids (averaged over every element, as PyTorch does). For a regression
    /// head, `logits` are the outputs and `targets` the (scaled) numbers, both `[batch, 1]`: MSE, or Huber.
    pub fn loss(&self, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        match self.output_kind {
            OutputKind::Mse => logits.sub(targets).square().mean(),
            OutputKind::Huber => {
                // ½·min(|d|, 1)² + (|d| − min(|d|, 1)): ½d² within δ = 1, |d| − ½ beyond, one smooth formula.
                let distance = logits.sub(targets).abs();
                let near = distance.clone().clamp_max(1.0);
                near.clone().square().mul_scalar(0.5).add(distance).sub(near).mean()
            }
            OutputKind::Softmax => activation::log_softmax(logits, 1).mul(targets).sum_dim(1).mean().neg(),
            OutputKind::Sigmoid => {
                // max(z, 0) − z·t + log(1 + e^−|z|): stable for large |z|.
                let stable_tail = logits.clone().abs().neg().exp().log1p();
                activation::relu(logits.clone()).sub(logits.mul(targets)).add(stable_tail).mean()
            }
        }
    }

    /// Class probabilities for `logits`: softmax, or an independent sigmoid per class (a regression head: the
    /// outputs as they are).
    pub fn probabilities(&self, logits: Tensor<2>) -> Tensor<2> {
        match self.output_kind {
            OutputKind::Softmax => activation::softmax(logits, 1),
            OutputKind::Sigmoid => activation::sigmoid(logits),
            // A regression head's outputs are its predictions.
            OutputKind::Mse | OutputKind::Huber => logits,
        }
    }

    /// The live settings of every layer with weights.
    pub fn settings(&self) -> Vec<LayerSettings> {
        self.layers.iter().map(|l| l.settings).collect()
    }
}

impl WeightedLayer {
    /// A conv layer from its input: convolution, batch-norm, activation and pooling, traced as `trace` asks. A
    /// ReLU layer without batch-norm whose pre-activations nothing needs whole — an untraced pass, or a statistics
    /// step that only measures them — runs its first pool inside the convolution's op, and its ReLU after the
    /// pools (see [`activate_and_pool`]); a statistics step measures it inside that op too.
    fn conv_forward(
        &self,
        map: Tensor<4>,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        trace: Option<&mut Trace>,
    ) -> Tensor<4> {
        let (settings, g) = (self.settings, self.geometry);
        let geometry = [g.stride, g.padding];
        if settings.batch_norm || settings.activation != Activation::Relu {
            return self.conv_unfused(map, weight, bias, trace);
        }
        let (first, rest) = match self.pools_after.split_first() {
            Some((&first, rest)) => (Some(first), rest),
            None => (None, &[][..]),
        };
        let after_pools = |y| apply_activation(Activation::Relu, pool_all(y, rest));
        match (trace.as_deref().map(|trace| trace.measured && !trace.hooked), trace) {
            (None, _) => match first {
                Some(first) => after_pools(kernels::conv2d_pooled(map, weight, bias, geometry, first)),
                None => self.conv_unfused(map, weight, bias, None),
            },
            (Some(true), Some(trace)) => {
                match kernels::conv2d_measured((map, weight, bias), geometry, first, Pointwise::Relu) {
                    Ok((y, moments, dims)) => {
                        trace.layers.push(LayerValues::Measured { moments, dims });
                        after_pools(y)
                    }
                    Err(pre) => activate_and_pool(self, *pre, Some(trace)),
                }
            }
            // Traced whole, or hooked: the pre-activations are kept.
            (_, trace) => self.conv_unfused(map, weight, bias, trace),
        }
    }

    /// The convolution as its own op, then batch-norm, the activation and the pools.
    fn conv_unfused(
        &self,
        map: Tensor<4>,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        trace: Option<&mut Trace>,
    ) -> Tensor<4> {
        let g = self.geometry;
        let pre = kernels::conv2d(map, weight, bias, g.stride, g.padding);
        let pre = if self.settings.batch_norm { self.norm.forward(pre) } else { pre };
        activate_and_pool(self, pre, trace)
    }

    /// The weights as one flat tensor, outside the autodiff graph.
    pub fn flat_weight(&self) -> Option<Tensor<1>> {
        match (&self.conv_weight, &self.dense_weight) {
            (Some(w), _) => Some(w.val().inner().flatten::<1>(0, 3)),
            (None, Some(w)) => Some(w.val().inner().flatten::<1>(0, 1)),
            (None, None) => None,
        }
    }

    /// Fan-in and fan-out, as the initialisation schemes count them.
    pub fn fans(&self) -> (usize, usize) {
        match self.weight_shape().as_slice() {
            [filters, in_channels, kh, kw] => (in_channels * kh * kw, filters * kh * kw),
            [inputs, units] => (*inputs, *units),
            _ => (1, 1),
        }
    }

    /// The weight tensor as a rank-erased value: conv weights keep their 4-D shape, dense weights are 2-D.
    pub fn weight_shape(&self) -> Vec<usize> {
        match (&self.conv_weight, &self.dense_weight) {
            (Some(w), _) => w.val().dims().to_vec(),
            (None, Some(w)) => w.val().dims().to_vec(),
            (None, None) => Vec::new(),
        }
    }
}

fn pool_all(mut x: Tensor<4>, pools: &[usize]) -> Tensor<4> {
    for &size in pools {
        x = kernels::max_pool2d(x, size);
    }
    x
}

/// The project's one-pass op for `act`, where its slope follows from its output.
fn pointwise_of(act: Activation) -> Option<Pointwise> {
    match act {
        Activation::Relu => Some(Pointwise::Relu),
        Activation::Sigmoid => Some(Pointwise::Sigmoid),
        Activation::Tanh => Some(Pointwise::Tanh),
        Activation::LeakyRelu => Some(Pointwise::LeakyRelu(LEAKY_RELU_SLOPE as f32)),
        Activation::Elu => Some(Pointwise::Elu(ELU_ALPHA as f32)),
        Activation::Gelu | Activation::Softplus | Activation::Identity => None,
    }
}

/// A conv layer's activation, traced as `trace` asks, then its pooling. ReLU commutes with max-pooling bit for
/// bit (max(0, max z) is the max of max(0, z), and a window whose winner differs has slope 0 either way), so
/// where nothing needs its activations whole — an untraced pass, or a statistics step that measures them aside —
/// it runs on the pooled map: a quarter of the values or fewer, forward and backward.
fn activate_and_pool(layer: &WeightedLayer, pre: Tensor<4>, trace: Option<&mut Trace>) -> Tensor<4> {
    let (act, pools) = (layer.settings.activation, layer.pools_after.as_slice());
    let after_pooling = |pre| apply_activation(Activation::Relu, pool_all(pre, pools));
    let Some(trace) = trace else {
        return if act == Activation::Relu && !pools.is_empty() {
            after_pooling(pre)
        } else {
            pool_all(apply_activation(act, pre), pools)
        };
    };
    let measure = trace.measured && !trace.hooked;
    if measure && act == Activation::Relu && !pools.is_empty() {
        let dims = kernels::as_maps(&pre.dims());
        if let Some(moments) = kernels::measure_activated(Pointwise::Relu, &pre, dims) {
            trace.layers.push(LayerValues::Measured { moments, dims });
            return after_pooling(pre);
        }
    }
    let (mut post, pre) = activate_traced(act, pre, measure);
    if trace.hooked {
        let leaf = Tensor::<4>::zeros(post.dims(), &post.device()).require_grad();
        post = post + leaf.clone();
        trace.hooks.push(Hook::Map(leaf));
    }
    trace.push(pre, post.clone().inner());
    pool_all(post, pools)
}

/// Applies `act` to a traced layer's `pre` (`[batch, units, height, width]`, or a dense layer's `[batch, units]`);
/// returns the activation and what the trace keeps of `pre`. With `measure`, where `act` has a one-pass op on
/// flex (or is the identity), the layer is measured in that pass; else `pre` is kept (a copy, so the activation
/// cannot work in place).
fn activate_traced<const D: usize>(act: Activation, pre: Tensor<D>, measure: bool) -> (Tensor<D>, PreActivation) {
    let dims = kernels::as_maps(&pre.dims());
    // An identity layer (a classifier's output) is its own activation: measured where it lies.
    if let (true, Activation::Identity) = (measure, act)
        && let Some(moments) = kernels::measure_identity(&pre, dims)
    {
        return (pre, PreActivation::Measured { moments, dims });
    }
    let mut pre = pre;
    if let (true, Some(f)) = (measure, pointwise_of(act)) {
        match kernels::pointwise_measured(f, pre) {
            Ok((post, moments)) => return (post, PreActivation::Measured { moments, dims }),
            Err(untouched) => pre = *untouched,
        }
    }
    (apply_activation(act, pre.clone()), PreActivation::Kept(traced(pre, dims)))
}

/// What a trace keeps of a tensor: its values as `dims`, outside the autodiff graph (a reshape inside it would
/// be one more node for the backward pass to walk, on every statistics step).
fn traced<const D: usize>(tensor: Tensor<D>, dims: [usize; 4]) -> Tensor<4> {
    tensor.inner().reshape(dims)
}

/// f′ of `act` in the form the statistics pass takes, from z and a = f(z).
pub fn slope_of(act: Activation) -> Slope {
    match act {
        // f′ from f(z): the one-pass op's own slope, the one its backward applies (each of these has one).
        Activation::Relu | Activation::LeakyRelu | Activation::Sigmoid | Activation::Tanh | Activation::Elu => {
            pointwise_of(act).map_or(Slope::One, Pointwise::slope)
        }
        Activation::Gelu => Slope::Other(|z, _| Activation::Gelu.df(f64::from(z)) as f32),
        // softplus′ = σ(z) = 1 − e^(−f(z)): again cheaper from the output.
        Activation::Softplus => Slope::Other(|_, a| 1.0 - (-a).exp()),
        Activation::Identity => Slope::One,
    }
}

/// Applies `act`: the project's one-pass op on flex where there is one, else burn's (their gradients are what
/// training uses).
pub fn apply_activation<const D: usize>(act: Activation, x: Tensor<D>) -> Tensor<D> {
    match pointwise_of(act) {
        Some(f) => kernels::pointwise(f, x, |x| burn_activation(act, x)),
        None => burn_activation(act, x),
    }
}

/// burn's own op for `act`.
fn burn_activation<const D: usize>(act: Activation, x: Tensor<D>) -> Tensor<D> {
    match act {
        Activation::Relu => activation::relu(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::Tanh => activation::tanh(x),
        Activation::LeakyRelu => activation::leaky_relu(x, LEAKY_RELU_SLOPE),
        Activation::Elu => activation::elu(x, ELU_ALPHA),
        Activation::Gelu => activation::gelu(x),
        Activation::Softplus => activation::softplus(x, 1.0),
        Activation::Identity => x,
    }
}
