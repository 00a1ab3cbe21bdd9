//! Rendering: colour maps and the grids of filters, gradients and activation maps, as RGB images. Drawing is
//! separate from writing files (`export`) and from showing textures (`app`): both take these images.

pub mod colormap;
pub mod curves;
pub mod grid;
pub mod legend;

pub use grid::{RenderError, draws_rgb, filter_grid, filters_image, map_grid, rgb_filter_grid, signed_map_grid};
pub use legend::{ColourScale, TEXT_LINE, annotate, draw_text, draw_text_styled, text_width};
