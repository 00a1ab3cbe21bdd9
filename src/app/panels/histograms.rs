//! Weight and gradient histograms over time: for the chosen layer, how the magnitudes |w| and |∂loss/∂w| are
//! spread (log scale, one column per snapshot, bright = many) over the whole run, with exact zeros and
//! non-finite values counted beside it — never dropped.

use eframe::egui::{self, ColorImage, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, header};
use crate::app::textures::{TextureSlot, key};
use crate::app::view::TrainingView;
use crate::render::colormap;

const HELP: &str = "How big the chosen layer's weights (left) and weight gradients (right) are, over time: each \
column is one snapshot, each row a band of magnitude on a log scale (1e2 at the top, 1e-8 at the bottom), bright \
where many values fall. Gradients sliding down towards 1e-6 and below are vanishing; a band moving up fast is \
exploding. Exact zeros (a dead ReLU's weights get none) and NaN / infinite values are counted under each map, \
never left out. The history keeps the whole run: when it is full, neighbouring columns are merged.";

/// Decades of magnitude covered: 10^LOWEST_EXPONENT … 10^HIGHEST_EXPONENT.
pub const LOWEST_EXPONENT: i32 = -8;
/// See [`LOWEST_EXPONENT`].
pub const HIGHEST_EXPONENT: i32 = 2;
/// Bins per decade.
pub const BINS_PER_DECADE: usize = 4;
/// Columns kept; when full, neighbours merge so the map always spans the whole run.
pub const HISTORY_COLUMNS: usize = 256;

/// Magnitudes of one tensor binned on a log scale.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogHistogram {
    /// Counts per bin, smallest magnitudes first; magnitudes outside the range land in the end bins.
    pub counts: Vec<u32>,
    /// Values exactly zero.
    pub zeros: u32,
    /// NaN and ±∞ values.
    pub non_finite: u32,
}

impl LogHistogram {
    /// Number of bins.
    pub fn bins() -> usize {
        (HIGHEST_EXPONENT - LOWEST_EXPONENT) as usize * BINS_PER_DECADE
    }

    /// Bins the magnitudes of `values`.
    pub fn of(values: &[f32]) -> LogHistogram {
        let bins = Self::bins();
        let mut histogram = LogHistogram { counts: vec![0; bins], zeros: 0, non_finite: 0 };
        for &v in values {
            if !v.is_finite() {
                histogram.non_finite += 1;
            } else if v == 0.0 {
                histogram.zeros += 1;
            } else {
                let position = (v.abs().log10() - LOWEST_EXPONENT as f32) * BINS_PER_DECADE as f32;
                let bin = (position.max(0.0) as usize).min(bins - 1);
                histogram.counts[bin] += 1;
            }
        }
        histogram
    }

    /// Adds `other`'s counts (merging two columns of the history).
    fn merge(&mut self, other: &LogHistogram) {
        for (count, more) in self.counts.iter_mut().zip(&other.counts) {
            *count += more;
        }
        self.zeros += other.zeros;
        self.non_finite += other.non_finite;
    }
}

/// A run's histograms of one tensor, at most [`HISTORY_COLUMNS`] columns spanning the whole run.
#[derive(Debug, Clone, Default)]
pub struct HistogramHistory {
    /// Oldest first.
    pub columns: Vec<LogHistogram>,
    /// Snapshots per column now (doubles at every merge).
    pub stride: usize,
    /// Snapshots gathered into the newest column so far.
    filled: usize,
}

impl HistogramHistory {
    /// Adds one snapshot's histogram.
    pub fn push(&mut self, histogram: LogHistogram) {
        self.stride = self.stride.max(1);
        match self.columns.last_mut() {
            Some(last) if self.filled < self.stride => {
                last.merge(&histogram);
                self.filled += 1;
                return;
            }
            _ => {}
        }
        if self.columns.len() == HISTORY_COLUMNS {
            // Full: merge neighbours, halving the columns and doubling what each covers.
            let merged = self
                .columns
                .chunks(2)
                .map(|pair| {
                    let mut first = pair[0].clone();
                    if let Some(second) = pair.get(1) {
                        first.merge(second);
                    }
                    first
                })
                .collect();
            self.columns = merged;
            self.stride *= 2;
        }
        self.columns.push(histogram);
        self.filled = 1;
    }

    /// The map as pixels: one column per history column, the largest magnitudes at the top, brightness the
    /// square root of each bin's share of its column.
    pub fn image(&self) -> Option<ColorImage> {
        let width = self.columns.len();
        if width == 0 {
            return None;
        }
        let bins = LogHistogram::bins();
        let mut pixels = vec![0_u8; width * bins * 3];
        for (x, column) in self.columns.iter().enumerate() {
            let peak = column.counts.iter().copied().max().unwrap_or(0).max(1) as f32;
            for (bin, &count) in column.counts.iter().enumerate() {
                let y = bins - 1 - bin;
                let colour = if count == 0 { [20, 20, 24] } else { colormap::sequential((count as f32 / peak).sqrt()) };
                let at = (y * width + x) * 3;
                pixels[at..at + 3].copy_from_slice(&colour);
            }
        }
        Some(ColorImage::from_rgb([width, bins], &pixels))
    }
}

