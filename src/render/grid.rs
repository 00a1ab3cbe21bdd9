//! Pixel art from float arrays: filter and gradient grids on a diverging colour map, RGB tiles for colour
//! filters, and activation maps on a sequential one. Pure functions, values in and an RGB image out: the
//! window draws them as textures and the exporter encodes them as PNG.

use image::{Rgb, RgbImage};

use crate::render::colormap;
use crate::snapshot::FloatArray;

/// An array of a shape a picture cannot be drawn from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The data has a shape this drawing does not take.
    #[error("cannot draw {what}: {detail}")]
    Shape {
        /// What was being drawn.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The chart library failed to draw.
    #[error("cannot draw the chart {what}: {detail}")]
    Chart {
        /// Which chart.
        what: String,
        /// The library's message.
        detail: String,
    },
}

/// Draws conv weights `[filters, in_channels, k, k]` (or their gradients) as a grid of tiles on the
/// diverging colour map with one scale for the whole grid, `upscale` pixels per weight and a one-weight
/// gap. Channel `channel` of each filter is drawn; `None` draws all channels side by side.
pub fn filter_grid(
    weights: &FloatArray,
    scale: f32,
    upscale: u32,
    channel: Option<usize>,
) -> Result<RgbImage, RenderError> {
    let &[filters, channels, kh, kw] = weights.shape.as_slice() else {
        return Err(RenderError::Shape {
            what: "a filter grid".into(),
            detail: format!("expected conv weights [filters, channels, k, k], got shape {:?}", weights.shape),
        });
    };
    let shown: Vec<usize> = match channel {
        Some(c) if c < channels => vec![c],
        Some(c) => {
            return Err(RenderError::Shape {
                what: "a filter grid".into(),
                detail: format!("channel {c} does not exist (the filters have {channels})"),
            });
        }
        None => (0..channels).collect(),
    };
    let tile_w = shown.len() * (kw + 1) - 1;
    let mut canvas = TileCanvas::new(filters, tile_w, kh, upscale);
    for filter in 0..filters {
        for (slot, &c) in shown.iter().enumerate() {
            for y in 0..kh {
                for x in 0..kw {
                    let value =
                        weights.data.get(((filter * channels + c) * kh + y) * kw + x).copied().unwrap_or(f32::NAN);
                    canvas.paint(filter, slot * (kw + 1) + x, y, colormap::diverging(value, scale));
                }
            }
        }
    }
    Ok(canvas.image)
}

/// Draws colour filters `[filters, 3, k, k]` as RGB tiles (as the ConvNetJS CIFAR-10 demo does): each
/// channel's weight maps linearly from `[-scale, scale]` to intensity 0…255, so 0 is mid grey and a filter
/// that responds to red looks red. One scale for the whole grid.
pub fn rgb_filter_grid(weights: &FloatArray, scale: f32, upscale: u32) -> Result<RgbImage, RenderError> {
    let &[filters, 3, kh, kw] = weights.shape.as_slice() else {
        return Err(RenderError::Shape {
            what: "an RGB filter grid".into(),
            detail: format!("expected colour conv weights [filters, 3, k, k], got shape {:?}", weights.shape),
        });
    };
    let scale = scale.max(f32::MIN_POSITIVE);
    let intensity = |value: f32| {
        if value.is_finite() { (127.5 + 127.5 * (value / scale).clamp(-1.0, 1.0)).round() as u8 } else { 0 }
    };
    let mut canvas = TileCanvas::new(filters, kw, kh, upscale);
    for filter in 0..filters {
        for y in 0..kh {
            for x in 0..kw {
                let at = |c: usize| weights.data.get(((filter * 3 + c) * kh + y) * kw + x).copied().unwrap_or(f32::NAN);
                canvas.paint(filter, x, y, [intensity(at(0)), intensity(at(1)), intensity(at(2))]);
            }
        }
    }
    Ok(canvas.image)
}

/// Whether [`filters_image`] draws `weights` as RGB tiles (asked for, and three input channels).
pub fn draws_rgb(weights: &FloatArray, rgb: bool) -> bool {
    rgb && weights.shape.get(1) == Some(&3)
}

/// Filters as the window shows them: RGB tiles for colour filters when `rgb` is set, else channel `channel`
/// (or all side by side) on the diverging map.
pub fn filters_image(
    weights: &FloatArray,
    scale: f32,
    upscale: u32,
    rgb: bool,
    channel: Option<usize>,
) -> Result<RgbImage, RenderError> {
    if draws_rgb(weights, rgb) {
        rgb_filter_grid(weights, scale, upscale)
    } else {
        filter_grid(weights, scale, upscale, channel)
    }
}

/// Equal tiles in a near-square grid with a one-cell gap and border, each cell `upscale` pixels square.
struct TileCanvas {
    image: RgbImage,
    columns: usize,
    tile_w: usize,
    tile_h: usize,
    upscale: u32,
}

