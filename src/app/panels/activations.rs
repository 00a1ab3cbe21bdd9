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
probabilities for the probe.

Beside the probe, attribution for the class it is scored against (its label, or the prediction for your own \
image): the saliency map |∂loss/∂input| (bright = pixels whose change would move the loss most) and gradient × \
input (red: this pixel's value raises the loss, blue: lowers it). ∂loss/∂a shows each layer's activation \
gradients on one signed scale per layer (red: raising that activation raises the loss) — what the backward pass \
hands each layer, as ConvNetJS shows beside its activations. Taken with the snapshot, in inference mode.";

/// Which maps the panel shows per layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapKind {
    /// After the nonlinearity.
    #[default]
    Post,
    /// Before it.
    Pre,
    /// ∂loss/∂(post-activation).
    Gradient,
}

/// The activations panel.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivationsPanel {
    /// Which maps to show per layer.
    pub maps: MapKind,
    #[serde(skip)]
    help: bool,
    #[serde(skip)]
    input_texture: TextureSlot,
    /// The saliency map and gradient × input.
    #[serde(skip)]
    attribution_textures: [TextureSlot; 2],
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
        self.attribution_ui(ui, view, probe);
        // Wraps in a narrow column rather than widening it.
        ui.horizontal_wrapped(|ui| {
            ui.selectable_value(&mut self.maps, MapKind::Post, "post-activation")
                .on_hover_text("After the nonlinearity");
            ui.selectable_value(&mut self.maps, MapKind::Pre, "pre-activation")
                .on_hover_text("The weighted sum (plus bias, after batch-norm when on), before the nonlinearity");
            ui.selectable_value(&mut self.maps, MapKind::Gradient, "∂loss/∂a").on_hover_text(
                "Activation gradients: how the loss changes with each activation (red: raising it raises the loss)",
            );
        });
        let signed = self.maps == MapKind::Gradient;
        let maps: &[FloatArray] = match self.maps {
            MapKind::Post => &probe.post_activations,
            MapKind::Pre => &probe.pre_activations,
            MapKind::Gradient => &probe.activation_grads,
        };
        self.map_textures.resize_with(maps.len(), TextureSlot::default);
        let width = ui.available_width().max(80.0);
        for ((index, map), slot) in maps.iter().enumerate().zip(&mut self.map_textures) {
            let name = snapshot.layers.get(index).map_or("", |l| l.name.as_str());
            let (low, high) = map.finite_range().unwrap_or((0.0, 1.0));
            let scale = map.max_abs();
            let range =
                if signed { format!("±{}", short(scale)) } else { format!("[{}, {}]", short(low), short(high)) };
            ui.label(RichText::new(format!("{name}  {range}")).small().monospace());
            if low == high {
                // One colour would read as "medium activation": say what it is instead.
                let what =
                    if low == 0.0 { "all zero: no unit responds".to_owned() } else { format!("all {}", short(low)) };
                ui.label(RichText::new(what).small().italics());
                continue;
            }
            let key = textures::key(&[view.snapshot_generation, self.maps as u64]);
            let draw =
                || if signed { textures::signed_map_grid(map, scale) } else { textures::map_grid(map, low, high) };
            if let Some(texture) = slot.get(ui.ctx(), name, key, draw) {
                let size = fit(texture.size_vec2(), width, if map.shape.len() == 1 { 24.0 } else { 150.0 });
                ui.add(egui::Image::new(texture).fit_to_exact_size(size).alt_text(format!("{name} maps")));
            }
        }
        if signed {
            legend(ui, "−", "+", 120.0, |t| colormap::diverging(2.0 * t - 1.0, 1.0));
        } else {
            legend(ui, "low", "high", 120.0, colormap::sequential);
        }
    }
}

impl ActivationsPanel {
    /// The saliency map |∂loss/∂x| and gradient × input for the probe, and the class they are for.
    fn attribution_ui(&mut self, ui: &mut egui::Ui, view: &TrainingView, probe: &ProbeSnapshot) {
        let Some(grad) = probe.input_grad.as_ref() else { return };
        let (saliency, times_input) = attribution_maps(grad, &probe.input);
        let about = match (probe.regression, probe.attributed_class) {
            (Some((_, Some(_))), _) => "attribution for its target".to_owned(),
            (Some((_, None)), _) => "attribution for the prediction".to_owned(),
            (None, class) => format!(
                "attribution for class {}",
                class.map_or(String::from("?"), |c| view.class_names.get(c).cloned().unwrap_or(c.to_string()))
            ),
        };
        ui.label(RichText::new(about).small());
        ui.horizontal_top(|ui| {
            let key = textures::key(&[view.snapshot_generation]);
            let peak = saliency.max_abs().max(f32::MIN_POSITIVE);
            let signed_peak = times_input.max_abs().max(f32::MIN_POSITIVE);
            let [saliency_slot, times_slot] = &mut self.attribution_textures;
            for (slot, map, name, draw_signed) in [
                (saliency_slot, &saliency, "saliency |∂loss/∂x|", false),
                (times_slot, &times_input, "gradient × input", true),
            ] {
                ui.vertical(|ui| {
                    ui.label(RichText::new(name).small());
                    let draw = || {
                        if draw_signed {
                            textures::signed_map_grid(map, signed_peak)
                        } else {
                            textures::map_grid(map, 0.0, peak)
                        }
                    };
                    if let Some(texture) = slot.get(ui.ctx(), name, key, draw) {
                        ui.add(egui::Image::new(texture).fit_to_exact_size(egui::vec2(84.0, 84.0)).alt_text(name));
                    }
                });
            }
        });
    }
}

/// The saliency map (the largest |∂loss/∂x| over the channels of each pixel) and gradient × input (summed over
/// the channels), each one `[1, h, w]` map.
pub fn attribution_maps(grad: &FloatArray, input: &FloatArray) -> (FloatArray, FloatArray) {
    let (channels, h, w) = match *grad.shape.as_slice() {
        [c, h, w] => (c, h, w),
        _ => (1, 1, grad.data.len()),
    };
    let plane = h * w;
    let at = |array: &FloatArray, c: usize, i: usize| array.data.get(c * plane + i).copied().unwrap_or(0.0);
    let saliency = (0..plane).map(|i| (0..channels).map(|c| at(grad, c, i).abs()).fold(0.0, f32::max)).collect();
    let times = (0..plane).map(|i| (0..channels).map(|c| at(grad, c, i) * at(input, c, i)).sum()).collect();
    let shape = vec![1, h, w];
    (FloatArray::new(shape.clone(), saliency).unwrap_or_default(), FloatArray::new(shape, times).unwrap_or_default())
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
    if let Some((prediction, target)) = probe.regression {
        let target = target.map_or(String::new(), |t| format!("target {t:.3} · "));
        ui.label(RichText::new(format!("{target}predicted {prediction:.3}")).monospace());
        return;
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
