//! The filters panel: a conv layer's filters and their weight gradients side by side, on one signed colour
//! scale per grid (shared by every tile, so a shrinking gradient shows as fading), optionally locked.

use eframe::egui::{self, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::compare::ARM_COLOURS;
use crate::app::panels::{Panel, header, legend, short};
use crate::app::textures::{self, TextureSlot};
use crate::app::view::TrainingView;
use crate::render::colormap;
use crate::snapshot::{FloatArray, LayerSnapshot};

const HELP: &str = "Left: the layer's filters (its weights), one tile per filter; for deeper layers, the slice \
seen by one input channel. Right: the weight gradient ∂loss/∂w of the last step, averaged over the batch, in the \
same layout. Red is positive, blue negative. On the gradient, red means the next step pushes that weight down, \
blue up. Every tile shares one scale (the legend), so a gradient that shrinks 1000× fades to white instead of \
being stretched back up; lock the scale to compare over time. Filters of a trained first layer show strokes and \
edge detectors; noise means the layer has not learned yet.";

/// The filters panel.
#[derive(Serialize, Deserialize)]
#[serde(default)]
pub struct FiltersPanel {
    /// Index among the layers with weights (conv layers only).
    pub layer: usize,
    /// Input channel shown for deeper layers.
    pub channel: usize,
    /// Draw filters over colour input as RGB tiles (off: one input channel at a time).
    pub rgb: bool,
    /// Keep the current scales instead of following the data.
    pub lock_scale: bool,
    /// The scales in use: weights, gradients.
    #[serde(skip)]
    pub scales: (f32, f32),
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    weights_texture: TextureSlot,
    #[serde(skip)]
    grads_texture: TextureSlot,
    /// Arm B's filters and B − A, while an A/B comparison runs.
    #[serde(skip)]
    arm_b_textures: (TextureSlot, TextureSlot),
}

impl Default for FiltersPanel {
    fn default() -> Self {
        FiltersPanel {
            layer: 0,
            channel: 0,
            rgb: true,
            lock_scale: false,
            scales: (1.0, 1.0),
            help: false,
            weights_texture: TextureSlot::default(),
            grads_texture: TextureSlot::default(),
            arm_b_textures: (TextureSlot::default(), TextureSlot::default()),
        }
    }
}

impl FiltersPanel {
    /// The layer snapshot being shown, if it is a conv layer.
    pub fn shown<'a>(&self, view: &'a TrainingView) -> Option<&'a LayerSnapshot> {
        view.snapshot.as_ref()?.layers.get(self.layer).filter(|l| l.weights.shape.len() == 4)
    }

    /// The layer picker, the RGB / input-channel view and the scale lock.
    fn chooser_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView) {
        let conv_layers: Vec<(usize, String)> = view
            .snapshot
            .as_ref()
            .map(|s| {
                s.layers
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.weights.shape.len() == 4)
                    .map(|(i, l)| (i, l.name.clone()))
                    .collect()
            })
            .unwrap_or_default();
        ui.horizontal(|ui| {
            let current =
                conv_layers.iter().find(|(i, _)| *i == self.layer).map_or("—".to_string(), |(_, n)| n.clone());
            egui::ComboBox::from_label("Layer").selected_text(current).show_ui(ui, |ui| {
                for (index, name) in &conv_layers {
                    ui.selectable_value(&mut self.layer, *index, name);
                }
            });
            let channels = self.shown(view).map_or(1, |l| l.weights.shape[1]);
            if channels == 3 {
                ui.checkbox(&mut self.rgb, "RGB").on_hover_text(
                    "Colour input: draw each filter as one RGB tile (red, green and blue weights as colour, 0 = mid grey); off shows one input channel at a time",
                );
            }
            if channels > 1 && !(channels == 3 && self.rgb) {
                self.channel = self.channel.min(channels - 1);
                ui.add(egui::DragValue::new(&mut self.channel).range(0..=channels - 1).prefix("input channel "))
                    .on_hover_text(
                        "Deeper filters see every channel of the layer below; this picks which slice to draw.",
                    );
            } else {
                self.channel = 0;
            }
            ui.checkbox(&mut self.lock_scale, "Lock scale")
                .on_hover_text("Keep the colour scales fixed, so growth and shrinkage over time stay visible.");
        });
    }
}

