//! The layers panel: one row per layer with its output shape, activation picker, bias and batch-norm
//! toggles, and the live ranges of its activations and weight gradients.

use eframe::egui::{self, RichText, Role, WidgetInfo};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, header, short};
use crate::app::view::TrainingView;
use crate::arch::{Activation, LayerKind, OutputKind};
use crate::config::Setting;
use crate::diagnose::{HINT_WINDOW, median};
use crate::snapshot::{LayerSnapshot, LayerStats, RegressionEval};

const HELP: &str = "Each row is a layer, input at the top. Switch a layer's activation, bias or batch-norm at any \
time: the weights stay exactly as they are and the next step uses the new setting (watch the curves and the \
loss react). The ranges are the smallest and largest activation over the last batch and the smallest and largest \
weight gradient: a gradient range shrinking toward 0 in the first layers is the vanishing-gradient problem. \
Health: for ReLU, the share of dead units (no output for any example of the last 10 statistics batches: they get \
no gradient and never recover); for sigmoid and tanh, the share of saturated units (mean slope f' below 10 % of its \
peak: inputs stuck on the flat tails). The line under the meter is its trend. f' is the layer's mean slope — the \
factor the backward pass multiplies by here — and Δ the update ratio |ΔW|/|W| of a step, the median of the recent \
statistics that the diagnosis also quotes (about 1e-3 is healthy).";

/// Statistics rows the trend lines show.
const TREND_ROWS: usize = 80;

/// The layers panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LayersPanel {
    #[serde(skip)]
    help: bool,
}

impl Panel for LayersPanel {
    /// Draws the table; a switch goes to `out` as a [`Setting`].
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        header(ui, "Layers", &mut self.help, HELP);
        // Until a reset's net is announced, layer indices would address the old net: nothing to switch yet.
        ui.add_enabled_ui(!view.reset_pending, |ui| self.table_ui(ui, view, out));
    }
}

impl LayersPanel {
    fn table_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        // Oldest first, for the trend lines.
        let TrainingView { layers, snapshot, config, rows, restored, .. } = view;
        // After a restore the newest statistics describe the thrown-away weights: none until the next step.
        let kept = if restored.is_some() { &[][..] } else { rows.as_slice() };
        // While the timeline shows an old snapshot, the meters and trends end at its step too.
        let kept = match view.timeline.shown_step() {
            Some(step) => &kept[..kept.partition_point(|r| r.step <= step)],
            None => kept,
        };
        let mut history: Vec<&[LayerStats]> =
            kept.iter().rev().filter(|r| !r.stats.is_empty()).take(TREND_ROWS).map(|r| r.stats.as_slice()).collect();
        history.reverse();
        let output_kind = config.output;
        // In a narrow column the ranges go above the health figures in one cell, so the table never widens it.
        let narrow = ui.available_width() < WIDE_TABLE;
        let titles: &[&str] = if narrow {
            &["Layer", "Activation", "Bias", "BN", "ranges · health"]
        } else {
            &["Layer", "Activation", "Bias", "BN", "ranges", "health"]
        };
        egui::Grid::new("layers").striped(true).num_columns(titles.len()).spacing([4.0, 3.0]).show(ui, |ui| {
            for title in titles {
                ui.label(RichText::new(*title).small().strong());
            }
            ui.end_row();
            for info in layers {
                ui.vertical(|ui| {
                    ui.add(egui::Label::new(RichText::new(&info.name).monospace()).extend());
                    ui.add(egui::Label::new(RichText::new(info.out_shape.to_string()).small()).extend());
                })
                .response
                .on_hover_text(format!("{}: output {} per example", info.name, info.out_shape));
                let (Some(index), Some(settings)) = (info.weighted_index, info.settings) else {
                    ui.label(RichText::new(if matches!(info.kind, LayerKind::Pool { .. }) { "max" } else { "" }).small());
                    ui.end_row();
                    continue;
                };
                if info.output && output_kind.is_regression() {
                    regression_output_ui(ui, &info.name, index, settings.activation, output_kind, out);
                } else if info.output {
                    output_ui(ui, &info.name, output_kind, out);
                } else {
                    let hover = "Switch this layer's nonlinearity; the weights are kept and the next step uses it.";
                    activation_ui(ui, &info.name, index, settings.activation, hover, out);
                }
                let mut bias = settings.bias;
                let r = ui.checkbox(&mut bias, "").on_hover_text("Add the layer's bias. Off keeps its value frozen until it is switched back on.");
                let label = format!("{} bias", info.name);
                r.widget_info(|| WidgetInfo::selected(Role::CheckBox, true, bias, &label));
                if bias != settings.bias {
                    out.change(Setting::Bias { layer: index, enabled: bias });
                }
                let mut norm = settings.batch_norm;
                let r = ui.add_enabled(!info.output, egui::Checkbox::new(&mut norm, "")).on_hover_text("Batch-norm before the activation: re-centres and re-scales each channel over the batch, pulling inputs back into the activation's useful range.");
                let label = format!("{} batch-norm", info.name);
                r.widget_info(|| WidgetInfo::selected(Role::CheckBox, !info.output, norm, &label));
                if norm != settings.batch_norm {
                    out.change(Setting::BatchNorm { layer: index, enabled: norm });
                }
                let shown = snapshot.as_ref().and_then(|s| s.layers.iter().find(|l| l.name == info.name));
                // A regression head's health is how many of its outputs are pinned at its activation's edge.
                let pinned = view.regression.as_deref().filter(|_| info.output);
                let figures = |ui: &mut egui::Ui| {
                    ranges_ui(ui, shown);
                    match pinned {
                        Some(eval) => pinned_ui(ui, &info.name, eval),
                        None => health_ui(ui, &info.name, index, &history),
                    }
                };
                if narrow {
                    ui.vertical(figures);
                } else {
                    figures(ui);
                }
                ui.end_row();
            }
        });
    }
}

