//! One struct per panel, each a [`Panel`]: it draws from the [`TrainingView`] and puts what the user asks for
//! into the [`Outbox`]; none changes the view or talks to the worker directly. Also the small widgets the
//! panels share.

pub mod activations;
pub mod browse;
pub mod compare;
pub mod confusion;
pub mod curves;
pub mod data;
pub mod diagnosis;
pub mod export;
pub mod filters;
pub mod gradflow;
pub mod histograms;
pub mod layers;
pub mod metrics;
pub mod regression;
pub mod run;
pub mod settings;
pub mod status;
pub mod timeline;
pub mod toolbar;

use eframe::egui::{self, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::view::TrainingView;

/// A part of the window: draws itself from the view, and asks for changes through the outbox.
pub trait Panel {
    /// Draws the panel into `ui`.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox);
}

/// How much of the run the plots over time show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeWindow {
    /// The newest this-many steps: the plots follow the run, and their y ranges fit what is shown.
    Last(u64),
    /// Every step since the net was built.
    WholeRun,
}

impl TimeWindow {
    /// The choices the plots offer.
    pub const CHOICES: [TimeWindow; 4] =
        [TimeWindow::Last(500), TimeWindow::Last(2_000), TimeWindow::Last(10_000), TimeWindow::WholeRun];

    /// The first step shown when the newest is `newest`.
    pub fn start(self, newest: u64) -> f64 {
        match self {
            TimeWindow::Last(steps) => newest.saturating_sub(steps) as f64,
            TimeWindow::WholeRun => f64::NEG_INFINITY,
        }
    }

    /// The points of `series` inside the window.
    pub fn clip(self, newest: u64, series: &[[f64; 2]]) -> Vec<[f64; 2]> {
        let start = self.start(newest);
        let first = series.partition_point(|p| p[0] < start);
        series[first..].to_vec()
    }

    /// Its name in the menu.
    pub fn label(self) -> String {
        match self {
            TimeWindow::Last(steps) => format!("last {steps} steps"),
            TimeWindow::WholeRun => "whole run".to_owned(),
        }
    }
}

/// The window the plots over time share (the metrics panel picks it; the gradient-flow plot follows).
pub fn time_window(ctx: &egui::Context) -> TimeWindow {
    ctx.data_mut(|d| *d.get_persisted_mut_or(egui::Id::unique(TIME_WINDOW_KEY), TimeWindow::Last(2_000)))
}

/// Changes the window the plots over time share.
pub fn set_time_window(ctx: &egui::Context, window: TimeWindow) {
    ctx.data_mut(|d| d.insert_persisted(egui::Id::unique(TIME_WINDOW_KEY), window));
}

const TIME_WINDOW_KEY: &str = "convscope-time-window";

/// How every plot answers the mouse: the wheel scrolls the page, never the plot; ctrl+wheel (or a pinch)
/// zooms and dragging pans, both deliberate; a double click, or the panel's Reset view, brings the fitted view
/// back.
pub fn steady(plot: egui_plot::Plot<'_>, reset: bool) -> egui_plot::Plot<'_> {
    let plot = plot.allow_scroll(false).allow_double_click_reset(true);
    if reset { plot.reset() } else { plot }
}

/// A line through a series over time (a decimated one holds each bucket's lowest and highest point), drawn as
/// the polyline it is: egui_plot would merge the points within a pixel into bands and fill between neighbouring
/// bands, which drew wedges between the spikes of a noisy series.
pub fn series_line<'a>(name: impl Into<String>, points: Vec<[f64; 2]>) -> egui_plot::Line<'a> {
    egui_plot::Line::new(name, egui_plot::PlotPoints::from(points)).allow_band(false)
}

/// A number being edited with a drag value: shows the draft while the user drags or types, and returns the
/// new value once it is committed (typed, or released after a drag), so one edit is one change.
pub fn edit_number<T: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    draft: &mut Option<T>,
    current: T,
    enabled: bool,
    (range, speed): (std::ops::RangeInclusive<T>, f64),
    hover: &str,
) -> Option<T> {
    let mut value = draft.unwrap_or(current);
    // Typed values count once the field lets go (Enter, or a click elsewhere): egui's default takes every
    // keystroke, so "0.05" went through "0" (clamped to the floor) and "0.0" as changes of their own.
    let widget = egui::DragValue::new(&mut value).range(range).speed(speed).max_decimals(6).update_while_editing(false);
    let response = ui.add_enabled(enabled, widget).on_hover_text(hover);
    if response.changed() {
        *draft = Some(value);
    }
    if (response.changed() && !response.dragged()) || response.drag_stopped() {
        return draft.take().filter(|v| *v != current);
    }
    if !response.dragged() && !response.has_focus() {
        *draft = None;
    }
    None
}

