//! Timelapses: a recorded run's filters and weight gradients side by side, one frame per recorded snapshot,
//! the step in the corner, encoded as a GIF with one fixed palette built from the colour maps — no per-frame
//! quantisation, so colours never flicker from frame to frame. Snapshots in, GIF bytes out (or a history file
//! in, with [`timelapse_of_history`]).

use std::collections::HashMap;

use image::{Rgb, RgbImage, imageops};

use crate::render::{self, colormap};
use crate::snapshot::{FloatArray, Snapshot};

/// Pixels per weight in a timelapse frame.
const PIXELS_PER_WEIGHT: u32 = 10;
/// Levels of the diverging colour map in the palette (odd, so white, 0, is exact).
const DIVERGING_LEVELS: usize = 161;
const BACKGROUND: [u8; 3] = [24, 24, 24];

/// Why no timelapse could be made.
#[derive(Debug, thiserror::Error)]
pub enum TimelapseError {
    /// No snapshot in the record has the layer.
    #[error("no recorded snapshot has a conv layer named `{layer}`{}", if .available.is_empty() { String::new() } else { format!(" (it has {})", .available.join(", ")) })]
    NoLayer {
        /// The layer asked for.
        layer: String,
        /// The conv layers the snapshots have.
        available: Vec<String>,
    },
    /// The record has no snapshot at all.
    #[error("the record holds no snapshot to make frames from")]
    Empty,
    /// A frame could not be drawn.
    #[error(transparent)]
    Render(#[from] render::RenderError),
    /// The frames are too large for a GIF.
    #[error("a frame of {0}×{1} pixels is larger than a GIF allows (65,535 a side)")]
    TooLarge(u32, u32),
    /// The encoder failed.
    #[error("could not encode the GIF: {0}")]
    Encode(String),
    /// The history could not be read.
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    /// The history holds no conv layer's snapshot.
    #[error("{0} holds no snapshot of a conv layer to show")]
    NoConvLayer(std::path::PathBuf),
}

/// A timelapse made from a recorded history file.
#[derive(Debug)]
pub struct RecordedTimelapse {
    /// The file's bytes (GIF or APNG).
    pub bytes: Vec<u8>,
    /// The layer it shows.
    pub layer: String,
    /// Frames in it (of the run's newest net).
    pub frames: usize,
    /// What was dropped from a torn end of the history (a run still recording, or killed), if anything.
    pub torn: Option<String>,
}

/// The timelapse of the history file at `path` (see [`timelapse_gif`]): `layer`, or the first conv layer. What
/// `convscope timelapse` and the window's Timelapse button write; the history may still be growing.
pub fn timelapse_of_history(
    path: &std::path::Path,
    layer: Option<&str>,
    (every, delay_cs): (usize, u16),
    animation: Animation,
) -> Result<RecordedTimelapse, TimelapseError> {
    let history = crate::history::read_history(path)?;
    let torn = history.torn.as_ref().map(|(offset, what)| format!("{what} at byte {offset}"));
    // The run's newest net only: a window run records a reset or new data as a new `Started`.
    let last_net = history.events.iter().rposition(|e| matches!(e, crate::protocol::WorkerEvent::Started(_)));
    let snapshots: Vec<&Snapshot> = history.events[last_net.unwrap_or(0)..]
        .iter()
        .filter_map(|e| if let crate::protocol::WorkerEvent::Snapshot(s) = e { Some(s.as_ref()) } else { None })
        .collect();
    let layer = match layer {
        Some(layer) => layer.to_owned(),
        None => first_conv_layer(&snapshots).ok_or_else(|| TimelapseError::NoConvLayer(path.to_path_buf()))?,
    };
    let (bytes, frames) = timelapse_frames(&snapshots, &layer, every, delay_cs, animation)?;
    Ok(RecordedTimelapse { bytes, layer, frames, torn })
}

/// The first conv layer's name in `snapshots` (what a timelapse shows by default).
pub fn first_conv_layer(snapshots: &[&Snapshot]) -> Option<String> {
    snapshots.iter().flat_map(|s| &s.layers).find(|l| l.weights.shape.len() == 4).map(|l| l.name.clone())
}

/// The container a timelapse is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Animation {
    /// GIF: plays everywhere.
    Gif,
    /// Animated PNG: the same indexed frames, lossless compression that is often smaller.
    Apng,
}

