//! Exporters: rendered grids as PNG files under the one naming scheme the window and the command line share,
//! metric rows as CSV. The serialisers are pure (values in, bytes out); file writing is in one place and
//! names the path. Drawing the pictures is `render`'s job.

use std::fs;
use std::path::{Path, PathBuf};

use image::{ImageEncoder, RgbImage};

use crate::files;
use crate::render::{self, ColourScale};
use crate::snapshot::{FloatArray, LayerSnapshot, LayerStats, MetricRow, Snapshot};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file or folder could not be written.
    #[error(
        "could not write {path}: {source} — check that the folder exists and is writable, or choose another with --out"
    )]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PNG encoder failed.
    #[error("could not encode {what} as PNG: {detail}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The encoder's message.
        detail: String,
    },
    /// The picture could not be drawn from the data.
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    /// There is nothing to export yet.
    #[error("nothing to export yet: {0}")]
    Nothing(&'static str),
}

/// Pixels per weight when a filter grid is upscaled for export.
pub const EXPORT_PIXELS_PER_WEIGHT: u32 = 12;

/// What an exported image shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A layer's filter grid.
    Filters,
    /// The grid of its weight gradients.
    Gradients,
    /// One filter on its own.
    Filter(usize),
    /// The probe's activation maps of the layer.
    Activations {
        /// The probe's test-set index.
        probe: usize,
    },
}

/// The one naming scheme for exported images: `<layer>_<what>.png`, or with a stamp
/// `<layer>_<what>_step<NNNNNN>_<nonlinearity>[_probe<i>].png`, e.g. `conv1_filters_step000300_relu.png` or
/// `dense1_activations_step000300_sigmoid_probe0.png` (the output layer is named by its output kind).
pub fn image_file_name(layer: &str, kind: ImageKind, stamp: Option<(u64, &str)>) -> String {
    let mut name = format!("{layer}_{}", kind.what().replace(' ', ""));
    if let Some((step, nonlinearity)) = stamp {
        name.push_str(&format!("_step{step:06}_{nonlinearity}"));
    }
    if let ImageKind::Activations { probe } = kind {
        name.push_str(&format!("_probe{probe}"));
    }
    name + ".png"
}

impl ImageKind {
    /// What the picture shows, in words: `filters`, `filter 03`, `activations`….
    fn what(self) -> String {
        match self {
            ImageKind::Filters => "filters".to_owned(),
            ImageKind::Gradients => "gradients".to_owned(),
            ImageKind::Filter(index) => format!("filter {index:02}"),
            ImageKind::Activations { .. } => "activations".to_owned(),
        }
    }
}

/// The caption written into an exported picture, e.g. `conv1 filters · step 300 · relu`.
fn caption(layer: &str, kind: ImageKind, stamp: Option<(u64, &str)>) -> String {
    let mut caption = format!("{layer} {}", kind.what());
    if let Some((step, nonlinearity)) = stamp {
        caption.push_str(&format!(" · step {step} · {nonlinearity}"));
    }
    if let ImageKind::Activations { probe } = kind {
        caption.push_str(&format!(" · probe {probe}"));
    }
    caption
}

/// How filter grids are drawn: the colour scales (as on screen) and the channel view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridStyle {
    /// Weights at ±this are full colour.
    pub weight_scale: f32,
    /// Gradients at ±this are full colour.
    pub grad_scale: f32,
    /// Colour filters as RGB tiles.
    pub rgb: bool,
    /// One input channel, or all side by side (`None`).
    pub channel: Option<usize>,
}

impl GridStyle {
    /// Each grid on its own largest magnitude, RGB tiles for colour filters.
    pub fn fitted(layer: &LayerSnapshot) -> GridStyle {
        let grad_scale = layer.weight_grads.as_ref().map_or(1.0, FloatArray::max_abs);
        GridStyle { weight_scale: layer.weights.max_abs(), grad_scale, rgb: true, channel: None }
    }

    /// The colour scale a filter grid of `weights` is drawn on at ±`scale`: the one `render::filters_image`
    /// uses for it.
    fn colour_scale(self, weights: &FloatArray, scale: f32) -> ColourScale {
        if render::draws_rgb(weights, self.rgb) {
            ColourScale::RgbChannels(scale)
        } else {
            ColourScale::Diverging(scale)
        }
    }
}