/// A panel's title with a "what am I looking at?" toggle that shows `help` below it.
pub fn header(ui: &mut egui::Ui, title: &str, help_open: &mut bool, help: &str) {
    ui.horizontal(|ui| {
        ui.heading(title);
        let button = ui
            .selectable_label(*help_open, RichText::new("?").strong())
            .on_hover_text(format!("What am I looking at? ({title})"));
        if button.clicked() {
            *help_open = !*help_open;
        }
        button
            .widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, *help_open, format!("{title} help")));
    });
    if *help_open {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(RichText::new(help).small());
        });
    }
}

/// Formats a value compactly for legends and tables.
pub fn short(value: f32) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".into()
    } else if !(1e-2..1e4).contains(&magnitude) {
        format!("{value:.1e}")
    } else if magnitude < 1.0 {
        format!("{value:.3}")
    } else if magnitude < 100.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.0}")
    }
}

/// A horizontal colour-scale bar with its numeric ends, painted from `colour(t)` for `t` in `[0, 1]`.
pub fn legend(ui: &mut egui::Ui, low: &str, high: &str, width: f32, colour: impl Fn(f32) -> [u8; 3]) {
    ui.horizontal(|ui| {
        ui.label(RichText::new(low).small().monospace());
        let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 10.0), egui::Sense::hover());
        let steps = 32;
        for i in 0..steps {
            let t = i as f32 / (steps - 1) as f32;
            let [r, g, b] = colour(t);
            let x0 = rect.left() + rect.width() * i as f32 / steps as f32;
            let x1 = rect.left() + rect.width() * (i + 1) as f32 / steps as f32;
            let cell = egui::Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom()));
            ui.painter().rect_filled(cell, 0.0, egui::Color32::from_rgb(r, g, b));
        }
        ui.label(RichText::new(high).small().monospace());
    });
}

/// Tick labels on a plot's x axis at least this far apart, in points (egui_plot's default of 60 leaves a narrow
/// plot with a single label).
pub const X_LABEL_SPACING: f32 = 32.0;

/// The x-axis hints that go with [`nice_x_spacer`]: labels as close as [`X_LABEL_SPACING`].
pub fn nice_x_axis<'a>() -> Vec<egui_plot::AxisHints<'a>> {
    vec![egui_plot::AxisHints::new_x().label_spacing(X_LABEL_SPACING..=X_LABEL_SPACING + 8.0)]
}

/// Grid marks for a linear x axis `width` points wide: a 1-2-5 step that puts a label every
/// [`X_LABEL_SPACING`] points or so, so a narrow plot over ±3 reads −2, 0, 2 rather than a lone 0.
pub fn nice_x_spacer(width: f32) -> impl Fn(egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
    move |input| {
        let (low, high) = input.bounds;
        let step = nice_step((high - low) * f64::from(X_LABEL_SPACING + 2.0) / f64::from(width.max(1.0)));
        if !(step.is_finite() && step > 0.0) {
            return Vec::new();
        }
        let (first, last) = ((low / step).ceil() as i64, (high / step).floor() as i64);
        (first..=last.min(first + 1000))
            .map(|k| egui_plot::GridMark { value: k as f64 * step, step_size: step })
            .collect()
    }
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `at_least`.
pub fn nice_step(at_least: f64) -> f64 {
    if !(at_least.is_finite() && at_least > 0.0) {
        return f64::NAN;
    }
    let power = 10f64.powf(at_least.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|&s| s >= at_least * (1.0 - 1e-9)).unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrow_plot_gets_several_x_labels() {
        assert_eq!(nice_step(1.13), 2.0);
        assert_eq!(nice_step(0.03), 0.05);
        assert_eq!(nice_step(5.0), 5.0);
        assert!(nice_step(0.0).is_nan());
        let marks = |low: f64, high: f64, width: f32| -> Vec<f64> {
            nice_x_spacer(width)(egui_plot::GridInput { bounds: (low, high), base_step_size: 0.01 })
                .iter()
                .map(|m| m.value)
                .collect()
        };
        // A 170-point curve plot over ±3: three labels, each 56 points apart.
        assert_eq!(marks(-3.0, 3.0, 170.0), [-2.0, 0.0, 2.0]);
        // Wide inputs (a large-init layer) and a wide plot: labels every few tens of units.
        assert_eq!(marks(-40.0, 25.0, 170.0), [-40.0, -20.0, 0.0, 20.0]);
        assert!(marks(-3.0, 3.0, 600.0).len() >= 7);
        assert!(marks(0.0, 0.0, 170.0).len() <= 1);
    }
}
