//! One module per fuzz target. Each `setup()` does the one-time work (scratch folders, fixed inputs) and
//! returns the closure run on every input: the `afl::fuzz!` loop of `src/bin/<target>.rs` calls it, and so
//! does `replay` for a plain (uninstrumented) reproduction of a saved input.

pub mod checkpoint;
pub mod cifar;
pub mod history;
pub mod idx;
pub mod image;
pub mod settings;
pub mod spec;

/// The targets, by name: what `scripts/fuzz.sh` and `replay` accept.
pub const NAMES: [&str; 7] = ["idx", "cifar", "image", "spec", "settings", "checkpoint", "history"];
