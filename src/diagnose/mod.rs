//! "Why isn't my net learning?": the facts the rules read from recent steps, the rules that turn them into
//! plain sentences with their evidence, and the experiment presets that reproduce each problem. Pure functions
//! of plain data, shared by the worker (which sends the hints to the window) and `convscope train`.

pub mod facts;
pub mod presets;
pub mod rules;

pub use facts::{DEAD_UNIT_WINDOW, Facts, HINT_MIN_STEPS, HINT_WINDOW, SATURATED_SLOPE_FRACTION, median};
pub use presets::{PRESETS, Preset};
pub use rules::{Hint, RULES, Rule, diagnose};