/// Below this width the table stacks each layer's ranges above its health figures.
const WIDE_TABLE: f32 = 400.0;

/// The smallest and largest activation and weight gradient of the layer's last snapshot.
fn ranges_ui(ui: &mut egui::Ui, shown: Option<&LayerSnapshot>) {
    let Some(shown) = shown else {
        ui.label("");
        return;
    };
    let (act, grad) = (shown.activation_range, shown.grad_range);
    let text = format!("a {}…{}\ng {}…{}", short(act.0), short(act.1), short(grad.0), short(grad.1));
    // Never wrapped: "g -0.137…" over "0.113" would read as two ranges.
    ui.add(egui::Label::new(RichText::new(text).small().monospace()).extend()).on_hover_text(
        "a: smallest and largest activation over the last batch; g: smallest and largest weight gradient",
    );
}

/// The output layer's nonlinearity, which comes with its loss: softmax with cross-entropy or a sigmoid per class
/// with binary cross-entropy.
fn output_ui(ui: &mut egui::Ui, name: &str, current: OutputKind, out: &mut Outbox) {
    let mut chosen = current;
    let combo =
        egui::ComboBox::from_id_salt("output kind").selected_text(current.name()).width(70.0).show_ui(ui, |ui| {
            for kind in [OutputKind::Softmax, OutputKind::Sigmoid] {
                ui.selectable_value(&mut chosen, kind, kind.name());
            }
        });
    let label = format!("{name} output");
    combo.response.widget_info(|| WidgetInfo::labeled(Role::ComboBox, true, &label));
    combo.response.on_hover_text(
        "The output layer's nonlinearity comes with its loss: softmax with cross-entropy makes the classes \
         compete; a sigmoid per class with binary cross-entropy asks ten separate yes/no questions. Switching \
         keeps the weights.",
    );
    if chosen != current {
        out.change(Setting::Output(chosen));
    }
}

/// The picker of a layer's activation; a change is sent as a live setting.
fn activation_ui(ui: &mut egui::Ui, name: &str, index: usize, current: Activation, hover: &str, out: &mut Outbox) {
    let mut chosen = current;
    let combo = egui::ComboBox::from_id_salt(("activation", index)).selected_text(current.name()).width(70.0).show_ui(
        ui,
        |ui| {
            for option in Activation::ALL {
                ui.selectable_value(&mut chosen, option, option.name());
            }
        },
    );
    let label = format!("{name} activation");
    combo.response.widget_info(|| WidgetInfo::labeled(Role::ComboBox, true, &label));
    combo.response.on_hover_text(hover);
    if chosen != current {
        out.change(Setting::Activation { layer: index, activation: chosen });
    }
}

/// A regression head: its output activation (a free choice: can it reach the targets?) and its loss.
fn regression_output_ui(
    ui: &mut egui::Ui,
    name: &str,
    index: usize,
    activation: Activation,
    loss: OutputKind,
    out: &mut Outbox,
) {
    ui.vertical(|ui| {
        let hover = "The regression output's activation. Identity reaches any target; ReLU cannot go below 0 (its \
            outputs pin at 0 for negative targets and get no gradient there), sigmoid stays in 0…1, tanh in −1…1. \
            Switching keeps the weights.";
        activation_ui(ui, name, index, activation, hover, out);
        let mut chosen_loss = loss;
        let combo = egui::ComboBox::from_id_salt("regression loss").selected_text(loss.name()).width(70.0).show_ui(ui, |ui| {
            for kind in [OutputKind::Mse, OutputKind::Huber] {
                ui.selectable_value(&mut chosen_loss, kind, kind.name());
            }
        });
        let label = format!("{name} loss");
        combo.response.widget_info(|| WidgetInfo::labeled(Role::ComboBox, true, &label));
        combo.response.on_hover_text("MSE: squared error. Huber: squared near the target, linear beyond 1 (in the standardised units), so a few far-off targets pull less.");
        if chosen_loss != loss {
            out.change(Setting::Output(chosen_loss));
        }
    });
}