impl Animation {
    /// APNG for a `.png` or `.apng` file name, else GIF.
    pub fn for_path(path: &std::path::Path) -> Animation {
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("png" | "apng") => Animation::Apng,
            _ => Animation::Gif,
        }
    }
}

/// A GIF of `layer`'s filters | weight gradients over `snapshots` (every `every`-th), `delay_cs` hundredths of a
/// second per frame. Weights share one scale over the whole timelapse, so growth shows; gradients are scaled
/// per frame (they shrink by orders of magnitude as training converges) and the frame says the scale.
pub fn timelapse_gif(
    snapshots: &[&Snapshot],
    layer: &str,
    every: usize,
    delay_cs: u16,
) -> Result<Vec<u8>, TimelapseError> {
    timelapse(snapshots, layer, every, delay_cs, Animation::Gif)
}

/// The same frames as [`timelapse_gif`], in `animation`'s container.
pub fn timelapse(
    snapshots: &[&Snapshot],
    layer: &str,
    every: usize,
    delay_cs: u16,
    animation: Animation,
) -> Result<Vec<u8>, TimelapseError> {
    timelapse_frames(snapshots, layer, every, delay_cs, animation).map(|(bytes, _)| bytes)
}

/// [`timelapse`] and how many frames it holds.
fn timelapse_frames(
    snapshots: &[&Snapshot],
    layer: &str,
    every: usize,
    delay_cs: u16,
    animation: Animation,
) -> Result<(Vec<u8>, usize), TimelapseError> {
    let frames: Vec<(u64, &FloatArray, Option<&FloatArray>)> = snapshots
        .iter()
        .filter_map(|s| {
            let l = s.layers.iter().find(|l| l.name == layer && l.weights.shape.len() == 4)?;
            Some((s.step, &l.weights, l.weight_grads.as_ref()))
        })
        .step_by(every.max(1))
        .collect();
    if frames.is_empty() {
        if snapshots.is_empty() {
            return Err(TimelapseError::Empty);
        }
        let mut available: Vec<String> = snapshots
            .iter()
            .flat_map(|s| &s.layers)
            .filter(|l| l.weights.shape.len() == 4)
            .map(|l| l.name.clone())
            .collect();
        available.dedup();
        return Err(TimelapseError::NoLayer { layer: layer.to_owned(), available });
    }
    // One shape for every frame: the first frame's (a reset to another net ends the timelapse there).
    let shape = frames[0].1.shape.clone();
    let frames: Vec<_> = frames.into_iter().take_while(|f| f.1.shape == shape).collect();
    let weight_scale = frames.iter().map(|f| f.1.max_abs()).fold(0.0_f32, f32::max).max(f32::MIN_POSITIVE);
    // The PNG writer writes into a buffer it borrows (its `finish` drops what it owns); declared first, so it
    // outlives the encoder.
    let mut apng = Vec::new();
    let mut apng_buffer = Some(&mut apng);
    let mut palette = Palette::new();
    let mut encoder = None;
    let count = frames.len();
    for (step, weights, grads) in frames {
        let image = frame(layer, step, weights, grads, weight_scale)?;
        let (width, height) = (image.width(), image.height());
        if u16::try_from(width).is_err() || u16::try_from(height).is_err() {
            return Err(TimelapseError::TooLarge(width, height));
        }
        let encoder = match &mut encoder {
            Some(encoder) => encoder,
            None => {
                let buffer = apng_buffer.take().ok_or(TimelapseError::Empty)?;
                encoder.insert(FrameEncoder::new(
                    animation,
                    (width, height),
                    count,
                    delay_cs,
                    &palette.bytes(),
                    buffer,
                )?)
            }
        };
        let indices: Vec<u8> = image.pixels().map(|p| palette.index(p.0)).collect();
        encoder.frame(indices, delay_cs)?;
    }
    let finished = encoder.ok_or(TimelapseError::Empty)?.finish()?;
    Ok((finished.unwrap_or(apng), count))
}

/// A GIF or APNG being written, frame by frame, with one fixed palette.
enum FrameEncoder<'a> {
    Gif(gif::Encoder<Vec<u8>>, (u16, u16)),
    Apng(png::Writer<&'a mut Vec<u8>>),
}

fn encode_error(error: impl std::fmt::Display) -> TimelapseError {
    TimelapseError::Encode(error.to_string())
}

