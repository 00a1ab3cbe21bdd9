//! The metrics panel: loss (raw and smoothed), train and test accuracy and the learning rate, with a vertical
//! marker wherever the user changed something. (Gradient norms have their own panel, `gradflow`.)

use eframe::egui::{self, Color32};
use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, header};
use crate::app::series::SmoothedLoss;
use crate::app::view::{Marker, TrainingView};

const HELP: &str = "Loss: the batch loss each step (faint) and its exponential moving average (adjust the \
smoothing). Accuracy: running accuracy on recent training batches and accuracy on the whole test split, evaluated \
every few hundred steps. Learning rate: on a log scale, as you set it. \
Dashed lines mark the steps where you changed the learning rate, an activation, a bias or batch-norm.";

pub const LAYER_COLOURS: [Color32; 8] = [
    Color32::from_rgb(70, 130, 220),
    Color32::from_rgb(235, 140, 40),
    Color32::from_rgb(80, 170, 90),
    Color32::from_rgb(200, 80, 80),
    Color32::from_rgb(150, 100, 200),
    Color32::from_rgb(140, 100, 70),
    Color32::from_rgb(220, 120, 180),
    Color32::from_rgb(120, 120, 120),
];

/// The metrics panel.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsPanel {
    /// Exponential-moving-average factor for the smoothed loss (0 = raw).
    pub smoothing: f64,
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    smoothed: SmoothedLoss,
}

impl Default for MetricsPanel {
    fn default() -> Self {
        MetricsPanel { smoothing: 0.95, help: false, smoothed: SmoothedLoss::default() }
    }
}

/// Draws the change markers as dashed vertical lines.
pub fn markers(plot: &mut egui_plot::PlotUi<'_>, markers: &[Marker]) {
    for marker in markers {
        plot.vline(
            VLine::new(marker.label.clone(), marker.step as f64)
                .color(Color32::from_rgba_unmultiplied(200, 160, 60, 160))
                .style(egui_plot::LineStyle::dashed_loose()),
        );
    }
}

impl Panel for MetricsPanel {
    /// Draws the plots.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, _out: &mut Outbox) {
        header(ui, "Metrics", &mut self.help, HELP);
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut self.smoothing, 0.0..=0.999).text("Smoothing")).on_hover_text(
                "Weight of the past in the smoothed loss: 0 shows the raw loss, 0.99 a very smooth trend.",
            );
        });
        let rows = &view.rows;
        let width = (ui.available_width() / 2.0 - 12.0).max(150.0);
        let height = ((ui.available_height() - 40.0) / 2.0).clamp(90.0, 220.0);
        let link = egui::Id::unique("convscope-metrics-x-axis");
        ui.horizontal(|ui| {
            let smooth = self.smoothed.update(rows, self.smoothing, view.run_generation);
            let series = &view.series;
            Plot::new("loss")
                .width(width)
                .height(height)
                .legend(Legend::default())
                .link_axis(link, [true, false])
                .show(ui, |plot| {
                    plot.line(
                        Line::new("loss", PlotPoints::from(series.loss.points()))
                            .color(Color32::from_rgba_unmultiplied(70, 130, 220, 90)),
                    );
                    plot.line(
                        Line::new("smoothed", PlotPoints::from(smooth))
                            .color(Color32::from_rgb(70, 130, 220))
                            .width(2.0),
                    );
                    markers(plot, &view.markers);
                });
            Plot::new("accuracy")
                .width(width)
                .height(height)
                .legend(Legend::default())
                .link_axis(link, [true, false])
                .include_y(0.0)
                .include_y(1.0)
                .show(ui, |plot| {
                    plot.line(
                        Line::new("train", PlotPoints::from(view.series.train_accuracy.points()))
                            .color(Color32::from_rgb(70, 130, 220)),
                    );
                    plot.line(
                        Line::new("test", PlotPoints::from(view.series.test_accuracy.points()))
                            .color(Color32::from_rgb(235, 140, 40))
                            .width(2.0),
                    );
                    markers(plot, &view.markers);
                });
        });
        let (lr_low, lr_high) =
            view.series.log_lr.points().iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(10f64.powf(p[1])), hi.max(10f64.powf(p[1])))
            });
        let (lr_low, lr_high) =
            if lr_low.is_finite() { (lr_low.log10() - 0.5, lr_high.log10() + 0.5) } else { (-3.0, 0.0) };
        ui.horizontal(|ui| {
            Plot::new("learning-rate")
                .width(width)
                .height(height)
                .legend(Legend::default())
                .link_axis(link, [true, false])
                .y_axis_formatter(|mark, _| format!("{:.0e}", 10f64.powf(mark.value)))
                .y_axis_label("learning rate (log)")
                .include_y(lr_low)
                .include_y(lr_high)
                .show(ui, |plot| {
                    plot.line(
                        Line::new("lr", PlotPoints::from(view.series.log_lr.points()))
                            .color(Color32::from_rgb(150, 100, 200)),
                    );
                    markers(plot, &view.markers);
                });
        });
    }
}
