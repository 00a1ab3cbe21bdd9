//! The activation-curves panel: for every hidden layer, its activation f and derivative f' with the
//! layer's live pre-activation histogram on the same x-axis, so saturation and dead zones are visible.

use eframe::egui::{self, Color32, RichText};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, header, nice_x_axis, nice_x_spacer};
use crate::app::view::TrainingView;
use crate::arch::Activation;
use crate::snapshot::{Histogram, LayerInfo};

/// Points per drawn curve.
pub const CURVE_POINTS: usize = 241;

const HELP: &str = "Blue: the layer's activation f(x). Orange: its slope f'(x), which multiplies every gradient \
flowing back through the layer. Grey bars: where this layer's inputs (pre-activations) fell over the last batch. \
Inputs in a flat part of sigmoid or tanh get a near-zero slope: the units are saturated and learn slowly. Inputs \
left of zero under ReLU get slope 0: those units are dead for that example. Healthy layers keep most of the \
histogram where f' is large.";

/// The curve data drawn for one layer (kept so tests can read what was plotted).
#[derive(Debug, Clone, PartialEq)]
pub struct CurveData {
    /// The layer's name.
    pub layer: String,
    /// The activation drawn.
    pub activation: Activation,
    /// Points of f.
    pub f: Vec<[f64; 2]>,
    /// Points of f'.
    pub df: Vec<[f64; 2]>,
}

impl CurveData {
    /// f and f' at the sample nearest to `x`.
    pub fn at(&self, x: f64) -> Option<(f64, f64)> {
        let nearest = |points: &[[f64; 2]]| {
            points.iter().min_by(|a, b| (a[0] - x).abs().total_cmp(&(b[0] - x).abs())).map(|p| p[1])
        };
        Some((nearest(&self.f)?, nearest(&self.df)?))
    }
}

/// Samples f and f' over `[low, high]`, with x = 0 among the samples.
pub fn sample_curves(layer: &str, activation: Activation, low: f64, high: f64) -> CurveData {
    let half = (CURVE_POINTS / 2) as f64;
    let xs: Vec<f64> = (0..CURVE_POINTS)
        .map(|i| {
            let t = i as f64 - half;
            if t < 0.0 { low * (-t / half) } else { high * (t / half) }
        })
        .collect();
    CurveData {
        layer: layer.to_string(),
        activation,
        f: xs.iter().map(|&x| [x, activation.f(x)]).collect(),
        df: xs.iter().map(|&x| [x, activation.df(x)]).collect(),
    }
}

/// The x-range to draw: the histogram's range, widened to at least ±3 so the curve's shape shows.
fn x_range(histogram: Option<&Histogram>) -> (f64, f64) {
    let (low, high) = histogram.filter(|h| h.total() > 0).map_or((-3.0, 3.0), |h| (f64::from(h.min), f64::from(h.max)));
    (low.min(-3.0), high.max(3.0))
}

/// The activation-curves panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CurvesPanel {
    #[serde(skip)]
    help: bool,
    /// What was drawn on the last frame, one entry per hidden layer.
    #[serde(skip)]
    pub last_curves: Vec<CurveData>,
}

impl Panel for CurvesPanel {
    /// Draws one small plot per hidden layer.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, _out: &mut Outbox) {
        header(ui, "Activation curves", &mut self.help, HELP);
        self.last_curves.clear();
        // A regression head's activation is a choice worth seeing (ReLU's floor under its inputs); a classifier's
        // belongs to the loss.
        let regression = view.config.output.is_regression();
        let hidden: Vec<_> =
            view.layers.iter().filter(|l| l.weighted_index.is_some() && (!l.output || regression)).collect();
        if hidden.is_empty() {
            ui.label("Waiting for the net…");
            return;
        }
        // As many columns as fit at a readable width; more layers go on more rows, all in reach.
        let available = ui.available_width().min(ui.clip_rect().width());
        let columns = ((available / (MIN_CURVE_WIDTH + 14.0)).floor() as usize).clamp(1, 3).min(hidden.len());
        let width = (available / columns as f32 - 14.0).max(MIN_CURVE_WIDTH);
        for row in hidden.chunks(columns) {
            ui.horizontal_top(|ui| self.row_ui(ui, view, row, width));
        }
    }
}

