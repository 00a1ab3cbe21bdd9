//! Line charts with a band, as an RGB image: `compare.png`'s curves of arm A and arm B over seeds (each arm's
//! mean, and the band from its lowest to its highest seed). Drawn with plotters into a pixel buffer; text uses
//! the Ubuntu Light font egui already ships, so no system font is looked up.

use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::render::{RenderError, draw_text_styled, text_width};

/// The font family name the charts register Ubuntu Light under.
const FONT: &str = "sans-serif";

/// One arm's curve: a label, a colour, solid or dashed, and per step (mean, lowest, highest).
#[derive(Debug, Clone)]
pub struct Curve {
    pub label: String,
    pub colour: [u8; 3],
    pub dashed: bool,
    /// (step, mean, lowest, highest), in step order.
    pub points: Vec<(u64, f32, f32, f32)>,
}

/// One chart: a title, the y axis' name and its curves.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub y_label: String,
    pub curves: Vec<Curve>,
}

fn register_font() {
    static REGISTER: Once = Once::new();
    // A font that does not parse leaves the text out; the curves are still drawn.
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT);
    });
}

fn chart_error(what: &str) -> impl Fn(String) -> RenderError + '_ {
    move |detail| RenderError::Chart { what: what.to_owned(), detail }
}

/// Height of the header: the caption, and under it one legend entry per curve.
const HEADER: u32 = 62;
const TEXT_COLOUR: [u8; 3] = [30, 30, 30];
/// Room for each chart's title above its plot.
const CHART_TITLE: u32 = 22;

