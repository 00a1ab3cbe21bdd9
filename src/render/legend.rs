//! Self-describing pictures for export: a rendered grid enlarged to a readable size, with a caption and its
//! colour scale (the bar and its end values) drawn underneath in the Hack font that egui also ships.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage, imageops};

use crate::render::colormap;

/// An exported picture is at least this wide: a dense layer's ten outputs would otherwise be a speck.
pub const MIN_EXPORT_WIDTH: u32 = 320;
/// …and its grid at least this tall.
pub const MIN_GRID_HEIGHT: u32 = 48;

const BACKGROUND: [u8; 3] = [24, 24, 24];
const TEXT: [u8; 3] = [230, 230, 230];
const TEXT_PX: f32 = 14.0;
const MARGIN: u32 = 6;
const BAR_HEIGHT: u32 = 12;

/// How a grid's colours map to values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColourScale {
    /// Blue −s, white 0, red +s (weights and gradients).
    Diverging(f32),
    /// Dark `low` to bright `high` (activations); an empty range means every value is the same.
    Sequential {
        /// The value drawn darkest.
        low: f32,
        /// The value drawn brightest.
        high: f32,
    },
    /// Colour filters: each channel's weight from −s (none of that colour) through grey 0 to +s (full).
    RgbChannels(f32),
}

impl ColourScale {
    /// The bar's colour at `t` in `[0, 1]`, left to right.
    fn colour(self, t: f32) -> [u8; 3] {
        match self {
            ColourScale::Diverging(scale) => colormap::diverging((2.0 * t - 1.0) * scale, scale),
            ColourScale::Sequential { .. } => colormap::sequential(t),
            ColourScale::RgbChannels(_) => {
                let grey = (255.0 * t).round() as u8;
                [grey, grey, grey]
            }
        }
    }

    /// The values written under the bar's left end, middle and right end.
    fn labels(self) -> [String; 3] {
        let number = |v: f32| if v == 0.0 { "0".to_owned() } else { format!("{v:+.2e}") };
        match self {
            ColourScale::Diverging(s) | ColourScale::RgbChannels(s) => [number(-s), "0".to_owned(), number(s)],
            ColourScale::Sequential { low, high } => [number(low), number(0.5 * (low + high)), number(high)],
        }
    }
}

/// `grid` enlarged (nearest neighbour, a whole factor) to at least [`MIN_EXPORT_WIDTH`] × [`MIN_GRID_HEIGHT`],
/// with `caption` and the colour `scale` drawn underneath.
pub fn annotate(grid: &RgbImage, caption: &str, scale: ColourScale) -> RgbImage {
    let factor = MIN_EXPORT_WIDTH.div_ceil(grid.width().max(1)).max(MIN_GRID_HEIGHT.div_ceil(grid.height().max(1)));
    let grid = if factor > 1 {
        imageops::resize(grid, grid.width() * factor, grid.height() * factor, imageops::FilterType::Nearest)
    } else {
        grid.clone()
    };
    let width = grid.width().max(MIN_EXPORT_WIDTH);
    let line = TEXT_PX.ceil() as u32 + 2;
    let legend_top = grid.height() + MARGIN;
    let height = legend_top + line + BAR_HEIGHT + 2 + line + MARGIN;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    imageops::replace(&mut canvas, &grid, i64::from((width - grid.width()) / 2), 0);
    let Ok(font) = FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR) else {
        return canvas; // the font is compiled in; without it the picture still has its bar
    };
    let mut pen = Pen { canvas: &mut canvas, font: &font, px: TEXT_PX, colour: TEXT };
    pen.text(MARGIN as f32, legend_top as f32, caption);
    let bar_top = legend_top + line;
    let bar_width = width - 2 * MARGIN;
    for x in 0..bar_width {
        let colour = scale.colour(x as f32 / (bar_width - 1).max(1) as f32);
        for y in bar_top..bar_top + BAR_HEIGHT {
            pen.canvas.put_pixel(MARGIN + x, y, Rgb(colour));
        }
    }
    let labels_top = (bar_top + BAR_HEIGHT + 2) as f32;
    let [left, middle, right] = scale.labels();
    let right_edge = (width - MARGIN) as f32;
    pen.text(MARGIN as f32, labels_top, &left);
    pen.text(0.5 * width as f32 - 0.5 * pen.width(&middle), labels_top, &middle);
    pen.text(right_edge - pen.width(&right), labels_top, &right);
    canvas
}

/// Draws `text` in light grey with its top-left corner at (`x`, `top`) onto `image` (nothing when the font
/// cannot be read).
pub fn draw_text(image: &mut RgbImage, x: f32, top: f32, text: &str) {
    if let Ok(font) = FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR) {
        Pen { canvas: image, font: &font, px: TEXT_PX, colour: TEXT }.text(x, top, text);
    }
}

