//! The project's conv and pool kernels against burn's own ops on random inputs: forward values and the
//! gradients of the input, the weights and the bias, for the direct and the im2col + gemm paths; the one-pass
//! activations against burn's.

use burn::tensor::{Device, Distribution, Tensor};
use convscope::kernels::{self, Isa, KernelChoice, Pointwise::Relu};

/// Largest difference relative to the largest magnitude of `expected`.
fn relative_error(actual: Tensor<4>, expected: Tensor<4>) -> f32 {
    let a = actual.into_data().try_to_vec::<f32>().unwrap();
    let e = expected.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), e.len());
    let scale = e.iter().fold(0.0_f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(&e).fold(0.0_f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Runs conv2d with `choice` and with burn's kernels on the same inputs; returns the worst relative error over
/// the output and the three gradients.
fn compare_conv(choice: KernelChoice, shape: [usize; 4], filters: usize, kernel: usize, pad: usize, bias: bool) -> f32 {
    compare_strided_conv(choice, shape, [filters, kernel], [pad, 1], bias)
}

/// [`compare_conv`] with a stride.
fn compare_strided_conv(
    choice: KernelChoice,
    shape: [usize; 4],
    [filters, kernel]: [usize; 2],
    [pad, stride]: [usize; 2],
    bias: bool,
) -> f32 {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<4>::random([filters, shape[1], kernel, kernel], Distribution::Normal(0.0, 0.3), &device);
    let b = Tensor::<1>::random([filters], Distribution::Normal(0.0, 0.5), &device);
    // A fixed random weighting of the output, so every output element's gradient differs.
    let side = |n: usize| (n + 2 * pad - kernel) / stride + 1;
    let out_shape = [shape[0], filters, side(shape[2]), side(shape[3])];
    let r = Tensor::<4>::random(out_shape, Distribution::Normal(0.0, 1.0), &device);
    let run = |choice: KernelChoice| {
        let (x, w, b) = (x.clone().require_grad(), w.clone().require_grad(), b.clone().require_grad());
        let fallbacks = kernels::fallbacks_on_this_thread();
        let y = kernels::conv2d_using(choice, x.clone(), w.clone(), bias.then(|| b.clone()), stride, pad);
        let ran_burn = kernels::fallbacks_on_this_thread() > fallbacks;
        assert!(!ran_burn, "{choice:?} ran burn's conv2d: the comparison would be burn against burn");
        let grads = y.clone().mul(r.clone()).sum().backward();
        let dx = x.grad(&grads).unwrap();
        let dw = w.grad(&grads).unwrap();
        let db = bias.then(|| b.grad(&grads).unwrap().reshape([1, 1, 1, filters]));
        (y.inner(), dx, dw, db)
    };
    let (y, dx, dw, db) = run(choice);
    let (y0, dx0, dw0, db0) = run(KernelChoice::Burn);
    let mut worst = relative_error(y, y0).max(relative_error(dx, dx0)).max(relative_error(dw, dw0));
    if let (Some(db), Some(db0)) = (db, db0) {
        worst = worst.max(relative_error(db, db0));
    }
    worst
}

#[test]
fn convolution_kernels_match_burn_forward_and_backward() {
    // Every instruction set this CPU runs (an AVX-512 machine checks the AVX2 kernels too).
    let direct = [Isa::Avx512, Isa::Avx2].into_iter().filter(|isa| isa.runs_here()).map(KernelChoice::Direct);
    let choices: Vec<KernelChoice> = direct.chain([KernelChoice::Gemm]).collect();
    println!("convolutions checked against burn with: {choices:?}");
    for choice in choices {
        // ref-mnist's two layers, a 3×3 layer (gemm even on the direct path), no bias, odd sizes.
        for (shape, filters, kernel, pad, bias) in [
            ([4, 1, 28, 28], 8, 5, 2, true),
            ([4, 8, 14, 14], 16, 5, 2, true),
            // 20 filters: a partial vector of output channels in the weight gradient, 2 columns past a vector.
            ([3, 3, 10, 18], 20, 5, 2, true),
            // Odd and small channel counts (one and two channels per register block), dX into 16 channels.
            ([2, 16, 9, 13], 5, 5, 2, true),
            ([2, 4, 8, 8], 6, 5, 2, false),
            // 32 × 40 channels: past AVX2's direct limit (gemm there), direct on AVX-512.
            ([2, 32, 6, 6], 40, 5, 2, true),
            // Padding of a whole kernel: dX goes to gemm (its own padding would be negative).
            ([2, 8, 6, 6], 16, 5, 5, true),
            ([3, 3, 11, 9], 5, 3, 1, true),
            ([2, 2, 9, 13], 4, 5, 0, false),
            // 3×3 and 7×7: forward and dX direct (dX from 8 channels), 3×3 dW from a vector of filters; "same"
            // padding and none.
            ([2, 8, 12, 10], 16, 3, 1, true),
            // 3×3 dW with a partial vector of output channels and three input channels.
            ([2, 3, 9, 11], 20, 3, 1, false),
            ([2, 16, 7, 9], 8, 3, 0, false),
            ([2, 1, 12, 12], 8, 3, 1, true),
            ([2, 8, 11, 9], 8, 7, 3, true),
            // deep6's last layers: rows of 7, one vector × 8 channels on AVX2, forward and dX.
            ([2, 16, 7, 7], 32, 3, 1, true),
            // dW by output rows: a 7×7 first layer with rows of a vector and a part (20 = 16 + 4 columns), and
            // 16 → 8 3×3, past its channel limit (gemm on AVX-512, direct on AVX2).
            ([2, 1, 20, 20], 16, 7, 3, true),
            ([2, 16, 12, 12], 8, 3, 1, true),
            // Output channels in the lanes: `wide`'s second layer (forward and dX on AVX-512), rows of 10 (AVX2's
            // forward), of 9 and 17 (the last block of a row runs past it).
            ([2, 32, 14, 14], 64, 5, 2, true),
            ([2, 16, 12, 12], 16, 3, 0, false),
            ([2, 16, 9, 9], 32, 3, 1, true),
            ([2, 8, 17, 17], 16, 3, 1, true),
            // Maps narrower than the padding (1×2 and 1×1 under a 7×7 filter padded by 3): taps with no valid
            // column at all (im2col once underflowed there).
            ([2, 16, 1, 2], 8, 7, 3, true),
            ([2, 16, 1, 1], 8, 7, 3, true),
            // 7×7 dW one kernel row at a time: two vectors of filters (one on AVX2), and one.
            ([2, 16, 9, 9], 32, 7, 3, true),
            ([2, 4, 10, 10], 16, 7, 3, false),
        ] {
            let error = compare_conv(choice, shape, filters, kernel, pad, bias);
            assert!(error < 1e-4, "{choice:?} {shape:?} → {filters}×{kernel}×{kernel} pad {pad}: error {error}");
        }
        // Strides above 1: 3×3 "same" on even and odd sides, 5×5 and 7×7, stride 3 without padding (a column
        // left over), long rows: im2col + gemm for few input channels (dW direct on AVX2 from 8 filters); then
        // the channel-lane forward and the direct dW, with a padded column no window reaches, 5×5 and 7×7 and
        // stride 3; the phase-split dX (AVX-512, from 16 input channels) with one and two vectors of them, a
        // 7×7 filter at stride 3, padding past the filter.
        for (shape, filters, kernel, pad, stride) in [
            ([2, 3, 12, 12], 8, 3, 1, 2),
            ([3, 4, 11, 13], 6, 3, 1, 2),
            ([2, 2, 14, 14], 5, 5, 2, 2),
            ([2, 1, 20, 20], 4, 7, 3, 2),
            ([2, 3, 13, 10], 4, 3, 0, 3),
            // Rows of 21 and 23 outputs: more than one vector of them.
            ([2, 2, 9, 41], 3, 3, 1, 2),
            ([1, 2, 6, 47], 3, 3, 0, 2),
            ([2, 16, 13, 13], 32, 3, 0, 2),
            ([2, 16, 14, 14], 16, 3, 1, 2),
            ([2, 8, 15, 15], 16, 5, 2, 2),
            ([2, 8, 11, 11], 16, 7, 3, 2),
            ([2, 16, 20, 20], 32, 3, 0, 3),
            ([2, 32, 9, 9], 16, 5, 2, 2),
            ([2, 16, 11, 11], 16, 7, 3, 3),
            ([2, 16, 6, 6], 16, 3, 3, 2),
        ] {
            let error = compare_strided_conv(choice, shape, [filters, kernel], [pad, stride], true);
            assert!(error < 1e-4, "{choice:?} {shape:?} → {filters}×{kernel}×{kernel} stride {stride}: error {error}");
        }
    }
}

/// The dense layer's op against burn's `linear`: the output and the gradients of the input, the weights and the
/// bias, with and without a bias, at sizes one thread computes whole and sizes split over the threads; and it
/// never ran burn's op (the comparison would be burn against burn).
#[test]
fn the_dense_op_matches_burn_forward_and_backward() {
    let device = Device::flex().autodiff();
    for [batch, inputs, outputs] in [[32, 784, 128], [32, 128, 10], [3, 5, 7], [1, 64, 1]] {
        for bias in [true, false] {
            let x = Tensor::<2>::random([batch, inputs], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<2>::random([inputs, outputs], Distribution::Normal(0.0, 0.3), &device);
            let b = Tensor::<1>::random([outputs], Distribution::Normal(0.0, 0.5), &device);
            let r = Tensor::<2>::random([batch, outputs], Distribution::Normal(0.0, 1.0), &device);
            let run = |choice: KernelChoice| {
                let (x, w, b) = (x.clone().require_grad(), w.clone().require_grad(), b.clone().require_grad());
                let fallbacks = kernels::fallbacks_on_this_thread();
                let y = kernels::linear_using(choice, x.clone(), w.clone(), bias.then(|| b.clone()));
                assert_eq!(kernels::fallbacks_on_this_thread(), fallbacks, "{choice:?} ran burn's linear");
                let grads = y.clone().mul(r.clone()).sum().backward();
                let as_maps = |t: Tensor<2>| t.unsqueeze::<4>();
                let db = bias.then(|| b.grad(&grads).unwrap().reshape([1, 1, 1, outputs]));
                (as_maps(y.inner()), as_maps(x.grad(&grads).unwrap()), as_maps(w.grad(&grads).unwrap()), db)
            };
            let (y, dx, dw, db) = run(KernelChoice::best());
            let (y0, dx0, dw0, db0) = run(KernelChoice::Burn);
            let label = format!("{batch}x{inputs} -> {outputs}, bias {bias}");
            for (what, error) in
                [("y", relative_error(y, y0)), ("dX", relative_error(dx, dx0)), ("dW", relative_error(dw, dw0))]
            {
                assert!(error < 1e-5, "{label}: {what} off by {error}");
            }
            if let (Some(db), Some(db0)) = (db, db0) {
                assert!(relative_error(db, db0) < 1e-5, "{label}: db");
            }
        }
    }
}

#[test]
fn the_direct_kernels_take_the_shapes_they_are_written_for() {
    use convscope_kernels::Geom;
    use convscope_kernels::direct::{ChannelLanes, DirectOps, channel_lanes, direct_ops};
    let geom = |ci, h, co, k, pad| Geom { b: 4, ci, h, w: h, co, kh: k, kw: k, pad, stride: 1 };
    for isa in [Isa::Avx512, Isa::Avx2].into_iter().filter(|isa| isa.runs_here()) {
        let all = DirectOps { forward: true, input_grad: true, weight_grad: true };
        // ref-mnist's second layer: every op direct.
        assert_eq!(direct_ops(isa, &geom(8, 14, 16, 5, 2)), all, "{isa:?}");
        // deep6's 3×3 layers from 16 filters: every op direct. With 8 filters dW goes by output rows on
        // AVX-512 (8 would fill half its lanes) and is direct on AVX2; so does a first layer's (1 to 3 input
        // channels, where the direct kernel takes no dX at all) and a 7×7 layer's from up to 8 channels.
        assert_eq!(direct_ops(isa, &geom(8, 26, 16, 3, 0)), all, "{isa:?}");
        assert_eq!(direct_ops(isa, &geom(16, 12, 32, 3, 1)), all, "{isa:?}");
        assert_eq!(direct_ops(isa, &geom(8, 26, 8, 3, 0)), all, "{isa:?}");
        let first_layer = DirectOps { input_grad: false, ..all };
        assert_eq!(direct_ops(isa, &geom(1, 28, 8, 3, 0)), first_layer, "{isa:?}");
        assert_eq!(direct_ops(isa, &geom(3, 32, 16, 5, 2)), first_layer, "{isa:?}");
        assert_eq!(direct_ops(isa, &geom(8, 11, 8, 7, 3)), all, "{isa:?}");
        // Past 8 input channels, dW that the direct kernel does not take (fewer output channels than a vector)
        // goes to gemm.
        let no_dw = DirectOps { weight_grad: false, ..all };
        let eight = if isa == Isa::Avx2 { all } else { no_dw };
        assert_eq!(direct_ops(isa, &geom(16, 11, 8, 7, 3)), eight, "{isa:?}");
        assert_eq!(direct_ops(isa, &geom(16, 14, 32, 7, 3)), all, "{isa:?}");
        assert_eq!(direct_ops(isa, &geom(16, 12, 8, 3, 1)), eight, "{isa:?}");

        // Output channels in the lanes where rows leave the column kernel's idle: on AVX-512 for `wide`'s
        // second layer (14 of 16 lanes), forward and dX; on AVX2 only from rows that fill 5 of 8 lanes down.
        let both = ChannelLanes { forward: true, input_grad: true };
        let neither = ChannelLanes { forward: false, input_grad: false };
        let wide = if isa == Isa::Avx512 { both } else { neither };
        assert_eq!(channel_lanes(isa, &geom(32, 14, 64, 5, 2)), wide, "{isa:?}");
        assert!(channel_lanes(isa, &geom(16, 12, 16, 3, 0)).forward, "{isa:?}");
        assert_eq!(channel_lanes(isa, &geom(16, 9, 32, 3, 1)), both, "{isa:?}");
        // A one-channel first layer sums too few taps per output to pay for the transpose; 12 output channels
        // are not whole vectors; full rows need no help.
        assert_eq!(channel_lanes(isa, &geom(1, 28, 32, 5, 2)), neither, "{isa:?}");
        assert!(!channel_lanes(isa, &geom(16, 10, 12, 3, 1)).forward, "{isa:?}");
        assert_eq!(channel_lanes(isa, &geom(16, 16, 32, 3, 1)), neither, "{isa:?}");

        // Strided layers: the channel-lane forward and the direct dW where they take the shape, dX on AVX-512
        // from whole vectors of input channels; im2col + gemm for a first layer's few taps.
        let strided = |ci, h, co, k, pad, stride| Geom { stride, ..geom(ci, h, co, k, pad) };
        let no_dx = DirectOps { input_grad: false, ..all };
        let (ops, lanes) =
            if isa == Isa::Avx512 { (all, both) } else { (no_dx, ChannelLanes { input_grad: false, ..both }) };
        assert_eq!(direct_ops(isa, &strided(16, 13, 32, 3, 0, 2)), ops, "{isa:?}");
        assert_eq!(channel_lanes(isa, &strided(16, 13, 32, 3, 0, 2)), lanes, "{isa:?}");
        assert_eq!(direct_ops(isa, &strided(8, 28, 32, 5, 2, 3)), no_dx, "{isa:?}");
        let none = DirectOps { forward: false, input_grad: false, weight_grad: false };
        assert_eq!(direct_ops(isa, &strided(1, 28, 16, 3, 0, 2)), none, "{isa:?}");
    }
    println!("direct kernels checked on: {:?}", [Isa::Avx512, Isa::Avx2].map(|isa| (isa, isa.runs_here())));
}

#[test]
fn the_pool_kernel_matches_burn_including_ties() {
    let device = Device::flex().autodiff();
    // 2×2 has its own loop; 3×3 and 4×4 leave rows and columns over (floor mode), 5×5 fits 10 rows exactly. The
    // larger input is split across the compute threads in uneven runs of planes (35 planes: 18 and 17).
    let cases = [([3, 4, 10, 14], [2, 3, 4, 5].as_slice()), ([5, 7, 30, 28], [2, 3].as_slice())];
    for (size, [b, c, h, w]) in cases.iter().flat_map(|(shape, sizes)| sizes.iter().map(move |&s| (s, *shape))) {
        // Rounded values: many windows hold equal maxima, where the first must win as in burn.
        let x = Tensor::<4>::random([b, c, h, w], Distribution::Uniform(0.0, 4.0), &device).floor();
        let r = Tensor::<4>::random([b, c, h / size, w / size], Distribution::Normal(0.0, 1.0), &device);
        let run = |choice: KernelChoice| {
            let x = x.clone().require_grad();
            let fallbacks = kernels::fallbacks_on_this_thread();
            let y = kernels::max_pool2d_using(choice, x.clone(), size);
            assert_eq!(kernels::fallbacks_on_this_thread(), fallbacks, "{choice:?} pool {size} ran burn's");
            let grads = y.clone().mul(r.clone()).sum().backward();
            (y.inner(), x.grad(&grads).unwrap())
        };
        let (y, dx) = run(KernelChoice::best());
        let (y0, dx0) = run(KernelChoice::Burn);
        assert_eq!(relative_error(y, y0), 0.0, "pool {size}");
        assert_eq!(relative_error(dx, dx0), 0.0, "pool {size}: each window's gradient goes to the same winner");
    }
}

#[test]
fn every_activation_s_host_curve_matches_burn_s_kernel() {
    // The window draws Activation::f; training runs burn's kernel: they must be the same function.
    let device = Device::flex();
    let xs: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.25).collect();
    for activation in convscope::arch::Activation::ALL {
        let input = Tensor::<1>::from_data(burn::tensor::TensorData::new(xs.clone(), [xs.len()]), &device);
        let ys = convscope::model::apply_activation(activation, input).into_data().try_to_vec::<f32>().unwrap();
        for (&x, y) in xs.iter().zip(ys) {
            let host = activation.f(f64::from(x)) as f32;
            assert!((host - y).abs() <= 2e-3 * (1.0 + y.abs()), "{activation} at {x}: host {host}, burn {y}");
        }
    }
}

#[test]
fn the_pointwise_activations_match_burn_forward_and_backward() {
    use burn::tensor::activation;
    use convscope::kernels::Pointwise;
    let device = Device::flex().autodiff();
    // 40,000 values (split over the compute threads), rounded to quarters so that many sit exactly on the kink.
    let x = Tensor::<4>::random([4, 10, 25, 40], Distribution::Normal(0.0, 2.0), &device)
        .mul_scalar(4.0)
        .round()
        .div_scalar(4.0);
    let r = Tensor::<4>::random([4, 10, 25, 40], Distribution::Normal(0.0, 1.0), &device);
    type BurnOp = fn(Tensor<4>) -> Tensor<4>;
    let cases: [(Pointwise, BurnOp); 5] = [
        (Pointwise::Relu, activation::relu),
        (Pointwise::LeakyRelu(0.01), |x| activation::leaky_relu(x, 0.01)),
        (Pointwise::Elu(1.0), |x| activation::elu(x, 1.0)),
        (Pointwise::Sigmoid, activation::sigmoid),
        (Pointwise::Tanh, activation::tanh),
    ];
    for (f, burn_op) in cases {
        let run = |custom: bool| {
            let x = x.clone().require_grad();
            // A fresh tensor that nothing else holds, as a layer's pre-activation is: the custom op works in place.
            let z = x.clone().mul_scalar(1.0);
            let y = match custom {
                true => kernels::pointwise_using(KernelChoice::best(), f, z, |_| panic!("{f:?} fell back to burn")),
                false => burn_op(z),
            };
            let grads = y.clone().mul(r.clone()).sum().backward();
            (y.inner(), x.grad(&grads).unwrap())
        };
        let ((y, dx), (y0, dx0)) = (run(true), run(false));
        let exact = matches!(f, Pointwise::Relu | Pointwise::LeakyRelu(_));
        let tolerance = if exact { 0.0 } else { 1e-6 };
        let (forward, backward) = (relative_error(y, y0), relative_error(dx, dx0));
        assert!(forward <= tolerance && backward <= tolerance, "{f:?}: forward {forward}, backward {backward}");
    }
    // burn's own activation where asked for; and a tensor held elsewhere is never changed in place.
    let mut fell_back = false;
    kernels::pointwise_using(KernelChoice::Burn, Pointwise::Relu, x.clone(), |x| {
        fell_back = true;
        x
    });
    assert!(fell_back, "CONVSCOPE_KERNELS=burn runs burn's activation");
    let held = x.clone().inner();
    let negatives = |t: Tensor<4>| t.lower_elem(0.0).int().sum().into_scalar::<i64>();
    let before = negatives(held.clone());
    let y = kernels::pointwise_using(KernelChoice::best(), Pointwise::Relu, held.clone(), |_| panic!("fell back"));
    assert_eq!(negatives(y), 0);
    assert!(before > 0 && negatives(held) == before, "the input a caller still holds stays as it was");
}

/// The activation measured in its own pass (a statistics step's forward): the activation and its gradient are
/// the plain op's, the figures those of measuring the pre-activations and activations afterwards, to the bit;
/// a tensor held elsewhere is measured on a copy and left as it was.
#[test]
fn the_measured_activation_is_the_plain_one_plus_the_layer_s_figures() {
    use convscope::kernels::Pointwise;
    use convscope_kernels::moments;
    let device = Device::flex().autodiff();
    let dims = [8, 6, 20, 20];
    let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 2.0), &device);
    let r = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
    let host = |t: Tensor<4>| t.inner().into_data().try_to_vec::<f32>().unwrap();
    let activations =
        [Pointwise::Relu, Pointwise::LeakyRelu(0.01), Pointwise::Elu(1.0), Pointwise::Sigmoid, Pointwise::Tanh];
    for f in activations {
        let run = |measured: bool| {
            let x = x.clone().require_grad();
            let z = x.clone().mul_scalar(1.0);
            let (y, figures) = match measured {
                true => {
                    let (y, m) = kernels::pointwise_measured(f, z).unwrap_or_else(|_| panic!("{f:?} not taken"));
                    (y, Some(m))
                }
                false => (kernels::pointwise_using(KernelChoice::best(), f, z, |_| panic!("fell back")), None),
            };
            let grads = y.clone().mul(r.clone()).sum().backward();
            (host(y), host(x.grad(&grads).unwrap()), figures)
        };
        let ((y, dx, figures), (y0, dx0, _)) = (run(true), run(false));
        assert_eq!(y, y0, "{f:?}: the activation");
        assert_eq!(dx, dx0, "{f:?}: its gradient");
        let expected = moments::measure(dims, &host(x.clone()), &y0, f.slope());
        assert_eq!(format!("{:?}", figures.unwrap()), format!("{expected:?}"), "{f:?}: the figures");
    }
    let held = x.clone().inner();
    let before = host(held.clone());
    let (y, _) = kernels::pointwise_measured(Pointwise::Relu, held.clone()).unwrap();
    assert!(host(y).iter().all(|&v| v >= 0.0));
    assert_eq!(host(held), before, "the input a caller still holds stays as it was");
}