/// Draws `charts` side by side under `caption` and one legend for all of them (the charts' curves share their
/// labels), `width` × `height` pixels.
pub fn draw_charts(charts: &[Chart], caption: &str, (width, height): (u32, u32)) -> Result<RgbImage, RenderError> {
    register_font();
    let fail = chart_error(caption);
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        let (_, body) = root.split_vertically(HEADER.min(height));
        let areas = body.split_evenly((1, charts.len().max(1)));
        for (chart, area) in charts.iter().zip(&areas) {
            draw_chart(chart, area).map_err(chart_error(&chart.title))?;
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let mut image = RgbImage::from_raw(width, height, pixels).ok_or_else(|| fail("wrong buffer size".into()))?;
    // The header's text is drawn here rather than by plotters, whose text drops each glyph's side bearing.
    draw_text_styled(&mut image, (12.0, 8.0), caption, 17.0, TEXT_COLOUR);
    let chart_width = width as f32 / charts.len().max(1) as f32;
    for (i, chart) in charts.iter().enumerate() {
        let centre = chart_width * (i as f32 + 0.5);
        let title_width = text_width(&chart.title, 15.0);
        draw_text_styled(
            &mut image,
            (centre - title_width / 2.0, HEADER as f32 + 6.0),
            &chart.title,
            15.0,
            TEXT_COLOUR,
        );
    }
    let mut x = 12.0;
    for curve in charts.first().map(|c| c.curves.as_slice()).unwrap_or_default() {
        draw_sample(&mut image, (x as u32, 41), curve);
        x += 36.0 + draw_text_styled(&mut image, (x + 30.0, 33.0), &curve.label, 14.0, TEXT_COLOUR) + 24.0;
    }
    Ok(image)
}

/// A 24-pixel sample of `curve`'s line (solid or dashed) for the legend, centred on `y`.
fn draw_sample(image: &mut RgbImage, (x, y): (u32, u32), curve: &Curve) {
    for dx in 0..24 {
        if curve.dashed && dx % 8 >= 5 {
            continue;
        }
        for dy in 0..3 {
            if let Some(pixel) = image.get_pixel_mut_checked(x + dx, y + dy - 1) {
                pixel.0 = curve.colour;
            }
        }
    }
}

/// The x and y ranges that hold every curve's band (y padded by 5 %, never empty).
fn ranges(chart: &Chart) -> (std::ops::Range<u64>, std::ops::Range<f32>) {
    let points = chart.curves.iter().flat_map(|c| &c.points);
    let (mut first, mut last, mut low, mut high) = (u64::MAX, 0, f32::INFINITY, f32::NEG_INFINITY);
    for &(step, _, lowest, highest) in points {
        (first, last) = (first.min(step), last.max(step));
        (low, high) = (low.min(lowest), high.max(highest));
    }
    if first > last {
        (first, last) = (0, 1);
    }
    if !(low.is_finite() && high.is_finite()) {
        (low, high) = (0.0, 1.0);
    }
    let pad = ((high - low) * 0.05).max(1e-3);
    (first..last.max(first + 1), (low - pad)..(high + pad))
}

fn draw_chart<DB: DrawingBackend>(chart: &Chart, area: &DrawingArea<DB, plotters::coord::Shift>) -> Result<(), String> {
    let (x_range, y_range) = ranges(chart);
    let mut context = ChartBuilder::on(area)
        .margin(12)
        .margin_top(CHART_TITLE + 6)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| e.to_string())?;
    context
        .configure_mesh()
        .x_desc("step")
        .y_desc(&chart.y_label)
        .label_style((FONT, 13))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(|e| e.to_string())?;
    for curve in &chart.curves {
        let [r, g, b] = curve.colour;
        let colour = RGBColor(r, g, b);
        // The band first, so both arms' lines are drawn over both bands.
        let upper = curve.points.iter().map(|&(step, _, _, high)| (step, high));
        let lower = curve.points.iter().rev().map(|&(step, _, low, _)| (step, low));
        let band = Polygon::new(upper.chain(lower).collect::<Vec<_>>(), colour.mix(0.18).filled());
        context.draw_series(std::iter::once(band)).map_err(|e| e.to_string())?;
    }
    for curve in &chart.curves {
        let [r, g, b] = curve.colour;
        let style = RGBColor(r, g, b).stroke_width(2);
        let means = curve.points.iter().map(|&(step, mean, _, _)| (step, mean));
        if curve.dashed {
            let series = DashedLineSeries::new(means, 8, 5, style);
            context.draw_series(series).map_err(|e| e.to_string())?;
        } else {
            let series = LineSeries::new(means, style);
            context.draw_series(series).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(colour: [u8; 3], dashed: bool, offset: f32) -> Curve {
        let points = (1..=50).map(|s| (s, 2.0 / s as f32 + offset, 1.8 / s as f32 + offset, 2.2 / s as f32 + offset));
        Curve { label: format!("arm {offset}"), colour, dashed, points: points.collect() }
    }

    #[test]
    fn both_arms_are_drawn_in_their_colours_with_text() {
        let chart = Chart {
            title: "loss".into(),
            y_label: "training loss".into(),
            curves: vec![curve([31, 119, 180], false, 0.0), curve([255, 127, 14], true, 0.5)],
        };
        let image = draw_charts(&[chart.clone(), chart], "A vs B", (800, 400)).unwrap();
        assert_eq!(image.dimensions(), (800, 400));
        let count = |colour: [u8; 3]| image.pixels().filter(|p| p.0 == colour).count();
        assert!(count([31, 119, 180]) > 200, "arm A's line");
        assert!(count([255, 127, 14]) > 100, "arm B's dashed line");
        let dark = image.pixels().filter(|p| p.0.iter().all(|&v| v < 60)).count();
        assert!(dark > 500, "axes, ticks and text are drawn ({dark} dark pixels)");
    }

    #[test]
    fn empty_and_flat_curves_still_draw() {
        let flat = Curve { label: "flat".into(), colour: [0, 0, 0], dashed: false, points: vec![(1, 1.0, 1.0, 1.0)] };
        let charts = [Chart { title: "t".into(), y_label: "y".into(), curves: vec![flat] }];
        assert!(draw_charts(&charts, "one point", (300, 200)).is_ok());
        let empty = [Chart { title: "t".into(), y_label: "y".into(), curves: Vec::new() }];
        assert!(draw_charts(&empty, "nothing", (300, 200)).is_ok());
    }
}
