//! The gradient-flow view: each layer's weight-gradient norm over time on a log axis with the vanishing zone
//! shaded, and the same numbers as a layer × time heat map, so a gradient dying on its way back is seen at a
//! glance.

use eframe::egui::{self, Color32, ColorImage, RichText};
use egui_plot::{Legend, Plot, PlotPoints, Polygon};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::metrics::{LAYER_COLOURS, cursor, markers, y_extent};
use crate::app::panels::{Panel, header, legend, series_line, steady, time_window};
use crate::app::series::Decimator;
use crate::app::textures::{TextureSlot, key};
use crate::app::view::TrainingView;
use crate::diagnose::rules::VANISHING_RATIO;
use crate::diagnose::{HINT_WINDOW, median};
use crate::render::colormap;

const HELP: &str = "The size (L2 norm) of each layer's weight gradient, step by step, on a log scale. The \
gradient reaching a layer is the product of the slopes f' of every layer above it: with sigmoid (slope at most \
0.25) it shrinks layer by layer, so the first layer's line sits far below the last one's. The shaded band is the \
vanishing zone — more than 100× below the output layer's recent gradient: a layer in it barely learns. The heat \
map shows the same numbers, one row per layer (input at the top), bright = large.";

/// Time columns of the heat map.
pub const HEATMAP_COLUMNS: usize = 160;

/// The gradient-flow panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GradientFlowPanel {
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    heatmap: TextureSlot,
}

/// log₁₀ of each layer's gradient norm averaged over time buckets: `[layers][columns]` row-major, with the
/// finite range; `None` before any finite value. Reads the decimated series, so its cost does not grow with the
/// run.
pub fn gradient_heatmap(series: &[Decimator], columns: usize) -> Option<(Vec<f32>, f32, f32)> {
    let means: Vec<Vec<f64>> = series.iter().map(Decimator::means).collect();
    let buckets = means.iter().map(Vec::len).min()?;
    let columns = columns.min(buckets);
    if columns == 0 {
        return None;
    }
    let mut cells = vec![f32::NAN; means.len() * columns];
    for (layer, layer_means) in means.iter().enumerate() {
        for column in 0..columns {
            let group = &layer_means[column * buckets / columns..(column + 1) * buckets / columns];
            let finite: Vec<f64> = group.iter().copied().filter(|v| v.is_finite()).collect();
            if !finite.is_empty() {
                cells[layer * columns + column] = (finite.iter().sum::<f64>() / finite.len() as f64) as f32;
            }
        }
    }
    let (low, high) = crate::snapshot::finite_range(&cells)?;
    Some((cells, low, high))
}

impl Panel for GradientFlowPanel {
    /// Draws the plot and the heat map.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, _out: &mut Outbox) {
        header(ui, "Gradient flow", &mut self.help, HELP);
        let rows = &view.rows;
        let names = view.weighted_names();
        let Some(output) = names.len().checked_sub(1) else {
            ui.label("Waiting for the first steps…");
            return;
        };
        let recent = &rows[rows.len().saturating_sub(HINT_WINDOW)..];
        let output_norm = median(recent.iter().filter_map(|r| r.grad_norms.get(output).copied()).collect());
        let width = ui.available_width().min(ui.clip_rect().width()).max(200.0);
        let height = 170.0;
        let window = time_window(ui.ctx());
        let newest = rows.last().map_or(0, |r| r.step);
        let start = window.start(newest);
        let clipped = |series: &[Decimator]| -> Vec<Vec<[f64; 2]>> {
            (0..names.len())
                .map(|layer| series.get(layer).map(|s| window.clip(newest, &s.points())).unwrap_or_default())
                .collect()
        };
        let lines = clipped(&view.series.log_grad_norms);
        let arm_b_lines = view.arm_b.as_deref().map_or_else(Vec::new, |b| clipped(&b.series.log_grad_norms));
        let extent = y_extent(&lines.iter().chain(&arm_b_lines).map(Vec::as_slice).collect::<Vec<_>>());
        // A gradient of exactly zero has no logarithm: mark it on the floor of the plot instead of leaving a gap.
        let floor = extent.map_or(-8.0, |(low, _)| low.floor() - 1.0);
        let zeros: Vec<Vec<[f64; 2]>> = (0..names.len())
            .map(|layer| {
                let zero_at = |r: &&crate::snapshot::MetricRow| r.grad_norms.get(layer) == Some(&0.0);
                let steps = rows.iter().filter(|r| r.step as f64 >= start).filter(zero_at);
                steps.map(|r| [r.step as f64, floor]).collect()
            })
            .collect();
        let (low, high) = extent.map_or((floor, 0.0), |(low, high)| (low, high));
        let floor_label = zeros.iter().any(|z| !z.is_empty()).then_some(floor);
        let reset = ui
            .small_button("Reset view")
            .on_hover_text("Fit the plot to its data again after a zoom (ctrl+wheel) or a drag")
            .clicked();
        steady(Plot::new("gradient-flow").id(egui::Id::unique(("convscope-plot", "gradient-flow"))), reset)
            .width(width)
            .height(height)
            .legend(Legend::default().position(egui_plot::Corner::LeftBottom))
            .link_axis(egui::Id::unique("convscope-time-x-axis"), [true, false])
            .y_axis_formatter(move |mark, _| {
                if Some(mark.value) == floor_label { "0".to_owned() } else { format!("{:.0e}", 10f64.powf(mark.value)) }
            })
            // One tick a decade, so "10,000× below" can be read off the axis.
            .y_grid_spacer(egui_plot::uniform_grid_spacer(|_| [1.0, 5.0, 10.0]))
            .include_y(if floor_label.is_some() { floor } else { low.floor() })
            .include_y(high.ceil())
            .y_axis_label("gradient norm (log)")
            .show(ui, |plot| {
                let first = view.first_row.as_ref().map_or(0.0, |r| r.step as f64).max(start);
                let last = rows.last().map_or(1.0, |r| r.step as f64).max(first + 1.0);
                if output_norm > 0.0 && output_norm.is_finite() {
                    let top = f64::from(output_norm / VANISHING_RATIO).log10();
                    // A fixed depth: reading the plot's bounds here would feed the band back into them.
                    let bottom = top - 4.0;
                    plot.polygon(
                        Polygon::new(
                            format!("vanishing zone (100× below {})", names[output]),
                            vec![[first, bottom], [last, bottom], [last, top], [first, top]],
                        )
                        .fill_color(Color32::from_rgba_unmultiplied(220, 80, 60, 40))
                        .stroke(egui::Stroke::new(1.0, Color32::from_rgba_unmultiplied(220, 80, 60, 120))),
                    );
                }
                for (layer, ((name, points), zeros)) in names.iter().zip(lines).zip(zeros).enumerate() {
                    let colour = LAYER_COLOURS[layer % LAYER_COLOURS.len()];
                    plot.line(series_line(name.clone(), points).color(colour));
                    if !zeros.is_empty() {
                        let marks = egui_plot::Points::new(format!("{name}: exactly 0"), PlotPoints::from(zeros));
                        plot.points(marks.color(colour).shape(egui_plot::MarkerShape::Down).radius(3.0));
                    }
                }
                arm_b(plot, arm_b_lines, &names);
                markers(plot, &view.markers, start, extent);
                cursor(plot, view);
            });
        self.heatmap_ui(ui, view, &names, width);
    }
}