/// Writes a conv layer's filter grid and weight-gradient grid into `dir` (nothing for a dense layer), named
/// with `stamp` when given, each with its caption and colour scale; returns the paths written.
pub fn write_layer_grids(
    layer: &LayerSnapshot,
    style: GridStyle,
    dir: &Path,
    stamp: Option<u64>,
) -> Result<Vec<PathBuf>, ExportError> {
    if layer.weights.shape.len() != 4 {
        return Ok(Vec::new()); // a dense layer has no filters to draw
    }
    // Conv layers are never the output layer: their activation names them.
    let stamp = stamp.map(|step| (step, layer.settings.activation.name()));
    let write = |kind: ImageKind, values: &FloatArray, scale: f32| {
        let grid = render::filters_image(values, scale, EXPORT_PIXELS_PER_WEIGHT, style.rgb, style.channel)?;
        let picture = render::annotate(&grid, &caption(&layer.name, kind, stamp), style.colour_scale(values, scale));
        write_png(dir, &image_file_name(&layer.name, kind, stamp), &picture)
    };
    let mut written = vec![write(ImageKind::Filters, &layer.weights, style.weight_scale)?];
    if let Some(grads) = &layer.weight_grads {
        written.push(write(ImageKind::Gradients, grads, style.grad_scale)?);
    }
    Ok(written)
}

/// Writes each filter of a conv layer as its own PNG (twice the grid's pixels per weight).
pub fn write_filter_tiles(
    layer: &LayerSnapshot,
    style: GridStyle,
    dir: &Path,
    step: u64,
) -> Result<Vec<PathBuf>, ExportError> {
    let &[filter_count, channels, kh, kw] = layer.weights.shape.as_slice() else { return Ok(Vec::new()) };
    let per_filter = channels * kh * kw;
    let stamp = Some((step, layer.settings.activation.name()));
    let mut written = Vec::new();
    for filter in 0..filter_count {
        let values = layer.weights.data.get(filter * per_filter..(filter + 1) * per_filter).unwrap_or_default();
        if let Some(single) = FloatArray::new(vec![1, channels, kh, kw], values.to_vec()) {
            let tile = render::filters_image(
                &single,
                style.weight_scale,
                EXPORT_PIXELS_PER_WEIGHT * 2,
                style.rgb,
                style.channel,
            )?;
            let kind = ImageKind::Filter(filter);
            let scale = style.colour_scale(&single, style.weight_scale);
            let picture = render::annotate(&tile, &caption(&layer.name, kind, stamp), scale);
            written.push(write_png(dir, &image_file_name(&layer.name, kind, stamp), &picture)?);
        }
    }
    Ok(written)
}

/// Pixels per value in exported activation maps.
pub const EXPORT_PIXELS_PER_ACTIVATION: u32 = 6;

/// Writes the probe's post-activation maps of every layer, each on its own range with its scale; a layer
/// whose maps are all one value says so in its caption rather than colouring it.
pub fn write_activation_maps(snapshot: &Snapshot, dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let mut written = Vec::new();
    for (index, (map, layer)) in snapshot.probe.post_activations.iter().zip(&snapshot.layers).enumerate() {
        let (low, high) = map.finite_range().unwrap_or((0.0, 1.0));
        let grid = render::map_grid(map, low, high, EXPORT_PIXELS_PER_ACTIVATION)?;
        let kind = ImageKind::Activations { probe: snapshot.probe.index };
        let stamp = Some((snapshot.step, snapshot.nonlinearity(index)));
        let mut text = caption(&layer.name, kind, stamp);
        if index + 1 == snapshot.layers.len() {
            // The output layer's maps are the logits its softmax / sigmoid reads.
            text = text.replacen("activations", "logits", 1);
        }
        if low == high {
            text.push_str(&format!(" · all {}", if low == 0.0 { "zero".to_owned() } else { format!("{low:.3e}") }));
        }
        let picture = render::annotate(&grid, &text, ColourScale::Sequential { low, high });
        written.push(write_png(dir, &image_file_name(&layer.name, kind, stamp), &picture)?);
    }
    Ok(written)
}

/// Encodes `image` and writes it as `dir/name`.
pub fn write_png(dir: &Path, name: &str, image: &RgbImage) -> Result<PathBuf, ExportError> {
    let path = dir.join(name);
    write_file(&path, &encode_png(image, &path.display().to_string())?)?;
    Ok(path)
}

/// Encodes an RGB image as PNG bytes.
pub fn encode_png(image: &RgbImage, what: &str) -> Result<Vec<u8>, ExportError> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| ExportError::Encode { what: what.to_string(), detail: e.to_string() })?;
    Ok(bytes)
}

/// The metrics CSV header for layers with weights named `layers`, input to output.
pub fn metrics_csv_header(layers: &[String]) -> String {
    let mut header = String::from("step,epoch,loss,train_accuracy,test_accuracy,lr,elapsed_secs,step_secs");
    for name in layers {
        header.push_str(",grad_norm_");
        header.push_str(name);
    }
    for name in layers {
        for (prefix, _) in LayerStats::COLUMNS {
            header.push_str(&format!(",{prefix}_{name}"));
        }
    }
    header.push_str(",train_mse,train_mae,train_r2,test_mse,test_mae,test_r2");
    header.push('\n');
    header
}