impl<'a> FrameEncoder<'a> {
    fn new(
        animation: Animation,
        (width, height): (u32, u32),
        frames: usize,
        delay_cs: u16,
        palette: &[u8],
        apng: &'a mut Vec<u8>,
    ) -> Result<FrameEncoder<'a>, TimelapseError> {
        match animation {
            Animation::Gif => {
                let size = (u16::try_from(width).unwrap_or(u16::MAX), u16::try_from(height).unwrap_or(u16::MAX));
                let mut encoder = gif::Encoder::new(Vec::new(), size.0, size.1, palette).map_err(encode_error)?;
                encoder.set_repeat(gif::Repeat::Infinite).map_err(encode_error)?;
                Ok(FrameEncoder::Gif(encoder, size))
            }
            Animation::Apng => {
                let mut encoder = png::Encoder::new(apng, width, height);
                encoder.set_color(png::ColorType::Indexed);
                encoder.set_depth(png::BitDepth::Eight);
                encoder.set_palette(palette.to_vec());
                encoder.set_animated(u32::try_from(frames).unwrap_or(u32::MAX), 0).map_err(encode_error)?;
                encoder.set_frame_delay(delay_cs, 100).map_err(encode_error)?;
                Ok(FrameEncoder::Apng(encoder.write_header().map_err(encode_error)?))
            }
        }
    }

    fn frame(&mut self, indices: Vec<u8>, delay_cs: u16) -> Result<(), TimelapseError> {
        match self {
            FrameEncoder::Gif(encoder, (w, h)) => {
                let mut frame = gif::Frame::from_indexed_pixels(*w, *h, indices, None);
                frame.delay = delay_cs;
                encoder.write_frame(&frame).map_err(encode_error)
            }
            FrameEncoder::Apng(writer) => writer.write_image_data(&indices).map_err(encode_error),
        }
    }

    /// The GIF's bytes, or `None` for an APNG (written into the buffer it was given).
    fn finish(self) -> Result<Option<Vec<u8>>, TimelapseError> {
        match self {
            FrameEncoder::Gif(encoder, _) => encoder.into_inner().map(Some).map_err(encode_error),
            FrameEncoder::Apng(writer) => writer.finish().map(|()| None).map_err(encode_error),
        }
    }
}

/// One frame: filters | gradients, a caption line with the step and the scales.
fn frame(
    layer: &str,
    step: u64,
    weights: &FloatArray,
    grads: Option<&FloatArray>,
    weight_scale: f32,
) -> Result<RgbImage, TimelapseError> {
    let filters = render::filter_grid(weights, weight_scale, PIXELS_PER_WEIGHT, None)?;
    let grad_scale = grads.map_or(0.0, FloatArray::max_abs);
    let gradients = match grads {
        Some(g) => render::filter_grid(g, grad_scale.max(f32::MIN_POSITIVE), PIXELS_PER_WEIGHT, None)?,
        None => RgbImage::from_pixel(filters.width(), filters.height(), Rgb([96, 96, 96])),
    };
    let gap = 8;
    let width = (filters.width() + gap + gradients.width()).max(300);
    let height = filters.height().max(gradients.height()) + 2 * render::TEXT_LINE;
    let mut image = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    imageops::replace(&mut image, &filters, 0, i64::from(render::TEXT_LINE));
    imageops::replace(&mut image, &gradients, i64::from(filters.width() + gap), i64::from(render::TEXT_LINE));
    render::draw_text(&mut image, 2.0, 0.0, &format!("{layer} · step {step}"));
    let scales = format!("filters ±{weight_scale:.2e}   gradients ±{grad_scale:.2e}");
    let bottom = (height - render::TEXT_LINE) as f32;
    render::draw_text(&mut image, 2.0, bottom, &scales);
    Ok(image)
}

/// The fixed palette: the diverging map in [`DIVERGING_LEVELS`] steps, a grey ramp for the background,
/// gaps and anti-aliased text, and a colour cube for anything else; each colour seen is mapped once to its
/// nearest entry.
struct Palette {
    colours: Vec<[u8; 3]>,
    nearest: HashMap<[u8; 3], u8>,
}

