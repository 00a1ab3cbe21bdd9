//! The metrics panel: loss (raw and smoothed), train and test accuracy and the learning rate, with a vertical
//! marker wherever the user changed something. (Gradient norms have their own panel, `gradflow`.)

use eframe::egui::{self, Color32, RichText};
use egui_plot::{Corner, FilledArea, Legend, Plot, PlotPoint, Text, VLine};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, TimeWindow, header, series_line, set_time_window, short, steady, time_window};
use crate::app::series::{SeedBand, SmoothedLoss};
use crate::app::view::{Marker, TrainingView};
use crate::protocol::{Command, SeedRuns};

const HELP: &str = "Loss: the batch loss each step (faint) and its exponential moving average (adjust the \
smoothing). Accuracy: running accuracy on recent training batches and accuracy on the whole test split, evaluated \
every few hundred steps. Learning rate: on a log scale, as you set it. \
Dashed lines mark the steps where you changed the learning rate, an activation, a bias or batch-norm, labelled on \
the line. Repeat over seeds trains these settings (and arm B's) from scratch with other seeds beside the live run \
and draws the band of their smoothed losses, lowest to highest, with the mean dotted. Show picks the recent past (the plots follow the run and fit their y range to it) or the whole run. The \
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
    /// Arm B's smoothed loss, while an A/B comparison runs.
    #[serde(skip)]
    smoothed_b: SmoothedLoss,
    /// How many other seeds Repeat over seeds trains.
    pub repeat_seeds: u32,
    /// A repeat was asked for and not stopped.
    #[serde(skip)]
    repeating: bool,
}

impl Default for MetricsPanel {
    fn default() -> Self {
        MetricsPanel {
            smoothing: 0.95,
            help: false,
            smoothed: SmoothedLoss::default(),
            smoothed_b: SmoothedLoss::default(),
            repeat_seeds: 3,
            repeating: false,
        }
    }
}

/// Draws the timeline's cursor: a solid line at the step whose snapshot the panels show (nothing when live).
pub fn cursor(plot: &mut egui_plot::PlotUi<'_>, view: &TrainingView) {
    if let Some(step) = view.timeline.shown_step() {
        plot.vline(VLine::new("", step as f64).color(Color32::from_rgb(230, 190, 90)).width(1.5));
    }
}

/// Rows of marker labels, top down, before a label that fits nowhere is left off (its line stays).
const MARKER_LABEL_ROWS: usize = 3;
/// Estimated width of one small-font character, in points, for fitting labels side by side.
const LABEL_CHAR_WIDTH: f64 = 6.2;

/// Draws the change markers as dashed vertical lines (never in the legend). With `extent` (the y range of the
/// data shown) each is labelled on its line, in the first of [`MARKER_LABEL_ROWS`] rows where it does not
/// overlap the label before it; a label that fits nowhere is left off, so close changes never pile up into an
/// unreadable block. Without `extent` only the lines are drawn.
pub fn markers(plot: &mut egui_plot::PlotUi<'_>, markers: &[Marker], start: f64, extent: Option<(f64, f64)>) {
    let colour = Color32::from_rgba_unmultiplied(200, 160, 60, 160);
    let shown: Vec<&Marker> = markers.iter().filter(|m| m.step as f64 >= start).collect();
    for marker in &shown {
        plot.vline(VLine::new("", marker.step as f64).color(colour).style(egui_plot::LineStyle::dashed_loose()));
    }
    let Some((bottom, top)) = extent else { return };
    let steps_per_point = plot.transform().dvalue_dpos()[0].abs();
    let steps = shown.iter().map(|m| (m.step as f64, m.label.chars().count()));
    for (marker, row) in shown.iter().zip(label_rows(steps, steps_per_point)) {
        let Some(row) = row else { continue };
        // Inside the data's range, so the labels never stretch the fitted view.
        let y = top - row as f64 * 0.12 * (top - bottom);
        let label = egui::RichText::new(&marker.label).small().color(Color32::from_rgb(220, 180, 90));
        let at = PlotPoint::new(marker.step as f64, y);
        plot.text(Text::new("", at, label).anchor(egui::Align2::LEFT_TOP));
    }
}

