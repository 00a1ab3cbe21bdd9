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

mod activation;
mod plan;
mod spec;
#[cfg(test)]
mod tests;

pub use activation::{
    Activation, ELU_ALPHA, ImageShape, Init, LEAKY_RELU_SLOPE, LayerSettings, MAX_INIT_STD, OutputKind,
};
pub use plan::{LayerDefaults, LayerPlan, NetPlan, Shape};
pub use spec::{
    ArchSpec, DEFAULT_ARCH, LayerKind, LayerSpec, MAX_LAYER_VALUES, MAX_LAYER_WEIGHTS, MAX_LAYERS, NAMED_ARCHS,
    SpecError, resolve_arch,
};