/// A ReLU layer followed by max-pooling activates after the pool where its activations are not kept whole (an
/// untraced step, a statistics step measuring them aside): the loss, the gradient and the layers' figures are
/// those of activating first, to the bit — for a 2×2 and a 3×3 pool (floor mode), and beside a sigmoid layer,
/// which keeps its order.
#[test]
fn relu_after_the_pool_changes_no_bit() {
    use convscope::arch::{ArchSpec, ImageShape, LayerDefaults};
    use convscope::model::Cnn;
    use convscope::train::stats::read_trace;

    // Six layers with weights: the spec's five (one a ReLU layer with no pool) and the output.
    let spec = "conv 6 3x3, pool 2, conv 8 3x3 pad 1, conv 8 3x3, pool 3, conv 4 3x3 pad 1 sigmoid, pool 2, dense 10";
    let shape = ImageShape { channels: 1, height: 28, width: 28 };
    let plan = ArchSpec::parse(spec).unwrap().plan(shape, 10, &LayerDefaults::default()).unwrap();
    let device = Device::flex().autodiff();
    let model = Cnn::new(&plan, 7, &device);
    let x = Tensor::<4>::random([4, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let targets = Tensor::<2>::random([4, 10], Distribution::Uniform(0.0, 1.0), &device);
    let bits = |t: Tensor<4>| t.into_data().iter::<f32>().map(f32::to_bits).collect::<Vec<_>>();
    let run = |forward: &dyn Fn(Tensor<4>) -> (Tensor<2>, Option<convscope::model::Trace>)| {
        let x = x.clone().require_grad();
        let (logits, trace) = forward(x.clone());
        let loss = model.loss(logits, targets.clone());
        let grads = loss.clone().backward();
        let figures = trace.map(|t| format!("{:?}", read_trace(&model, t, false).unwrap().0));
        (loss.into_data().iter::<f32>().next().unwrap().to_bits(), bits(x.grad(&grads).unwrap()), figures)
    };
    let kept = run(&|x| {
        let (logits, trace) = model.forward_traced(x);
        (logits, Some(trace))
    });
    let untraced = run(&|x| (model.forward(x), None));
    let measured = run(&|x| {
        let (logits, trace) = model.forward_measured(x);
        (logits, Some(trace))
    });
    assert_eq!((untraced.0, &untraced.1), (kept.0, &kept.1), "untraced: loss and input gradient");
    assert_eq!((measured.0, &measured.1), (kept.0, &kept.1), "measured: loss and input gradient");
    assert!(kept.2.as_deref().is_some_and(|f| f.matches("unit_peak").count() == 6), "{:?}", kept.2);
    assert_eq!(measured.2, kept.2, "the layers' figures");
}

/// A convolution and its max-pool as one op (the images convolved a few at a time into a buffer and pooled from
/// there) against the two ops one after the other: the same output and the same gradients of x, w and b, to the
/// bit — several runs of images and a last short one, a 3×3 pool leaving a row and column out, a strided layer
/// (whose gemm path keeps its columns), with and without a bias, on every kernel set this CPU runs.
#[test]
fn a_convolution_pooled_in_its_own_op_changes_no_bit() {
    let direct = [Isa::Avx512, Isa::Avx2].into_iter().filter(|isa| isa.runs_here()).map(KernelChoice::Direct);
    let device = Device::flex().autodiff();
    let bits = |t: Tensor<4>| t.into_data().iter::<f32>().map(f32::to_bits).collect::<Vec<_>>();
    for choice in direct.chain([KernelChoice::Gemm]) {
        // 16 filters on 40×40 outputs: 25,600 values an image, two images to a run: 7 images take four runs on
        // one thread, two each (the last short) on two.
        for (shape, [filters, kernel, pad, stride], pool, bias) in [
            ([7, 2, 40, 40], [16, 5, 2, 1], 2, true),
            ([7, 2, 40, 40], [16, 3, 1, 1], 3, false),
            ([5, 8, 14, 14], [16, 5, 2, 1], 2, true),
            ([3, 4, 21, 21], [8, 3, 1, 2], 2, true),
            // A pool wider than the map: no outputs, and nothing to split over the threads.
            ([3, 2, 5, 5], [16, 3, 0, 1], 4, true),
            // A window past the pool kernels' largest: the convolution's op, then burn's pool.
            ([2, 2, 17, 17], [4, 3, 1, 1], 16, true),
            // 8×8 maps: statistics blocks of 16 images, more than a thread's share of 6 (measured whole).
            ([6, 3, 8, 8], [8, 3, 1, 1], 2, true),
        ] {
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random([filters, shape[1], kernel, kernel], Distribution::Normal(0.0, 0.3), &device);
            let b = Tensor::<1>::random([filters], Distribution::Normal(0.0, 0.5), &device);
            // A fixed weighting of the outputs, so that every output's gradient differs.
            let side = |n: usize| ((n + 2 * pad - kernel) / stride + 1) / pool;
            let r = Tensor::<4>::random(
                [shape[0], filters, side(shape[2]), side(shape[3])],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let label = format!("{choice:?} {shape:?} {filters} {kernel}×{kernel} stride {stride} pool {pool}");
            let run = |op: PooledOp| {
                let (x, w, b) = (x.clone().require_grad(), w.clone().require_grad(), b.clone().require_grad());
                let with_bias = bias.then(|| b.clone());
                let (y, figures) = match op {
                    PooledOp::Fused => {
                        let y = kernels::conv2d_pooled_using(
                            choice,
                            x.clone(),
                            w.clone(),
                            with_bias,
                            [stride, pad],
                            Some(pool),
                        );
                        (y, None)
                    }
                    PooledOp::Measured => {
                        let conv = (x.clone(), w.clone(), with_bias);
                        let measured = kernels::conv2d_measured_using(choice, conv, [stride, pad], Some(pool), Relu);
                        let (y, moments, dims) = measured.unwrap_or_else(|_| panic!("{label}: not measured"));
                        (y, Some(format!("{dims:?} {moments:?}")))
                    }
                    PooledOp::Separate => {
                        let y = kernels::conv2d_using(choice, x.clone(), w.clone(), with_bias, stride, pad);
                        let dims = kernels::as_maps(&y.dims());
                        let moments = kernels::measure_activated(Relu, &y, dims).unwrap();
                        (kernels::max_pool2d_using(choice, y, pool), Some(format!("{dims:?} {moments:?}")))
                    }
                };
                let grads = y.clone().mul(r.clone()).sum().backward();
                let db = bias.then(|| b.grad(&grads).unwrap().reshape([1, 1, 1, filters]));
                let values =
                    (bits(y.inner()), bits(x.grad(&grads).unwrap()), bits(w.grad(&grads).unwrap()), db.map(bits));
                (values, figures)
            };
            // On one thread and on two (a weight gradient's sum depends on the split; the figures do not).
            let mut figures = Vec::new();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let [separate, fused, measured] =
                    [PooledOp::Separate, PooledOp::Fused, PooledOp::Measured].map(|op| pool.install(|| run(op)));
                assert_eq!(fused.0, separate.0, "{label}, {threads} threads");
                assert_eq!(measured.0, separate.0, "{label}, measured, {threads} threads");
                assert_eq!(measured.1, separate.1, "{label}, the figures, {threads} threads");
                figures.push(measured.1);
                // Measured without the pool: the convolution's output, and the same figures.
                let conv = (x.clone(), w.clone(), bias.then(|| b.clone()));
                let unpooled = pool.install(|| kernels::conv2d_measured_using(choice, conv, [stride, pad], None, Relu));
                let (y, moments, dims) = unpooled.unwrap_or_else(|_| panic!("{label}: not measured"));
                let plain = kernels::conv2d_using(choice, x.clone(), w.clone(), bias.then(|| b.clone()), stride, pad);
                let expected = kernels::measure_activated(Relu, &plain, dims).unwrap();
                assert_eq!(bits(y), bits(plain), "{label}, measured, unpooled");
                assert_eq!(format!("{moments:?}"), format!("{expected:?}"), "{label}, unpooled, {threads} threads");
            }
            assert_eq!(figures[0], figures[1], "{label}: the figures on one thread and on two");
        }
    }
}

/// How [`a_convolution_pooled_in_its_own_op_changes_no_bit`] runs the convolution and its pool.
#[derive(Clone, Copy)]
enum PooledOp {
    Separate,
    Fused,
    Measured,
}