/// For markers at `(step, label length)` in step order, the label row each gets (`None`: no room), given how
/// many steps one point of the plot spans.
pub fn label_rows(markers: impl Iterator<Item = (f64, usize)>, steps_per_point: f64) -> Vec<Option<usize>> {
    let mut free_from = [f64::NEG_INFINITY; MARKER_LABEL_ROWS];
    markers
        .map(|(x, chars)| {
            let row = free_from.iter().position(|&free| x >= free)?;
            free_from[row] = x + (chars as f64 * LABEL_CHAR_WIDTH + 8.0) * steps_per_point;
            Some(row)
        })
        .collect()
}

/// The smallest and largest y over the series (`None` when there are no finite points).
pub fn y_extent(series: &[&[[f64; 2]]]) -> Option<(f64, f64)> {
    let ys = series.iter().flat_map(|s| s.iter().map(|p| p[1])).filter(|y| y.is_finite());
    let (low, high) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    (low <= high).then_some((low, high))
}

impl Panel for MetricsPanel {
    /// Draws the plots.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        header(ui, "Metrics", &mut self.help, HELP);
        let mut window = time_window(ui.ctx());
        let mut reset = false;
        ui.horizontal_wrapped(|ui| {
            ui.add(egui::Slider::new(&mut self.smoothing, 0.0..=0.999).text("Smoothing")).on_hover_text(
                "Weight of the past in the smoothed loss: 0 shows the raw loss, 0.99 a very smooth trend.",
            );
            window_menu(ui, &mut window);
            reset = ui
                .button("Reset view")
                .on_hover_text("Fit every plot to its data again after a zoom (ctrl+wheel) or a drag")
                .clicked();
            self.seed_controls(ui, view, out);
        });
        regression_figures(ui, view);
        let newest = view.rows.last().map_or(0, |r| r.step);
        let start = window.start(newest);
        // The visible width: content above that overflows (a wide row) widens the scrolled area, not the view.
        let visible = ui.available_width().min(ui.clip_rect().width());
        let width = (visible / 2.0 - 12.0).max(150.0);
        let height = ((ui.available_height() - 40.0) / 2.0).clamp(90.0, 220.0);
        let link = egui::Id::unique("convscope-time-x-axis");
        let smooth = self.smoothed.update(&view.rows, self.smoothing, view.run_generation);
        // Arm B, drawn dashed in A's colours (A solid): its series start at the fork.
        let b = view.arm_b.as_deref();
        let smooth_b =
            b.map(|b| window.clip(newest, &self.smoothed_b.update(&b.rows, self.smoothing, b.run_generation)));
        let (name_a, name_b) = if b.is_some() { (" (A)", " (B)") } else { ("", "") };
        let bands = self.seed_bands(view, start, [name_a, name_b]);
        let plot = |name: &str| {
            steady(Plot::new(name).id(egui::Id::unique(("convscope-plot", name))), reset)
                .width(width)
                .height(height)
                .link_axis(link, [true, false])
        };
        ui.horizontal(|ui| {
            let raw = window.clip(newest, &view.series.loss.points());
            let smooth = window.clip(newest, &smooth);
            let extent = y_extent(&[&raw, &smooth, smooth_b.as_deref().unwrap_or_default()]);
            plot("loss").legend(Legend::default().position(Corner::RightTop)).show(ui, |plot| {
                let faint = Color32::from_rgba_unmultiplied(70, 130, 220, 90);
                plot.line(series_line(format!("loss{name_a}"), raw).color(faint));
                let blue = Color32::from_rgb(70, 130, 220);
                let line = series_line(format!("smoothed{name_a}"), smooth).color(blue);
                plot.line(line.width(2.0));
                if let Some(smooth_b) = smooth_b {
                    let line = series_line(format!("smoothed{name_b}"), smooth_b).color(blue);
                    plot.line(line.width(2.0).style(egui_plot::LineStyle::dashed_dense()));
                }
                for (band, seeds, colour, name) in &bands {
                    draw_band(plot, band, *seeds, *colour, name);
                }
                markers(plot, &view.markers, start, extent);
                cursor(plot, view);
            });
            let train = window.clip(newest, &view.series.train_accuracy.points());
            let test = window.clip(newest, &view.series.test_accuracy.points());
            let accuracy = plot("accuracy").legend(Legend::default().position(Corner::RightBottom));
            // A regression plots R² (1 is perfect, 0 no better than the mean) where a classifier plots accuracy.
            let what = if view.config.task.is_regression() { " R²" } else { "" };
            let accuracy = if what.is_empty() { accuracy } else { accuracy.y_axis_label("R²") };
            accuracy.include_y(0.0).include_y(1.0).show(ui, |plot| {
                let (blue, orange) = (Color32::from_rgb(70, 130, 220), Color32::from_rgb(235, 140, 40));
                plot.line(series_line(format!("train{what}{name_a}"), train).color(blue));
                let test = series_line(format!("test{what}{name_a}"), test).color(orange);
                plot.line(test.width(2.0));
                if let Some(b) = b {
                    let dashed = egui_plot::LineStyle::dashed_dense();
                    let train = window.clip(newest, &b.series.train_accuracy.points());
                    let test = window.clip(newest, &b.series.test_accuracy.points());
                    plot.line(series_line(format!("train{what}{name_b}"), train).color(blue).style(dashed));
                    let test = series_line(format!("test{what}{name_b}"), test).color(orange);
                    plot.line(test.width(2.0).style(dashed));
                }
                // The loss plot beside it names the changes; here the lines are enough.
                markers(plot, &view.markers, start, None);
                cursor(plot, view);
            });
        });
        lr_plot(ui, plot("learning-rate"), view, (window, newest, start));
    }
}