impl Palette {
    fn new() -> Palette {
        let mut colours: Vec<[u8; 3]> = (0..DIVERGING_LEVELS)
            .map(|i| colormap::diverging(2.0 * i as f32 / (DIVERGING_LEVELS - 1) as f32 - 1.0, 1.0))
            .collect();
        colours.extend((0..32).map(|i| {
            let grey = (i * 255 / 31) as u8;
            [grey, grey, grey]
        }));
        let cube = [0u8, 85, 170, 255];
        for r in cube {
            for g in cube {
                for b in cube {
                    if colours.len() < 256 {
                        colours.push([r, g, b]);
                    }
                }
            }
        }
        colours.truncate(256);
        Palette { colours, nearest: HashMap::new() }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut bytes: Vec<u8> = self.colours.iter().flatten().copied().collect();
        bytes.resize(256 * 3, 0);
        bytes
    }

    fn index(&mut self, colour: [u8; 3]) -> u8 {
        let colours = &self.colours;
        *self.nearest.entry(colour).or_insert_with(|| {
            let distance =
                |c: &[u8; 3]| c.iter().zip(colour).map(|(&a, b)| (i32::from(a) - i32::from(b)).pow(2)).sum::<i32>();
            let (index, _) = colours.iter().enumerate().min_by_key(|(_, c)| distance(c)).unwrap_or((0, &[0, 0, 0]));
            u8::try_from(index).unwrap_or(u8::MAX)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{LayerSnapshot, ProbeSnapshot};

    fn snapshot(step: u64, value: f32) -> Snapshot {
        let weights = FloatArray::new(vec![2, 1, 3, 3], vec![value; 18]).unwrap();
        let layer = LayerSnapshot {
            name: "conv1".into(),
            settings: crate::arch::LayerSettings {
                activation: crate::arch::Activation::Relu,
                bias: true,
                batch_norm: false,
                init: crate::arch::Init::He,
            },
            weight_grads: Some(FloatArray::new(vec![2, 1, 3, 3], vec![-value / 100.0; 18]).unwrap()),
            weights,
            grad_range: (0.0, 0.0),
            weight_norm: 0.0,
            pre_activation_histogram: crate::snapshot::Histogram::default(),
            activation_range: (0.0, 0.0),
            grad_norm: 0.0,
        };
        Snapshot {
            step,
            epoch: 0,
            lr: 0.01,
            loss: 1.0,
            train_accuracy: 0.5,
            layers: vec![layer],
            output: crate::arch::OutputKind::Softmax,
            probe: ProbeSnapshot {
                index: 0,
                label: None,
                own_image: None,
                input: FloatArray::default(),
                pre_activations: Vec::new(),
                post_activations: Vec::new(),
                probabilities: Vec::new(),
                input_grad: None,
                activation_grads: Vec::new(),
                attributed_class: None,
                regression: None,
            },
            cost_secs: 0.0,
            gap_secs: 0.0,
        }
    }

    #[test]
    fn a_timelapse_has_a_frame_per_snapshot_in_one_palette() {
        let snapshots: Vec<Snapshot> = (1..=6).map(|i| snapshot(i * 10, i as f32 / 6.0)).collect();
        let refs: Vec<&Snapshot> = snapshots.iter().collect();
        assert_eq!(first_conv_layer(&refs).as_deref(), Some("conv1"));
        let bytes = timelapse_gif(&refs, "conv1", 2, 10).unwrap();
        let mut decoder = gif::DecodeOptions::new().read_info(bytes.as_slice()).unwrap();
        assert!(decoder.global_palette().is_some_and(|p| p.len() == 256 * 3));
        let mut frames = 0;
        let mut reds = Vec::new();
        while let Some(frame) = decoder.read_next_frame().unwrap() {
            frames += 1;
            assert!(frame.palette.is_none(), "no per-frame palette");
            // A filter cell (inside the first tile, below the caption line): redder as the weights grow.
            let (w, top) = (usize::from(frame.width), render::TEXT_LINE as usize);
            reds.push(frame.buffer[(top + 12) * w + 12]);
        }
        assert_eq!(frames, 3, "every second of six snapshots");
        assert!(reds.windows(2).all(|p| p[0] != p[1]), "the colour changes with the weights: {reds:?}");
        let missing = timelapse_gif(&refs, "conv9", 1, 10).unwrap_err().to_string();
        assert!(missing.contains("conv9") && missing.contains("conv1"), "{missing}");
        assert!(matches!(timelapse_gif(&[], "conv1", 1, 10), Err(TimelapseError::Empty)));
    }
}