/// The narrowest an activation-curve plot gets before the plots wrap onto another row.
const MIN_CURVE_WIDTH: f32 = 170.0;

impl CurvesPanel {
    /// One row of curve plots; while an A/B comparison runs, arm B's curve (dashed) and inputs (orange) too.
    fn row_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, row: &[&LayerInfo], width: f32) {
        for info in row.iter().copied() {
            let Some(settings) = info.settings else { continue };
            let histogram = layer_histogram(view, &info.name);
            let arm_b = view.arm_b.as_deref().and_then(|b| {
                let settings = b.layers.iter().find(|l| l.name == info.name)?.settings?;
                Some((settings.activation, layer_histogram(b, &info.name)))
            });
            let (low, high) = x_range(histogram);
            let (low, high) = arm_b.map_or((low, high), |(_, h)| {
                let (b_low, b_high) = x_range(h);
                (low.min(b_low), high.max(b_high))
            });
            let curves = sample_curves(&info.name, settings.activation, low, high);
            let curves_b = arm_b.map(|(activation, _)| sample_curves(&info.name, activation, low, high));
            ui.vertical(|ui| {
                let title = match arm_b.filter(|(activation, _)| *activation != settings.activation) {
                    Some((activation, _)) => format!("{} · {} | B {activation}", info.name, settings.activation),
                    None => format!("{} · {}", info.name, settings.activation),
                };
                ui.label(RichText::new(title).small().strong());
                let peak = curves.f.iter().map(|p| p[1].abs()).fold(1.0_f64, f64::max);
                let grey = Color32::from_rgba_unmultiplied(150, 150, 150, 110);
                let orange = Color32::from_rgba_unmultiplied(240, 150, 60, 90);
                Plot::new(("curve", info.name.as_str()))
                    .width(width)
                    .height(150.0)
                    .legend(Legend::default())
                    .allow_drag(false)
                    .allow_zoom(false)
                    .allow_scroll(false)
                    .include_y(-0.1)
                    .include_y(1.1)
                    .custom_x_axes(nice_x_axis())
                    .x_grid_spacer(nice_x_spacer(width))
                    .show(ui, |plot| {
                        let name = if arm_b.is_some() { "inputs (A)" } else { "inputs" };
                        plot.bar_chart(BarChart::new(name, bars(histogram, peak)).color(grey));
                        if let Some((_, histogram_b)) = arm_b {
                            plot.bar_chart(BarChart::new("inputs (B)", bars(histogram_b, peak)).color(orange));
                        }
                        let (blue, amber) = (Color32::from_rgb(70, 130, 220), Color32::from_rgb(235, 140, 40));
                        plot.line(Line::new("f", PlotPoints::from(curves.f.clone())).color(blue).width(2.0));
                        plot.line(Line::new("f'", PlotPoints::from(curves.df.clone())).color(amber).width(2.0));
                        if let Some(b) = &curves_b {
                            let dashed = egui_plot::LineStyle::dashed_dense();
                            plot.line(Line::new("f (B)", PlotPoints::from(b.f.clone())).color(blue).style(dashed));
                        }
                    });
                if let Some(h) = histogram.filter(|h| h.non_finite > 0) {
                    let text = format!("{} non-finite inputs", h.non_finite);
                    ui.label(RichText::new(text).small().color(Color32::from_rgb(220, 80, 80)));
                }
            });
            self.last_curves.push(curves);
        }
    }
}

/// The pre-activation histogram of the layer called `name` in `view`'s snapshot.
fn layer_histogram<'a>(view: &'a TrainingView, name: &str) -> Option<&'a Histogram> {
    view.snapshot.as_ref()?.layers.iter().find(|l| l.name == name).map(|l| &l.pre_activation_histogram)
}

/// A histogram as bars scaled so its tallest reaches 90 % of `peak` (the curve's height).
fn bars(histogram: Option<&Histogram>, peak: f64) -> Vec<Bar> {
    let Some(h) = histogram else { return Vec::new() };
    let most = f64::from(h.counts.iter().copied().max().unwrap_or(1).max(1));
    let width = f64::from(h.bin_width()).max(1e-9);
    h.counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            Bar::new(f64::from(h.min) + (i as f64 + 0.5) * width, 0.9 * peak * f64::from(c) / most).width(width)
        })
        .collect()
}