/// Arm B's norms, dashed in the same layer colours, from the fork on. Each shares its layer's legend entry
/// (one click hides a layer in both arms, and the legend stays as long as with one arm).
fn arm_b(plot: &mut egui_plot::PlotUi<'_>, lines: Vec<Vec<[f64; 2]>>, names: &[String]) {
    for (layer, points) in lines.into_iter().enumerate() {
        let colour = LAYER_COLOURS[layer % LAYER_COLOURS.len()];
        let name = names.get(layer).cloned().unwrap_or_default();
        let line = series_line(name, points).color(colour);
        plot.line(line.style(egui_plot::LineStyle::dashed_dense()));
    }
}

impl GradientFlowPanel {
    /// The layer × time heat map of the same norms, with its colour scale.
    fn heatmap_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, names: &[String], width: f32) {
        let rows = &view.rows;
        let layers = view.series.log_grad_norms.get(..names.len()).unwrap_or_default();
        let Some((cells, low, high)) = gradient_heatmap(layers, HEATMAP_COLUMNS) else { return };
        let columns = cells.len() / names.len();
        let texture = self.heatmap.get(
            ui.ctx(),
            "gradient-heatmap",
            key(&[view.run_generation, rows.last().map_or(0, |r| r.step), names.len() as u64]),
            || {
                let span = (high - low).max(1e-6);
                let pixels: Vec<u8> = cells
                    .iter()
                    .flat_map(|&v| if v.is_finite() { colormap::sequential((v - low) / span) } else { [40, 40, 40] })
                    .collect();
                Some(ColorImage::from_rgb([columns, names.len()], &pixels))
            },
        );
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.spacing_mut().item_spacing.y = 0.0;
                for name in names {
                    ui.add_sized([52.0, 14.0], egui::Label::new(RichText::new(name).small().monospace()));
                }
            });
            if let Some(texture) = texture {
                let size = egui::vec2((width - 64.0).max(100.0), 14.0 * names.len() as f32);
                ui.add(egui::Image::new(texture).maintain_aspect_ratio(false).fit_to_exact_size(size))
                    .on_hover_text("Gradient norm per layer (rows, input at the top) over time (columns), log scale");
            }
        });
        legend(ui, &format!("1e{low:.1}"), &format!("1e{high:.1}"), 160.0, colormap::sequential);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_averages_log_norms_per_bucket_and_skips_gaps() {
        let mut first = Decimator::default();
        let mut second = Decimator::default();
        for (i, (a, b)) in [(-6.0, 0.0), (-4.0, f64::NAN), (-2.0, 1.0)].into_iter().enumerate() {
            first.push([i as f64, a]);
            second.push([i as f64, b]);
        }
        let (cells, low, high) = gradient_heatmap(&[first.clone(), second.clone()], 1).unwrap();
        assert_eq!(cells.len(), 2);
        assert!((cells[0] + 4.0).abs() < 1e-5, "mean of -6, -4, -2: {cells:?}");
        assert!((cells[1] - 0.5).abs() < 1e-5, "the gap (a zero gradient) is left out: {cells:?}");
        assert_eq!((low, high), (cells[0], cells[1]));
        let (cells, _, _) = gradient_heatmap(&[first, second], 10).unwrap();
        assert_eq!(cells.len(), 6, "never more columns than buckets");
        assert!(gradient_heatmap(&[], 10).is_none());
    }
}