/// One CSV line for `row`, columns in the header's order; the statistics columns are empty on steps that
/// took none and where a statistic does not apply (e.g. dead units of a sigmoid layer).
pub fn metrics_csv_line(row: &MetricRow) -> String {
    let mut line = format!(
        "{},{},{},{},{},{},{:.3},{:.3}",
        row.step, row.epoch, row.loss, row.train_accuracy, row.test_accuracy, row.lr, row.elapsed_secs, row.step_secs
    );
    for norm in &row.grad_norms {
        line.push(',');
        line.push_str(&norm.to_string());
    }
    for layer in 0..row.grad_norms.len() {
        for (_, value) in LayerStats::COLUMNS {
            line.push(',');
            if let Some(v) = row.stats.get(layer).and_then(value) {
                line.push_str(&v.to_string());
            }
        }
    }
    // Regression figures last: empty for a classifier (and a regression row's accuracies are NaN).
    for metrics in [row.train_regression, row.test_regression] {
        match metrics {
            Some(m) => line.push_str(&format!(",{},{},{}", m.mse, m.mae, m.r2)),
            None => line.push_str(",,,"),
        }
    }
    line.push('\n');
    line
}

/// Writes `bytes` to `path` whole (through a temporary file and a rename: a full disk never leaves half a
/// file), naming the path on failure.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    files::write_atomically(path, bytes).map_err(|source| ExportError::Write { path: path.to_path_buf(), source })
}

/// Creates `dir` (and its parents) for exports.
pub fn create_dir(dir: &Path) -> Result<(), ExportError> {
    fs::create_dir_all(dir).map_err(|source| ExportError::Write { path: dir.to_path_buf(), source })
}

/// A metrics CSV written as training goes, in whole rows: a crash or a divergence loses at most the rows of
/// the last moments (a stop on a signal flushes them), and a full disk never leaves a torn row.
pub struct MetricsCsv {
    rows: files::RowFile,
}

impl MetricsCsv {
    /// Creates the file and writes the header.
    pub fn create(path: &Path, layers: &[String]) -> Result<MetricsCsv, ExportError> {
        let write_error = |source| ExportError::Write { path: path.to_path_buf(), source };
        let mut rows = files::RowFile::create(path).map_err(write_error)?;
        rows.push(&metrics_csv_header(layers)).map_err(write_error)?;
        Ok(MetricsCsv { rows })
    }

    /// Appends one row.
    pub fn append(&mut self, row: &MetricRow) -> Result<(), ExportError> {
        let line = metrics_csv_line(row);
        self.rows.push(&line).map_err(|source| self.write_error(source))
    }

    /// Writes the buffered rows to disk.
    pub fn flush(&mut self) -> Result<(), ExportError> {
        self.rows.flush().map_err(|source| self.write_error(source))
    }

    fn write_error(&self, source: std::io::Error) -> ExportError {
        ExportError::Write { path: self.rows.path().to_path_buf(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_match_the_header() {
        let header = metrics_csv_header(&["conv1".into(), "dense1".into()]);
        let row = MetricRow {
            step: 3,
            epoch: 0,
            loss: 2.5,
            train_accuracy: 0.25,
            test_accuracy: 0.1,
            test_step: 0,
            lr: 0.01,
            grad_norms: vec![0.5, 1.5],
            elapsed_secs: 0.25,
            step_secs: 0.2,
            stats: Vec::new(),
            train_regression: None,
            test_regression: None,
        };
        let line = metrics_csv_line(&row);
        let columns = |text: &str| text.trim_end_matches('\n').split(',').count();
        assert_eq!(columns(&header), columns(&line));
        assert!(header.contains("grad_norm_conv1,grad_norm_dense1"));
        assert!(header.contains(",dead_fraction_conv1,") && header.contains("act_var_dense1,"));
        assert!(header.ends_with(",test_mse,test_mae,test_r2\n") && line.ends_with(",,,,,,\n"));
        assert!(line.starts_with("3,0,2.5,0.25,0.1,0.01,"));
        // With statistics: a ReLU layer's dead share is filled, the saturation column is left empty.
        let stats = LayerStats {
            grad_rms: 0.1,
            weight_rms: 0.2,
            update_ratio: 1e-3,
            mean_slope: Some(0.5),
            dead_fraction: Some(0.25),
            saturated_fraction: None,
            pre_activation_mean: 0.0,
            pre_activation_var: 1.0,
            init_pre_activation_var: 2.0,
            activation_mean: 0.4,
            activation_var: 0.3,
        };
        let line = metrics_csv_line(&MetricRow { stats: vec![stats; 2], ..row });
        assert_eq!(columns(&header), columns(&line));
        assert!(line.contains(",0.001,0.5,0.25,,0,1,2,0.4,0.3,"), "{line}");
    }
}