/// One arm's band over seeds, ready to draw: the band, its seed count, colour and legend suffix.
type ArmBand = (SeedBand, usize, Color32, String);

impl MetricsPanel {
    /// The bands of the runs repeated over seeds, A's in blue and B's in orange, from step `start` on.
    fn seed_bands(&self, view: &TrainingView, start: f64, names: [&str; 2]) -> Vec<ArmBand> {
        (view.seed_runs.iter().zip(names))
            .zip([Color32::from_rgb(70, 130, 220), Color32::from_rgb(235, 140, 40)])
            .filter_map(|((runs, name), colour)| {
                let runs = runs.as_deref()?;
                Some((SeedBand::of(runs, self.smoothing).from_step(start), runs.runs.len(), colour, name.to_owned()))
            })
            .collect()
    }

    /// Repeat over seeds: how many, the button (or, while it runs, how far it got and Stop), and what the band
    /// on the loss plot shows.
    fn seed_controls(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        let steps = view.step.clamp(REPEAT_STEPS.0, REPEAT_STEPS.1);
        // Each seed trains every arm's settings: the runs asked for are the seeds times the arms reporting.
        let reported: Vec<&SeedRuns> = view.seed_runs.iter().flatten().map(|r| &**r).collect();
        let done: usize = reported.iter().map(|r| r.runs.len()).sum();
        let asked = reported.first().map_or(self.repeat_seeds, |r| r.asked) as usize * reported.len().max(1);
        if self.repeating && done < asked {
            ui.label(RichText::new(format!("seeds: {done} of {asked} runs trained")).small());
            if ui.button("Stop seeds").on_hover_text("Stop repeating over seeds; the band keeps what is done").clicked()
            {
                out.send(Command::RepeatOverSeeds { seeds: 0, steps });
                self.repeating = false;
            }
            return;
        }
        ui.add(egui::DragValue::new(&mut self.repeat_seeds).range(1..=10).suffix(" seeds"));
        let hover = format!(
            "Train these settings (and arm B's, in an A/B run) from scratch with {} other seeds for {steps} steps \
             each, on one core beside the live run, and draw the band of their smoothed losses (lowest to highest, \
             mean dotted) on the loss plot: is the live curve typical, and is A against B larger than the \
             seed-to-seed spread?",
            self.repeat_seeds
        );
        if ui
            .add_enabled(!view.layers.is_empty(), egui::Button::new("Repeat over seeds"))
            .on_hover_text(hover)
            .clicked()
        {
            out.send(Command::RepeatOverSeeds { seeds: self.repeat_seeds, steps });
            self.repeating = true;
        }
    }
}

