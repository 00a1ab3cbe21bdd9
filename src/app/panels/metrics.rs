//! The metrics panel: loss (raw and smoothed), train and test accuracy and the learning rate, with a vertical
//! marker wherever the user changed something. (Gradient norms have their own panel, `gradflow`.)

use eframe::egui::{self, Color32};
use egui_plot::{Corner, Legend, Line, Plot, PlotPoint, PlotPoints, Text, VLine};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, TimeWindow, header, set_time_window, steady, time_window};
use crate::app::series::SmoothedLoss;
use crate::app::view::{Marker, TrainingView};

const HELP: &str = "Loss: the batch loss each step (faint) and its exponential moving average (adjust the \
smoothing). Accuracy: running accuracy on recent training batches and accuracy on the whole test split, evaluated \
every few hundred steps. Learning rate: on a log scale, as you set it. \
Dashed lines mark the steps where you changed the learning rate, an activation, a bias or batch-norm, labelled on \
the line. Show picks the recent past (the plots follow the run and fit their y range to it) or the whole run. The \
mouse wheel scrolls the page; ctrl+wheel zooms a plot and dragging pans it; Reset view (or a double click) fits \
them again.";

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

/// Draws the change markers as dashed vertical lines, each labelled on its line (never in the legend), the
/// labels staggered so close changes stay readable; `extent` is the y range of the data shown.
pub fn markers(plot: &mut egui_plot::PlotUi<'_>, markers: &[Marker], start: f64, extent: Option<(f64, f64)>) {
    let colour = Color32::from_rgba_unmultiplied(200, 160, 60, 160);
    let shown = markers.iter().filter(|m| m.step as f64 >= start);
    for (index, marker) in shown.enumerate() {
        let x = marker.step as f64;
        plot.vline(VLine::new("", x).color(colour).style(egui_plot::LineStyle::dashed_loose()));
        if let Some((bottom, top)) = extent {
            // Inside the data's range, so the labels never stretch the fitted view.
            let y = top - (index % 3) as f64 * 0.12 * (top - bottom);
            let label = egui::RichText::new(&marker.label).small().color(Color32::from_rgb(220, 180, 90));
            plot.text(Text::new("", PlotPoint::new(x, y), label).anchor(egui::Align2::LEFT_TOP));
        }
    }
}

/// The smallest and largest y over the series (`None` when there are no finite points).
pub fn y_extent(series: &[&[[f64; 2]]]) -> Option<(f64, f64)> {
    let ys = series.iter().flat_map(|s| s.iter().map(|p| p[1])).filter(|y| y.is_finite());
    let (low, high) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    (low <= high).then_some((low, high))
}

impl Panel for MetricsPanel {
    /// Draws the plots.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, _out: &mut Outbox) {
        header(ui, "Metrics", &mut self.help, HELP);
        let mut window = time_window(ui.ctx());
        let mut reset = false;
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut self.smoothing, 0.0..=0.999).text("Smoothing")).on_hover_text(
                "Weight of the past in the smoothed loss: 0 shows the raw loss, 0.99 a very smooth trend.",
            );
            window_menu(ui, &mut window);
            reset = ui
                .button("Reset view")
                .on_hover_text("Fit every plot to its data again after a zoom (ctrl+wheel) or a drag")
                .clicked();
        });
        let newest = view.rows.last().map_or(0, |r| r.step);
        let start = window.start(newest);
        let width = (ui.available_width() / 2.0 - 12.0).max(150.0);
        let height = ((ui.available_height() - 40.0) / 2.0).clamp(90.0, 220.0);
        let link = egui::Id::unique("convscope-time-x-axis");
        let smooth = self.smoothed.update(&view.rows, self.smoothing, view.run_generation);
        let plot = |name: &str| {
            steady(Plot::new(name).id(egui::Id::unique(("convscope-plot", name))), reset)
                .width(width)
                .height(height)
                .link_axis(link, [true, false])
        };
        ui.horizontal(|ui| {
            let raw = window.clip(newest, &view.series.loss.points());
            let smooth = window.clip(newest, &smooth);
            let extent = y_extent(&[&raw, &smooth]);
            plot("loss").legend(Legend::default().position(Corner::RightTop)).show(ui, |plot| {
                let faint = Color32::from_rgba_unmultiplied(70, 130, 220, 90);
                plot.line(Line::new("loss", PlotPoints::from(raw)).color(faint));
                let line = Line::new("smoothed", PlotPoints::from(smooth)).color(Color32::from_rgb(70, 130, 220));
                plot.line(line.width(2.0));
                markers(plot, &view.markers, start, extent);
            });
            let train = window.clip(newest, &view.series.train_accuracy.points());
            let test = window.clip(newest, &view.series.test_accuracy.points());
            let extent = Some((0.0, 1.0));
            let accuracy = plot("accuracy").legend(Legend::default().position(Corner::RightBottom));
            accuracy.include_y(0.0).include_y(1.0).show(ui, |plot| {
                plot.line(Line::new("train", PlotPoints::from(train)).color(Color32::from_rgb(70, 130, 220)));
                let test = Line::new("test", PlotPoints::from(test)).color(Color32::from_rgb(235, 140, 40));
                plot.line(test.width(2.0));
                markers(plot, &view.markers, start, extent);
            });
        });
        let log_lr = window.clip(newest, &view.series.log_lr.points());
        let (low, high) = y_extent(&[&log_lr]).unwrap_or((-3.0, 0.0));
        ui.horizontal(|ui| {
            plot("learning-rate")
                .legend(Legend::default().position(Corner::LeftTop))
                .y_axis_formatter(|mark, _| format!("{:.0e}", 10f64.powf(mark.value)))
                .y_axis_label("lr (log)")
                .y_grid_spacer(egui_plot::uniform_grid_spacer(|_| [1.0, 5.0, 10.0]))
                .include_y(low - 0.5)
                .include_y(high + 0.5)
                .show(ui, |plot| {
                    plot.line(Line::new("lr", PlotPoints::from(log_lr)).color(Color32::from_rgb(150, 100, 200)));
                    markers(plot, &view.markers, start, Some((low - 0.5, high + 0.5)));
                });
        });
    }
}

/// The menu of how much of the run the plots over time show.
fn window_menu(ui: &mut egui::Ui, window: &mut TimeWindow) {
    let before = *window;
    let combo = egui::ComboBox::from_id_salt("time-window").selected_text(window.label()).show_ui(ui, |ui| {
        for choice in TimeWindow::CHOICES {
            ui.selectable_value(window, choice, choice.label());
        }
    });
    combo.response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Show"));
    combo.response.on_hover_text("The recent past (the plots follow the newest step and fit their y range to it, so an old spike does not flatten the present), or the whole run");
    if *window != before {
        set_time_window(ui.ctx(), *window);
    }
}