/// The histogram panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HistogramPanel {
    /// Index of the layer shown (among the layers with weights).
    pub layer: usize,
    #[serde(skip)]
    help: bool,
    /// Per layer: weights and gradients.
    #[serde(skip)]
    history: Vec<(HistogramHistory, HistogramHistory)>,
    /// The step of the snapshot last recorded, and the run it belonged to.
    #[serde(skip)]
    seen: Option<(u64, u64)>,
    #[serde(skip)]
    textures: (TextureSlot, TextureSlot),
}

impl HistogramPanel {
    /// Records the newest snapshot once (call every frame, shown or not, so the history has no gaps).
    pub fn observe(&mut self, view: &TrainingView) {
        // An old snapshot on show (the timeline) is in the history already.
        let Some(snapshot) = view.snapshot.as_ref().filter(|_| view.timeline.shown.is_none()) else { return };
        if let Some((step, run)) = self.seen {
            if run != view.run_generation {
                self.history.clear(); // a new net
            } else if snapshot.step <= step {
                return;
            }
        }
        self.history.resize_with(snapshot.layers.len(), Default::default);
        for (layer, (weights, grads)) in snapshot.layers.iter().zip(self.history.iter_mut()) {
            weights.push(LogHistogram::of(&layer.weights.data));
            if let Some(g) = &layer.weight_grads {
                grads.push(LogHistogram::of(&g.data));
            }
        }
        self.seen = Some((snapshot.step, view.run_generation));
    }
}

impl Panel for HistogramPanel {
    /// Draws the two maps of the chosen layer.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, _out: &mut Outbox) {
        header(ui, "Weight and gradient histograms", &mut self.help, HELP);
        let names = view.weighted_names();
        if names.is_empty() {
            ui.label("Waiting for the first snapshot…");
            return;
        }
        self.layer = self.layer.min(names.len() - 1);
        let combo =
            egui::ComboBox::from_id_salt("histogram-layer").selected_text(&names[self.layer]).show_ui(ui, |ui| {
                for (index, name) in names.iter().enumerate() {
                    ui.selectable_value(&mut self.layer, index, name);
                }
            });
        combo.response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Histogram layer"));
        let Some((weights, grads)) = self.history.get(self.layer) else { return };
        let generation = self.seen.as_ref().map_or(0, |(g, _)| *g);
        // The visible width: a wide panel above (many activation curves) can widen the scrolled content.
        let visible = ui.available_width().min(ui.clip_rect().width());
        let half = (visible / 2.0 - 56.0).max(80.0);
        let textures = &mut self.textures;
        let layer = self.layer as u64;
        ui.horizontal_top(|ui| {
            for (title, history, slot, salt) in
                [("|w|", weights, &mut textures.0, 1_u64), ("|∂loss/∂w|", grads, &mut textures.1, 2)]
            {
                ui.vertical(|ui| {
                    ui.label(RichText::new(format!("{} {title}", names[self.layer])).strong());
                    ui.horizontal_top(|ui| {
                        ui.vertical(|ui| {
                            ui.label(RichText::new(format!("1e{HIGHEST_EXPONENT}")).small().monospace());
                            ui.add_space(86.0);
                            ui.label(RichText::new(format!("1e{LOWEST_EXPONENT}")).small().monospace());
                        });
                        let key = key(&[generation, layer, salt]);
                        match slot.get(ui.ctx(), "histogram", key, || history.image()) {
                            Some(texture) if !history.columns.is_empty() => {
                                ui.add(
                                    egui::Image::new(texture)
                                        .maintain_aspect_ratio(false)
                                        .fit_to_exact_size(egui::vec2(half, 120.0)),
                                );
                            }
                            _ => {
                                ui.label("no values yet");
                            }
                        }
                    });
                    if let Some(last) = history.columns.last() {
                        ui.label(
                            RichText::new(format!(
                                "latest: {} exact zeros, {} non-finite · {} snapshot(s) per column",
                                last.zeros, last.non_finite, history.stride
                            ))
                            .small(),
                        );
                    }
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitudes_bin_by_decade_and_nothing_is_dropped() {
        let values = [1.0, -1.0, 0.0, f32::NAN, f32::INFINITY, 1e-12, 1e9, 0.5];
        let h = LogHistogram::of(&values);
        assert_eq!((h.zeros, h.non_finite), (1, 2));
        assert_eq!(h.counts.iter().sum::<u32>(), 5, "every finite non-zero value is in a bin");
        let one = ((0 - LOWEST_EXPONENT) as usize) * BINS_PER_DECADE;
        assert_eq!(h.counts[one], 2, "±1 share the bin of 10^0");
        assert_eq!(h.counts[0], 1, "tiny values land in the lowest bin");
        assert_eq!(h.counts[LogHistogram::bins() - 1], 1, "huge values land in the highest bin");
    }

    #[test]
    fn a_full_history_merges_neighbours_and_keeps_every_count() {
        let mut history = HistogramHistory::default();
        for _ in 0..HISTORY_COLUMNS * 3 {
            history.push(LogHistogram::of(&[1.0, f32::NAN]));
        }
        assert!(history.columns.len() <= HISTORY_COLUMNS);
        let total: u32 = history.columns.iter().map(|c| c.counts.iter().sum::<u32>()).sum();
        let non_finite: u32 = history.columns.iter().map(|c| c.non_finite).sum();
        assert_eq!((total, non_finite), (HISTORY_COLUMNS as u32 * 3, HISTORY_COLUMNS as u32 * 3));
        let image = history.image().unwrap();
        assert_eq!(image.size, [history.columns.len(), LogHistogram::bins()]);
    }
}