/// Steps each repeat over seeds trains: as many as the run has, within these bounds.
const REPEAT_STEPS: (u64, u64) = (200, 5_000);

/// One arm's band over seeds: filled from lowest to highest, the mean dotted.
fn draw_band(plot: &mut egui_plot::PlotUi<'_>, band: &SeedBand, seeds: usize, colour: Color32, name: &str) {
    let [r, g, b, _] = colour.to_array();
    let fill = Color32::from_rgba_unmultiplied(r, g, b, 45);
    let label = format!("{seeds} seed{}{name}", if seeds == 1 { "" } else { "s" });
    let area = FilledArea::new(label.clone(), &band.steps, &band.low, &band.high).fill_color(fill);
    plot.add(area);
    let mean: Vec<[f64; 2]> = band.steps.iter().zip(&band.mean).map(|(&x, &y)| [x, y]).collect();
    // Unnamed, so the legend (large on a small plot) lists the band once.
    let line = series_line("", mean).color(colour);
    plot.line(line.width(1.0).style(egui_plot::LineStyle::dotted_dense()));
}

/// A regression's train and test figures in target units (the plots below show its loss and R²).
fn regression_figures(ui: &mut egui::Ui, view: &TrainingView) {
    let Some(row) = view.rows.last() else { return };
    for (split, metrics) in [("train", row.train_regression), ("test", row.test_regression)] {
        if let Some(m) = metrics {
            let at = if split == "test" { format!(" @{}", row.test_step) } else { String::new() };
            let text = format!("{split}: MSE {} · MAE {} · R² {:.3}{at}", short(m.mse), short(m.mae), m.r2);
            ui.label(RichText::new(text).small().monospace());
        }
    }
}

/// The learning rate on a log scale (arm B's dashed), with the change markers.
fn lr_plot(ui: &mut egui::Ui, plot: Plot<'_>, view: &TrainingView, (window, newest, start): (TimeWindow, u64, f64)) {
    let log_lr = window.clip(newest, &view.series.log_lr.points());
    let log_lr_b = view.arm_b.as_deref().map(|b| window.clip(newest, &b.series.log_lr.points()));
    let (low, high) = y_extent(&[&log_lr, log_lr_b.as_deref().unwrap_or_default()]).unwrap_or((-3.0, 0.0));
    let purple = Color32::from_rgb(150, 100, 200);
    ui.horizontal(|ui| {
        plot.legend(Legend::default().position(Corner::LeftTop))
            .y_axis_formatter(|mark, _| format!("{:.0e}", 10f64.powf(mark.value)))
            .y_axis_label("lr (log)")
            .y_grid_spacer(egui_plot::uniform_grid_spacer(|_| [1.0, 5.0, 10.0]))
            .include_y(low - 0.5)
            .include_y(high + 0.5)
            .show(ui, |plot| {
                let name = if log_lr_b.is_some() { "lr (A)" } else { "lr" };
                plot.line(series_line(name, log_lr).color(purple));
                if let Some(log_lr_b) = log_lr_b {
                    let dashed = egui_plot::LineStyle::dashed_dense();
                    plot.line(series_line("lr (B)", log_lr_b).color(purple).style(dashed));
                }
                markers(plot, &view.markers, start, None);
                cursor(plot, view);
            });
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_marker_labels_take_free_rows_and_the_rest_are_left_off() {
        // One step per point; labels of 10 characters take 10 · 6.2 + 8 = 70 points.
        let rows =
            label_rows([(0.0, 10), (20.0, 10), (40.0, 10), (60.0, 10), (75.0, 10), (300.0, 10)].into_iter(), 1.0);
        assert_eq!(rows, [Some(0), Some(1), Some(2), None, Some(0), Some(0)]);
        // Zoomed out tenfold a label spans 700 steps: the third change is past the first label's end.
        let rows = label_rows([(0.0, 10), (100.0, 10), (800.0, 10)].into_iter(), 10.0);
        assert_eq!(rows, [Some(0), Some(1), Some(0)]);
        let rows = label_rows((0..5).map(|i| (f64::from(i), 10)), 10.0);
        assert_eq!(rows, [Some(0), Some(1), Some(2), None, None]);
    }
}
