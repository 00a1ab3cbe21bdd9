//! The regression panel: a regression head's predictions against the true targets on the test split (with
//! the y = x line, and the output activation's floor or ceiling), the residuals' histogram, and the figures —
//! R², MAE, MSE and the share of outputs pinned at an edge of the activation's range. Arm B, when there is one,
//! in its own colour.

use eframe::egui::{self, Color32, RichText};
use egui_plot::{Bar, BarChart, HLine, Legend, Line, Plot, PlotPoints, Points};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::compare::ARM_COLOURS;
use crate::app::panels::{Panel, header, short};
use crate::app::view::TrainingView;
use crate::snapshot::RegressionEval;

const HELP: &str = "Each dot is one test image: across, its true target; up, what the net predicts. A perfect \
net puts every dot on the diagonal y = x. Red dots are pinned: the output sits at the edge of the output \
activation's range (ReLU's 0, sigmoid's 0 or 1) while the target lies beyond it — the activation cannot produce \
the answer, and passes no gradient back to fix it, so the dots form a flat floor. The histogram shows the \
residuals, prediction − target. R² is 1 − (squared error) / (variance of the targets): 1 is perfect, 0 no better \
than always answering the mean.";

/// Bars in the residual histogram.
const RESIDUAL_BINS: usize = 31;
/// Pinned points.
const PINNED: Color32 = Color32::from_rgb(220, 70, 60);

/// The regression panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RegressionPanel {
    #[serde(skip)]
    help: bool,
}

impl Panel for RegressionPanel {
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, _out: &mut Outbox) {
        header(ui, "Predicted vs true", &mut self.help, HELP);
        let Some(a) = view.regression.as_deref() else {
            ui.label("Waiting for the first evaluation of the test split…");
            return;
        };
        let b = view.arm_b.as_ref().and_then(|b| b.regression.as_deref());
        for (arm, eval) in [("A", Some(a)), ("B", b)] {
            if let Some(eval) = eval {
                figures_ui(ui, if b.is_some() { Some(arm) } else { None }, eval);
            }
        }
        let width = ui.available_width().min(420.0);
        scatter_ui(ui, a, b, width);
        residuals_ui(ui, a, b, width);
    }
}

/// One line of figures: R², MAE, MSE and the pinned share.
fn figures_ui(ui: &mut egui::Ui, arm: Option<&str>, eval: &RegressionEval) {
    let m = eval.metrics;
    let prefix = arm.map_or(String::new(), |arm| format!("{arm}: "));
    let text = format!(
        "{prefix}step {} · R² {:.3} · MAE {} · MSE {} · {} output",
        eval.step,
        m.r2,
        short(m.mae),
        short(m.mse),
        eval.activation
    );
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(text).small().monospace());
        if eval.metrics.pinned > 0.0 {
            let pinned = format!("{:.0} % pinned", 100.0 * eval.metrics.pinned);
            ui.label(RichText::new(pinned).small().strong().color(PINNED)).on_hover_text(format!(
                "{:.0} % of the test targets are beyond what {} can output",
                100.0 * eval.metrics.unreachable,
                eval.activation
            ));
        }
    });
}

/// Predicted against true, with y = x and the activation's edges.
fn scatter_ui(ui: &mut egui::Ui, a: &RegressionEval, b: Option<&RegressionEval>, width: f32) {
    let (low, high) = bounds(a, b);
    // Fixed to the data: the page scrolls over the plot rather than panning it.
    let margin = f64::from(high - low).max(1e-6) * 0.05;
    Plot::new("regression scatter")
        .width(width)
        .height(width.min(260.0))
        .legend(Legend::default().position(egui_plot::Corner::RightBottom))
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .include_x(f64::from(low) - margin)
        .include_x(f64::from(high) + margin)
        .include_y(f64::from(low) - margin)
        .include_y(f64::from(high) + margin)
        .x_axis_label("true")
        .y_axis_label("predicted")
        .show(ui, |plot| {
            let diagonal = vec![[f64::from(low), f64::from(low)], [f64::from(high), f64::from(high)]];
            plot.line(Line::new("y = x", PlotPoints::from(diagonal)).color(Color32::GRAY));
            for (eval, colour, name) in [(Some(a), ARM_COLOURS[0], "A"), (b, ARM_COLOURS[1], "B")] {
                let Some(eval) = eval else { continue };
                let name = if b.is_some() { format!("test images ({name})") } else { "test images".to_owned() };
                let (pinned, free): (Vec<_>, Vec<_>) = points(eval).partition(|(_, pinned)| *pinned);
                let strip =
                    |v: Vec<([f64; 2], bool)>| PlotPoints::from(v.into_iter().map(|(p, _)| p).collect::<Vec<_>>());
                plot.points(Points::new(name, strip(free)).color(colour.gamma_multiply(0.7)).radius(1.6));
                if !pinned.is_empty() {
                    plot.points(Points::new("pinned", strip(pinned)).color(PINNED).radius(1.8));
                }
                for edge in [eval.edges.0, eval.edges.1].into_iter().flatten() {
                    let label = format!("{} edge", eval.activation);
                    plot.hline(HLine::new(label, f64::from(edge)).color(PINNED.gamma_multiply(0.6)));
                }
            }
        });
}

/// The range both axes cover: every target and prediction.
fn bounds(a: &RegressionEval, b: Option<&RegressionEval>) -> (f32, f32) {
    let values = [Some(a), b].into_iter().flatten().flat_map(|e| e.targets.iter().chain(&e.predictions));
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if low <= high { (low, high) } else { (0.0, 1.0) }
}

fn points(eval: &RegressionEval) -> impl Iterator<Item = ([f64; 2], bool)> + '_ {
    eval.targets
        .iter()
        .zip(&eval.predictions)
        .zip(&eval.pinned)
        .filter(|((t, p), _)| t.is_finite() && p.is_finite())
        .map(|((&t, &p), &pinned)| ([f64::from(t), f64::from(p)], pinned))
}

/// The residuals' histogram (prediction − target), one series per arm.
fn residuals_ui(ui: &mut egui::Ui, a: &RegressionEval, b: Option<&RegressionEval>, width: f32) {
    let residuals = |e: &RegressionEval| -> Vec<f32> {
        e.targets.iter().zip(&e.predictions).map(|(t, p)| p - t).filter(|r| r.is_finite()).collect()
    };
    let (ra, rb) = (residuals(a), b.map(residuals).unwrap_or_default());
    let reach = ra.iter().chain(&rb).fold(0.0_f32, |m, r| m.max(r.abs())).max(1e-6);
    let bin = 2.0 * reach / RESIDUAL_BINS as f32;
    let bars = |values: &[f32]| -> Vec<Bar> {
        let mut counts = [0u32; RESIDUAL_BINS];
        for r in values {
            let i = (((r + reach) / bin) as usize).min(RESIDUAL_BINS - 1);
            counts[i] += 1;
        }
        let total = values.len().max(1) as f64;
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                Bar::new(f64::from(-reach + bin * (i as f32 + 0.5)), f64::from(c) / total).width(f64::from(bin) * 0.9)
            })
            .collect()
    };
    ui.label(RichText::new("residuals: predicted − true (share of test images)").small());
    Plot::new("regression residuals")
        .width(width)
        .height(110.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("A", bars(&ra)).color(ARM_COLOURS[0]));
            if b.is_some() {
                plot.bar_chart(BarChart::new("B", bars(&rb)).color(ARM_COLOURS[1].gamma_multiply(0.7)));
            }
        });
}
