//! Pixel art for the panels: filter grids, activation maps and digit thumbnails as egui images, and a
//! texture slot that re-uploads only when its content changed. Always drawn with NEAREST filtering.

use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions};

use crate::protocol::Thumbnail;
use crate::render;
use crate::snapshot::FloatArray;

/// Converts a rendered RGB image into an egui image.
pub fn to_color_image(image: &image::RgbImage) -> ColorImage {
    ColorImage::from_rgb([image.width() as usize, image.height() as usize], image.as_raw())
}

/// Conv weights `[filters, channels, k, k]` as a grid (one pixel per weight) on the diverging map.
pub fn filter_grid(weights: &FloatArray, scale: f32, channel: Option<usize>) -> Option<ColorImage> {
    render::filter_grid(weights, scale, 1, channel).ok().map(|image| to_color_image(&image))
}

/// Colour conv weights `[filters, 3, k, k]` as RGB tiles (0 is mid grey).
pub fn rgb_filter_grid(weights: &FloatArray, scale: f32) -> Option<ColorImage> {
    render::rgb_filter_grid(weights, scale, 1).ok().map(|image| to_color_image(&image))
}

/// Activation maps `[channels, h, w]` or `[units]` tiled on the sequential map over `[low, high]`.
pub fn map_grid(maps: &FloatArray, low: f32, high: f32) -> Option<ColorImage> {
    render::map_grid(maps, low, high, 1).ok().map(|image| to_color_image(&image))
}

/// Signed maps `[channels, h, w]` on the diverging colour map over ±`scale`.
pub fn signed_map_grid(maps: &FloatArray, scale: f32) -> Option<ColorImage> {
    render::signed_map_grid(maps, scale, 1).ok().map(|image| to_color_image(&image))
}

/// The probe's normalised input `[channels, h, w]`: an RGB picture for colour input (each channel stretched
/// over `[low, high]`), else the grey map on the sequential colour map.
pub fn probe_input(input: &FloatArray, low: f32, high: f32) -> Option<ColorImage> {
    let &[3, h, w] = input.shape.as_slice() else { return map_grid(input, low, high) };
    let span = (high - low).max(f32::MIN_POSITIVE);
    let level = |v: f32| (255.0 * ((v - low) / span).clamp(0.0, 1.0)).round() as u8;
    let plane = h * w;
    let rgb: Vec<u8> =
        (0..plane).flat_map(|i| [0, 1, 2].map(|c| input.data.get(c * plane + i).copied().map_or(0, level))).collect();
    Some(ColorImage::from_rgb([w, h], &rgb))
}

/// A test image as an egui image (grey for one channel, RGB for three).
pub fn thumbnail(thumbnail: &Thumbnail) -> Option<ColorImage> {
    let shape = thumbnail.shape;
    let pixels = thumbnail.pixels.as_slice();
    let (h, w) = (shape.height, shape.width);
    let plane = h * w;
    match shape.channels {
        3 if pixels.len() >= 3 * plane => {
            // Planar CHW bytes → interleaved RGB.
            let rgb: Vec<u8> = (0..plane).flat_map(|i| [pixels[i], pixels[plane + i], pixels[2 * plane + i]]).collect();
            Some(ColorImage::from_rgb([w, h], &rgb))
        }
        _ => Some(ColorImage::from_gray([w, h], pixels.get(..plane)?)),
    }
}

/// One texture that follows changing content: it is re-uploaded only when `key` changes.
#[derive(Default)]
pub struct TextureSlot {
    handle: Option<TextureHandle>,
    key: Option<u64>,
}

impl TextureSlot {
    /// The texture for `key`, building the image with `make` only when the key changed.
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        name: &str,
        key: u64,
        make: impl FnOnce() -> Option<ColorImage>,
    ) -> Option<&TextureHandle> {
        if self.key != Some(key) {
            if let Some(image) = make() {
                match &mut self.handle {
                    Some(handle) if handle.size() == image.size => handle.set(image, TextureOptions::NEAREST),
                    _ => self.handle = Some(ctx.load_texture(name, image, TextureOptions::NEAREST)),
                }
            }
            self.key = Some(key);
        }
        self.handle.as_ref()
    }
}

/// Mixes a few values into one texture key.
pub fn key(parts: &[u64]) -> u64 {
    parts.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, part| (hash ^ part).wrapping_mul(0x0100_0000_01b3))
}