impl TileCanvas {
    fn new(tiles: usize, tile_w: usize, tile_h: usize, upscale: u32) -> Self {
        let columns = (tiles as f64).sqrt().ceil().max(1.0) as usize;
        let rows = tiles.div_ceil(columns).max(1);
        let upscale = upscale.max(1);
        let width = (columns * (tile_w + 1) + 1) as u32 * upscale;
        let height = (rows * (tile_h + 1) + 1) as u32 * upscale;
        TileCanvas { image: RgbImage::from_pixel(width, height, Rgb([96, 96, 96])), columns, tile_w, tile_h, upscale }
    }

    /// Fills cell (`x`, `y`) of tile `tile`.
    fn paint(&mut self, tile: usize, x: usize, y: usize, colour: [u8; 3]) {
        let left = (tile % self.columns) * (self.tile_w + 1) + 1 + x;
        let top = (tile / self.columns) * (self.tile_h + 1) + 1 + y;
        let (px, py) = (left as u32 * self.upscale, top as u32 * self.upscale);
        for dy in 0..self.upscale {
            for dx in 0..self.upscale {
                if let Some(pixel) = self.image.get_pixel_mut_checked(px + dx, py + dy) {
                    *pixel = Rgb(colour);
                }
            }
        }
    }
}

/// Tiles activation maps `[channels, h, w]` (or a dense layer's `[units]`, drawn as one row) on the
/// sequential colour map over `[low, high]`, `upscale` pixels per value, with a one-pixel gap between maps.
pub fn map_grid(maps: &FloatArray, low: f32, high: f32, upscale: u32) -> Result<RgbImage, RenderError> {
    tile_maps(maps, upscale, |value| colormap::sequential(colormap::unit(value, low, high)))
}

/// The same layout on the diverging colour map, ±`scale` at the ends and white at zero: signed maps such as
/// activation gradients ∂loss/∂a (red where raising the activation raises the loss).
pub fn signed_map_grid(maps: &FloatArray, scale: f32, upscale: u32) -> Result<RgbImage, RenderError> {
    tile_maps(maps, upscale, |value| colormap::diverging(value, scale))
}

fn tile_maps(maps: &FloatArray, upscale: u32, colour: impl Fn(f32) -> [u8; 3]) -> Result<RgbImage, RenderError> {
    let (channels, h, w) = match *maps.shape.as_slice() {
        [c, h, w] => (c, h, w),
        [n] => (1, 1, n),
        _ => {
            return Err(RenderError::Shape {
                what: "activation maps".into(),
                detail: format!("expected [channels, h, w] or [units], got shape {:?}", maps.shape),
            });
        }
    };
    let mut canvas = TileCanvas::new(channels, w, h, upscale);
    for channel in 0..channels {
        for y in 0..h {
            for x in 0..w {
                let value = maps.data.get((channel * h + y) * w + x).copied().unwrap_or(f32::NAN);
                canvas.paint(channel, x, y, colour(value));
            }
        }
    }
    Ok(canvas.image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_grid_lays_out_tiles_with_a_shared_scale() {
        // Two 2×2 filters: the first all +1, the second all −0.5.
        let mut data = vec![1.0; 4];
        data.extend([-0.5; 4]);
        let weights = FloatArray::new(vec![2, 1, 2, 2], data).unwrap();
        let image = filter_grid(&weights, 1.0, 3, None).unwrap();
        // 2 columns and 1 row of (2 + 1)-weight cells plus a border: (2·3 + 1)·3 × (1·3 + 1)·3.
        assert_eq!((image.width(), image.height()), (21, 12));
        assert_eq!(image.get_pixel(3, 3).0, colormap::diverging(1.0, 1.0));
        let second = image.get_pixel(3 * 4, 3).0;
        assert_eq!(second, colormap::diverging(-0.5, 1.0));
        assert!(second[2] > second[0], "negative values are blue");
        assert!(filter_grid(&FloatArray::new(vec![4], vec![0.0; 4]).unwrap(), 1.0, 1, None).is_err());
    }

    #[test]
    fn rgb_filters_map_each_channel_to_its_colour() {
        // One 1×1 filter that is all red (+1 on R, −1 on G and B), one at zero.
        let weights = FloatArray::new(vec![2, 3, 1, 1], vec![1.0, -1.0, -1.0, 0.0, 0.0, 0.0]).unwrap();
        let image = rgb_filter_grid(&weights, 1.0, 1).unwrap();
        assert_eq!(image.get_pixel(1, 1).0, [255, 0, 0]);
        assert_eq!(image.get_pixel(3, 1).0, [128, 128, 128], "zero is mid grey");
        let grey = FloatArray::new(vec![1, 1, 1, 1], vec![0.5]).unwrap();
        assert!(rgb_filter_grid(&grey, 1.0, 1).is_err());
    }
}
