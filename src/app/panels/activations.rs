//! The activations panel: the probe image (picked from test-set thumbnails or stepped through), its class
//! probabilities, and every layer's channels for it, before or after the activation.

use eframe::egui::{self, RichText};
use serde::{Deserialize, Serialize};

use crate::app::outbox::Outbox;
use crate::app::panels::{Panel, filters::fit, header, legend, short};
use crate::app::textures::{self, TextureSlot};
use crate::app::view::TrainingView;
use crate::protocol::Command;
use crate::render::colormap;
use crate::snapshot::{FloatArray, ProbeSnapshot};

const HELP: &str = "One test image (the probe) pushed through the net with the current weights. Each block is a \
layer: one tile per channel (a dense layer is one row of units), bright = high. Pre-activation is the weighted sum \
plus bias (after batch-norm when on); post-activation is after the nonlinearity. Under ReLU, dark post-activation \
tiles are units at zero; under sigmoid, tiles stuck at one colour are saturated. The bars are the net's class \
probabilities for the probe.";

/// The activations panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivationsPanel {
    /// Show pre-activations instead of post-activations.
    pub pre: bool,
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    input_texture: TextureSlot,
    #[serde(skip)]
    map_textures: Vec<TextureSlot>,
    #[serde(skip)]
    thumbnails: Vec<TextureSlot>,
}

impl Panel for ActivationsPanel {
    /// Draws the probe picker, probabilities and maps.
    fn ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        header(ui, "Probe and activation maps", &mut self.help, HELP);
        self.picker_ui(ui, view, out);
        let Some(snapshot) = view.snapshot.as_ref() else {
            ui.label("Waiting for the first snapshot…");
            return;
        };
        let probe = &snapshot.probe;
        ui.horizontal_top(|ui| {
            let input_key = textures::key(&[view.snapshot_generation]);
            let (low, high) = probe.input.finite_range().unwrap_or((0.0, 1.0));
            if let Some(texture) =
                self.input_texture.get(ui.ctx(), "probe", input_key, || textures::probe_input(&probe.input, low, high))
            {
                ui.add(egui::Image::new(texture).fit_to_exact_size(egui::vec2(84.0, 84.0)).alt_text("probe image"));
            }
            ui.vertical(|ui| probabilities_ui(ui, probe, &view.class_names));
        });
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.pre, false, "post-activation").on_hover_text("After the nonlinearity");
            ui.selectable_value(&mut self.pre, true, "pre-activation")
                .on_hover_text("The weighted sum (plus bias, after batch-norm when on), before the nonlinearity");
        });
        let maps: &[FloatArray] = if self.pre { &probe.pre_activations } else { &probe.post_activations };
        self.map_textures.resize_with(maps.len(), TextureSlot::default);
        let width = ui.available_width().max(80.0);
        for ((index, map), slot) in maps.iter().enumerate().zip(&mut self.map_textures) {
            let name = snapshot.layers.get(index).map_or("", |l| l.name.as_str());
            let (low, high) = map.finite_range().unwrap_or((0.0, 1.0));
            ui.label(RichText::new(format!("{name}  [{}, {}]", short(low), short(high))).small().monospace());
            if low == high {
                // One colour would read as "medium activation": say what it is instead.
                let what =
                    if low == 0.0 { "all zero: no unit responds".to_owned() } else { format!("all {}", short(low)) };
                ui.label(RichText::new(what).small().italics());
                continue;
            }
            let key = textures::key(&[view.snapshot_generation, u64::from(self.pre)]);
            if let Some(texture) = slot.get(ui.ctx(), name, key, || textures::map_grid(map, low, high)) {
                let size = fit(texture.size_vec2(), width, if map.shape.len() == 1 { 24.0 } else { 150.0 });
                ui.add(egui::Image::new(texture).fit_to_exact_size(size).alt_text(format!("{name} maps")));
            }
        }
        legend(ui, "low", "high", 120.0, colormap::sequential);
    }
}

impl ActivationsPanel {
    /// Previous / next and the thumbnails of the first test images.
    fn picker_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, out: &mut Outbox) {
        let test_len = view.test_len.max(1);
        let probe = view.config.probe_index;
        ui.horizontal(|ui| {
            if ui.button("‹ Previous").on_hover_text("Previous test image as the probe").clicked() {
                out.send(Command::SetProbe((probe + test_len - 1) % test_len));
            }
            if ui.button("Next ›").on_hover_text("Next test image as the probe").clicked() {
                out.send(Command::SetProbe((probe + 1) % test_len));
            }
            ui.label(format!("test image {probe}"));
        });
        if view.thumbnails.is_empty() {
            return;
        }
        egui::ScrollArea::horizontal().id_salt("thumbnails").show(ui, |ui| {
            ui.horizontal(|ui| {
                self.thumbnails.resize_with(view.thumbnails.len(), TextureSlot::default);
                for (index, (slot, thumbnail)) in self.thumbnails.iter_mut().zip(&view.thumbnails).enumerate() {
                    // New data means new thumbnails: key them by the run too.
                    let key = textures::key(&[view.run_generation, index as u64]);
                    if let Some(texture) = slot.get(ui.ctx(), "thumbnail", key, || textures::thumbnail(thumbnail)) {
                        let image = egui::Image::new(texture)
                            .fit_to_exact_size(egui::vec2(28.0, 28.0))
                            .alt_text(format!("test image {index}"));
                        let button = ui.add(egui::Button::image(image).selected(index == probe));
                        if button.clicked() && index != probe {
                            out.send(Command::SetProbe(index));
                        }
                    }
                }
            });
        });
    }
}

/// What the probe is, and the net's class probabilities for it (the top one green when right, red when wrong).
fn probabilities_ui(ui: &mut egui::Ui, probe: &ProbeSnapshot, class_names: &[String]) {
    match (&probe.own_image, probe.label) {
        (Some(name), _) => {
            ui.label(RichText::new(format!("your image: {name}")).strong());
        }
        (None, Some(label)) => {
            let name = class_names.get(label).cloned().unwrap_or_else(|| label.to_string());
            ui.label(RichText::new(format!("true class: {name}")).strong());
        }
        (None, None) => {}
    }
    let best =
        probe.probabilities.iter().enumerate().fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
    for (class, &p) in probe.probabilities.iter().enumerate() {
        let name = class_names.get(class).cloned().unwrap_or_else(|| class.to_string());
        let mut bar = egui::ProgressBar::new(p.clamp(0.0, 1.0))
            .desired_width(150.0)
            .desired_height(11.0)
            .text(RichText::new(format!("{name}  {:.1} %", 100.0 * p)).small());
        if class == best.0 {
            bar = bar.fill(if Some(class) == probe.label {
                egui::Color32::from_rgb(70, 150, 80)
            } else {
                egui::Color32::from_rgb(190, 80, 70)
            });
        }
        ui.add(bar);
    }
}