impl Panel for FiltersPanel {
    /// Draws the two grids.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, _out: &mut Outbox) {
        header(ui, "Filters and weight gradients", &mut self.help, HELP);
        // A remembered layer that is not a conv layer of this net (another spec was built) falls back to the first.
        if self.shown(view).is_none()
            && let Some(first) =
                view.snapshot.as_ref().and_then(|s| s.layers.iter().position(|l| l.weights.shape.len() == 4))
        {
            self.layer = first;
        }
        self.chooser_ui(ui, view);
        let Some(layer) = self.shown(view) else {
            // A net without convolutions has no filters to draw; say so rather than wait for them.
            ui.label(match &view.snapshot {
                Some(_) => "This net has no convolution layers: a dense layer's weights show in the histograms below.",
                None => "Waiting for the first snapshot…",
            });
            return;
        };
        if !self.lock_scale {
            let grad_scale = layer.weight_grads.as_ref().map_or(0.0, |g| g.max_abs());
            self.scales = (layer.weights.max_abs().max(f32::MIN_POSITIVE), grad_scale.max(f32::MIN_POSITIVE));
        }
        let channel = Some(self.channel);
        let rgb = crate::render::draws_rgb(&layer.weights, self.rgb);
        let draw = move |weights: &crate::snapshot::FloatArray, scale: f32| {
            if rgb { textures::rgb_filter_grid(weights, scale) } else { textures::filter_grid(weights, scale, channel) }
        };
        let (weight_scale, grad_scale) = self.scales;
        let key = textures::key(&[
            view.snapshot_generation,
            self.layer as u64,
            self.channel as u64,
            u64::from(rgb),
            weight_scale.to_bits().into(),
            grad_scale.to_bits().into(),
        ]);
        // Each grid and its colour scale (two numbers and a bar) within half the width, so a narrow centre
        // column never grows wider than the window gives it.
        let half = (ui.available_width() / 2.0 - 8.0).max(60.0);
        let weights_image = layer.weights.clone();
        let grads = layer.weight_grads.clone();
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.label(RichText::new(format!("{} filters", layer.name)).strong());
                if let Some(texture) =
                    self.weights_texture.get(ui.ctx(), "filters", key, || draw(&weights_image, weight_scale))
                {
                    let size = fit(texture.size_vec2(), half, 200.0);
                    ui.add(egui::Image::new(texture).fit_to_exact_size(size).alt_text("filter grid"));
                }
                legend(ui, &short(-weight_scale), &short(weight_scale), (half - 125.0).max(24.0), |t| {
                    legend_colour(t, rgb)
                });
            });
            ui.vertical(|ui| {
                ui.label(RichText::new(format!("{} weight gradients", layer.name)).strong());
                match &grads {
                    Some(grads) => {
                        if let Some(texture) =
                            self.grads_texture.get(ui.ctx(), "gradients", key, || draw(grads, grad_scale))
                        {
                            let size = fit(texture.size_vec2(), half, 200.0);
                            ui.add(egui::Image::new(texture).fit_to_exact_size(size).alt_text("gradient grid"));
                        }
                        if grads.max_abs() == 0.0 {
                            // A scale of ±1e-38 would pretend there is something to see.
                            ui.label(RichText::new("all zero: these weights got no gradient").small().italics());
                        } else {
                            legend(ui, &short(-grad_scale), &short(grad_scale), (half - 125.0).max(24.0), |t| {
                                legend_colour(t, rgb)
                            });
                        }
                    }
                    None => {
                        ui.label("No gradient yet: take a step.");
                    }
                }
            });
        });
        self.arm_b_row(ui, view, layer, half);
    }
}

