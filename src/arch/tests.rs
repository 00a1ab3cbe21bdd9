//! Tests of the spec parser and the shape inference.

use crate::arch::*;

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
    let defaults =
        LayerDefaults { layer_activations: vec![Activation::Sigmoid, Activation::Tanh], ..LayerDefaults::default() };
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
    assert!((Activation::Softplus.f(0.0) - std::f64::consts::LN_2).abs() < 1e-12);
    assert!((Activation::Softplus.df(0.0) - 0.5).abs() < 1e-12);
    assert!((Activation::Softplus.f(800.0) - 800.0).abs() < 1e-9, "no overflow far out");
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

#[test]
fn long_specs_are_shown_around_the_error_and_layer_counts_bounded() {
    // A 100 KB spec with a typo at its end: the message shows a window of it, not all of it.
    let text = format!("conv 4 3x3{} sigmoidd", " relu".repeat(20_000));
    let error = ArchSpec::parse(&text).unwrap_err().to_string();
    assert!(error.len() < 600, "{} bytes: {}", error.len(), &error[..600.min(error.len())]);
    let lines: Vec<&str> = error.lines().collect();
    assert!(lines[1].starts_with("  …") && lines[1].ends_with("sigmoidd"), "{error}");
    let caret = lines[2].find('^').unwrap();
    let under: String = lines[1].chars().skip(caret).take(8).collect();
    assert_eq!(under, "sigmoidd", "{error}");

    let deep = "dense 4, ".repeat(MAX_LAYERS + 1);
    let error = ArchSpec::parse(deep.trim_end_matches(", ")).unwrap_err();
    assert!(error.message.starts_with(&format!("more than {MAX_LAYERS} layers")), "{error}");
    assert!(ArchSpec::parse("dense 4, ".repeat(MAX_LAYERS).trim_end_matches(", ")).is_ok());
    // A short spec is shown whole, caret under the bad word.
    let error = ArchSpec::parse("conv 8 5x5, pol 2").unwrap_err().to_string();
    assert!(error.ends_with("  conv 8 5x5, pol 2\n              ^^^"), "{error}");
}
