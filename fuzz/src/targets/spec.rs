//! Architecture specs: `ArchSpec::parse` on the UTF-8 input, then shape inference (`ArchSpec::plan`) against
//! a few input shapes and class counts, with the default layer settings and with per-layer activations,
//! then the training-memory estimate of each plan (the arithmetic a huge net stresses).

use convscope::arch::{Activation, ArchSpec, ImageShape, LayerDefaults, OutputKind};
use convscope::config::OptimizerKind;
use convscope::train::memory::estimate;

const SHAPES: [(usize, usize, usize, usize); 4] =
    [(1, 28, 28, 10), (3, 32, 32, 100), (1, 5, 7, 2), (3, 1024, 1024, 255)];

/// The harness: one-time set-up, then a closure run on every input.
pub fn setup() -> impl FnMut(&[u8]) + std::panic::RefUnwindSafe {
    let defaults = LayerDefaults::default();
    let per_layer = LayerDefaults {
        layer_activations: vec![Activation::Sigmoid, Activation::Tanh],
        bias: false,
        batch_norm: true,
        output: OutputKind::Sigmoid,
        ..LayerDefaults::default()
    };
    move |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(spec) = ArchSpec::parse(text) else {
            return;
        };
        for (channels, height, width, classes) in SHAPES {
            let shape = ImageShape { channels, height, width };
            for defaults in [&defaults, &per_layer] {
                if let Ok(plan) = spec.plan(shape, classes, defaults) {
                    for (batch, optimizer) in [(1, OptimizerKind::Sgd), (4096, OptimizerKind::Adam)] {
                        let _ = estimate(&plan, batch, optimizer).total();
                    }
                }
            }
        }
    }
}