impl FiltersPanel {
    /// While an A/B comparison runs: arm B's filters on A's scale, and B − A on its own signed scale.
    fn arm_b_row(&mut self, ui: &mut egui::Ui, view: &TrainingView, a: &LayerSnapshot, half: f32) {
        let Some(b_view) = view.arm_b.as_deref() else { return };
        if view.timeline.shown.is_some() {
            // Arm B is not recorded: comparing its live weights with an old snapshot of A would mislead.
            ui.label(RichText::new("arm B is shown live only: go Live to compare").small().italics());
            return;
        }
        let Some(b) = b_view.snapshot.as_ref().and_then(|s| s.layers.get(self.layer)) else { return };
        let Some(delta) = FloatArray::new(
            b.weights.shape.clone(),
            b.weights.data.iter().zip(&a.weights.data).map(|(b, a)| b - a).collect(),
        )
        .filter(|_| b.weights.shape == a.weights.shape) else {
            return;
        };
        let (channel, rgb, weight_scale) =
            (Some(self.channel), crate::render::draws_rgb(&a.weights, self.rgb), self.scales.0);
        let delta_scale = delta.max_abs();
        let draw = move |weights: &FloatArray, scale: f32| {
            if rgb { textures::rgb_filter_grid(weights, scale) } else { textures::filter_grid(weights, scale, channel) }
        };
        let key = textures::key(&[
            view.snapshot_generation,
            b_view.snapshot_generation,
            self.layer as u64,
            self.channel as u64,
            u64::from(rgb),
            weight_scale.to_bits().into(),
        ]);
        let (b_slot, delta_slot) = &mut self.arm_b_textures;
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.label(RichText::new(format!("arm B: {} filters", b.name)).strong().color(ARM_COLOURS[1]));
                if let Some(texture) = b_slot.get(ui.ctx(), "arm-b-filters", key, || draw(&b.weights, weight_scale)) {
                    let size = fit(texture.size_vec2(), half, 200.0);
                    ui.add(egui::Image::new(texture).fit_to_exact_size(size).alt_text("arm B filter grid"));
                }
                ui.label(RichText::new("on arm A's scale").small());
            });
            ui.vertical(|ui| {
                ui.label(RichText::new("B − A (ΔW)").strong()).on_hover_text(
                    "How far arm B's weights have moved away from arm A's since the fork, on one signed scale: white where the arms agree",
                );
                if delta_scale == 0.0 {
                    ui.label(RichText::new("identical: the arms have not diverged").small().italics());
                    return;
                }
                let delta_scale = delta_scale.max(f32::MIN_POSITIVE);
                if let Some(texture) = delta_slot.get(ui.ctx(), "arm-delta", key, || draw(&delta, delta_scale)) {
                    let size = fit(texture.size_vec2(), half, 200.0);
                    ui.add(egui::Image::new(texture).fit_to_exact_size(size).alt_text("B minus A grid"));
                }
                legend(ui, &short(-delta_scale), &short(delta_scale), (half - 125.0).max(24.0), |t| {
                    legend_colour(t, rgb)
                });
            });
        });
    }
}

/// The largest size with `size`'s aspect ratio inside `max_w` × `max_h`.
pub fn fit(size: egui::Vec2, max_w: f32, max_h: f32) -> egui::Vec2 {
    let scale = (max_w / size.x.max(1.0)).min(max_h / size.y.max(1.0));
    size * scale
}

/// The legend's colour at `t` in `[0, 1]`: the diverging map, or a grey ramp for RGB tiles (per channel).
fn legend_colour(t: f32, rgb: bool) -> [u8; 3] {
    if rgb {
        let v = (255.0 * t.clamp(0.0, 1.0)).round() as u8;
        [v, v, v]
    } else {
        colormap::diverging(2.0 * t - 1.0, 1.0)
    }
}