/// The width of `text` drawn `px` pixels high by [`draw_text_styled`].
pub fn text_width(text: &str, px: f32) -> f32 {
    let Ok(font) = FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR) else { return 0.0 };
    let scaled = font.as_scaled(PxScale::from(px));
    text.chars().map(|c| scaled.h_advance(scaled.glyph_id(c))).sum()
}

/// Draws `text` `px` pixels high in `colour` with its top-left corner at (`x`, `top`); returns its width.
pub fn draw_text_styled(image: &mut RgbImage, (x, top): (f32, f32), text: &str, px: f32, colour: [u8; 3]) -> f32 {
    let Ok(font) = FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR) else { return 0.0 };
    let mut pen = Pen { canvas: image, font: &font, px, colour };
    pen.text(x, top, text);
    pen.width(text)
}

/// Height of a line of text drawn by [`draw_text`], in pixels.
pub const TEXT_LINE: u32 = TEXT_PX as u32 + 4;

/// Draws text onto the canvas.
struct Pen<'a> {
    canvas: &'a mut RgbImage,
    font: &'a FontRef<'a>,
    /// Text height in pixels.
    px: f32,
    colour: [u8; 3],
}

impl Pen<'_> {
    /// Width of `text` in pixels.
    fn width(&self, text: &str) -> f32 {
        let scaled = self.font.as_scaled(PxScale::from(self.px));
        text.chars().map(|c| scaled.h_advance(scaled.glyph_id(c))).sum()
    }

    /// Draws `text` with its top-left corner at `(x, top)`, blended over what is there.
    fn text(&mut self, x: f32, top: f32, text: &str) {
        let scaled = self.font.as_scaled(PxScale::from(self.px));
        let colour = self.colour;
        let baseline = top + scaled.ascent();
        let mut caret = x;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            let glyph = id.with_scale_and_position(self.px, point(caret, baseline));
            caret += scaled.h_advance(id);
            let Some(outline) = self.font.outline_glyph(glyph) else { continue };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let (px, py) = (bounds.min.x as i64 + i64::from(gx), bounds.min.y as i64 + i64::from(gy));
                let (Ok(px), Ok(py)) = (u32::try_from(px), u32::try_from(py)) else { return };
                if let Some(pixel) = self.canvas.get_pixel_mut_checked(px, py) {
                    let blend = |under: u8, over: u8| {
                        (f32::from(under) + (f32::from(over) - f32::from(under)) * coverage.clamp(0.0, 1.0)).round()
                            as u8
                    };
                    pixel.0 =
                        [blend(pixel.0[0], colour[0]), blend(pixel.0[1], colour[1]), blend(pixel.0[2], colour[2])];
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_grid_is_enlarged_and_gets_its_scale_and_caption() {
        // A dense layer's ten outputs at 6 px each: 72×18 as the window used to export it.
        let grid = RgbImage::from_pixel(72, 18, Rgb([200, 10, 10]));
        let image = annotate(&grid, "dense1 activations · step 300 · sigmoid", ColourScale::Diverging(0.5));
        assert!(image.width() >= MIN_EXPORT_WIDTH, "{}", image.width());
        // Enlarged by a whole factor (5 for the width, 3 for the height): 360×90, centred.
        assert_eq!(image.width(), 360);
        assert_eq!(image.get_pixel(0, 0).0, [200, 10, 10]);
        assert_eq!(image.get_pixel(359, 89).0, [200, 10, 10]);
        assert_eq!(image.get_pixel(180, 90).0, BACKGROUND, "the legend starts under the grid");
        // The bar runs blue to white to red.
        let bar_y = 90 + MARGIN + TEXT_PX.ceil() as u32 + 2 + BAR_HEIGHT / 2;
        let (left, mid, right) =
            (image.get_pixel(MARGIN, bar_y).0, image.get_pixel(180, bar_y).0, image.get_pixel(359 - MARGIN, bar_y).0);
        assert!(left[2] > left[0] && right[0] > right[2], "{left:?} … {right:?}");
        assert!(mid.iter().all(|&c| c > 240), "white at zero: {mid:?}");
        // Text was drawn: bright pixels in the caption line and under the bar.
        let bright_in = |y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (0..image.width()).map(move |x| (x, y)))
                .any(|(x, y)| image.get_pixel(x, y).0[0] > 180)
        };
        assert!(bright_in(90 + MARGIN, 90 + MARGIN + 16), "a caption");
        assert!(bright_in(bar_y + BAR_HEIGHT, image.height()), "the scale's values");
    }

    #[test]
    fn scale_labels_name_the_ends() {
        assert_eq!(ColourScale::Diverging(0.012).labels(), ["-1.20e-2", "0", "+1.20e-2"]);
        assert_eq!(ColourScale::Sequential { low: 0.0, high: 2.0 }.labels(), ["0", "+1.00e0", "+2.00e0"]);
    }
}