/// A regression head's pinned share as a meter: outputs at an edge of the activation's range whose target lies
/// beyond it (at the last evaluation).
fn pinned_ui(ui: &mut egui::Ui, name: &str, eval: &RegressionEval) {
    ui.vertical(|ui| {
        ui.spacing_mut().item_spacing.y = 1.0;
        meter(ui, eval.metrics.pinned, &[]).on_hover_text(format!(
            "{name}: {:.0} % of the test outputs sit at the edge of {}'s range while their target lies beyond it, \
             where the activation passes no gradient back; {:.0} % of the targets are out of its reach \
             (test split, step {})",
            100.0 * eval.metrics.pinned,
            eval.activation,
            100.0 * eval.metrics.unreachable,
            eval.step
        ));
        ui.label(RichText::new(format!("pinned {:.0} %", 100.0 * eval.metrics.pinned)).small());
        ui.label(RichText::new(format!("R² {:.2}", eval.metrics.r2)).small().monospace());
    });
}

/// The layer's dead or saturated share as a meter with its trend, plus mean slope and update ratio.
fn health_ui(ui: &mut egui::Ui, name: &str, index: usize, history: &[&[LayerStats]]) {
    let Some(latest) = history.last().and_then(|stats| stats.get(index)) else {
        ui.label("");
        return;
    };
    let (what, pick): (&str, fn(&LayerStats) -> Option<f32>) = if latest.dead_fraction.is_some() {
        ("dead", |s| s.dead_fraction)
    } else {
        ("saturated", |s| s.saturated_fraction)
    };
    ui.vertical(|ui| {
        ui.spacing_mut().item_spacing.y = 1.0;
        if let Some(share) = pick(latest) {
            let trend: Vec<f32> = history.iter().filter_map(|s| s.get(index).and_then(pick)).collect();
            meter(ui, share, &trend).on_hover_text(format!(
                "{name}: {:.0} % of its units {what} now (the line is the trend over the last {} statistics)",
                100.0 * share,
                trend.len()
            ));
            ui.label(RichText::new(format!("{what} {:.0} %", 100.0 * share)).small());
        }
        let slope = latest.mean_slope.map_or(String::new(), |s| format!("f' {}\n", short(s)));
        // The median over the diagnosis window, as the update-ratio hint quotes it: one odd step decides neither.
        let recent = &history[history.len().saturating_sub(HINT_WINDOW)..];
        let ratio = median(recent.iter().filter_map(|s| s.get(index).map(|s| s.update_ratio)).collect());
        let text = RichText::new(format!("{slope}Δ {}", short(ratio))).small().monospace();
        ui.add(egui::Label::new(text).extend()).on_hover_text(format!(
            "f': mean slope of the activation over the batch; Δ: |ΔW|/|W| of a step, the median of the last {} \
             statistics as the diagnosis reads it (about 1e-3 is healthy; the latest step's is {}).\n\
             Pre-activations: mean {}, variance {} (its init aims for about {} with the input it gets now).\n\
             Activations: mean {}, variance {}. Weights RMS {}, gradient RMS {}.",
            recent.len(),
            short(latest.update_ratio),
            short(latest.pre_activation_mean),
            short(latest.pre_activation_var),
            short(latest.init_pre_activation_var),
            short(latest.activation_mean),
            short(latest.activation_var),
            short(latest.weight_rms),
            short(latest.grad_rms),
        ));
    });
}

/// A small bar filled to `share` (red when high), with `trend` (shares, oldest first) drawn across it.
fn meter(ui: &mut egui::Ui, share: f32, trend: &[f32]) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(56.0, 10.0), egui::Sense::hover());
    let painter = ui.painter();
    painter.rect_filled(rect, 2.0, egui::Color32::from_gray(50));
    let fill = if share >= 0.5 { egui::Color32::from_rgb(200, 70, 60) } else { egui::Color32::from_rgb(200, 150, 60) };
    let filled = egui::Rect::from_min_size(rect.min, egui::vec2(rect.width() * share.clamp(0.0, 1.0), rect.height()));
    painter.rect_filled(filled, 2.0, fill);
    if trend.len() >= 2 {
        let points: Vec<egui::Pos2> = trend
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = rect.left() + rect.width() * i as f32 / (trend.len() - 1) as f32;
                egui::pos2(x, rect.bottom() - rect.height() * v.clamp(0.0, 1.0))
            })
            .collect();
        painter.line(points, egui::Stroke::new(1.0, egui::Color32::WHITE));
    }
    response
}
