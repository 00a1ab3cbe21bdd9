//! Exporters: filter and gradient grids as PNG, metric rows as CSV, the run's configuration as JSON.
//! The serialisers are pure (values in, bytes out); file writing is in one place and names the path.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use image::{ImageEncoder, Rgb, RgbImage};

use crate::colormap;
use crate::snapshot::{FloatArray, LayerStats, MetricRow};

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
    /// The data has a shape this exporter does not draw.
    #[error("cannot draw {what}: {detail}")]
    Shape {
        /// What was being drawn.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

/// Pixels per weight when a filter grid is upscaled for export.
pub const EXPORT_PIXELS_PER_WEIGHT: u32 = 12;

/// Draws conv weights `[filters, in_channels, k, k]` (or their gradients) as a grid of tiles on the
/// diverging colour map with one scale for the whole grid, `upscale` pixels per weight and a one-weight
/// gap. Channel `channel` of each filter is drawn; `None` draws all channels side by side.
pub fn filter_grid(
    weights: &FloatArray,
    scale: f32,
    upscale: u32,
    channel: Option<usize>,
) -> Result<RgbImage, ExportError> {
    let &[filters, channels, kh, kw] = weights.shape.as_slice() else {
        return Err(ExportError::Shape {
            what: "a filter grid".into(),
            detail: format!("expected conv weights [filters, channels, k, k], got shape {:?}", weights.shape),
        });
    };
    let shown: Vec<usize> = match channel {
        Some(c) if c < channels => vec![c],
        Some(c) => {
            return Err(ExportError::Shape {
                what: "a filter grid".into(),
                detail: format!("channel {c} does not exist (the filters have {channels})"),
            });
        }
        None => (0..channels).collect(),
    };
    let tile_w = shown.len() * (kw + 1) - 1;
    let mut canvas = TileCanvas::new(filters, tile_w, kh, upscale);
    for filter in 0..filters {
        for (slot, &c) in shown.iter().enumerate() {
            for y in 0..kh {
                for x in 0..kw {
                    let value =
                        weights.data.get(((filter * channels + c) * kh + y) * kw + x).copied().unwrap_or(f32::NAN);
                    canvas.paint(filter, slot * (kw + 1) + x, y, colormap::diverging(value, scale));
                }
            }
        }
    }
    Ok(canvas.image)
}

/// Draws colour filters `[filters, 3, k, k]` as RGB tiles (as the ConvNetJS CIFAR-10 demo does): each
/// channel's weight maps linearly from `[-scale, scale]` to intensity 0…255, so 0 is mid grey and a filter
/// that responds to red looks red. One scale for the whole grid.
pub fn rgb_filter_grid(weights: &FloatArray, scale: f32, upscale: u32) -> Result<RgbImage, ExportError> {
    let &[filters, 3, kh, kw] = weights.shape.as_slice() else {
        return Err(ExportError::Shape {
            what: "an RGB filter grid".into(),
            detail: format!("expected colour conv weights [filters, 3, k, k], got shape {:?}", weights.shape),
        });
    };
    let scale = scale.max(f32::MIN_POSITIVE);
    let intensity = |value: f32| {
        if value.is_finite() { (127.5 + 127.5 * (value / scale).clamp(-1.0, 1.0)).round() as u8 } else { 0 }
    };
    let mut canvas = TileCanvas::new(filters, kw, kh, upscale);
    for filter in 0..filters {
        for y in 0..kh {
            for x in 0..kw {
                let at = |c: usize| weights.data.get(((filter * 3 + c) * kh + y) * kw + x).copied().unwrap_or(f32::NAN);
                canvas.paint(filter, x, y, [intensity(at(0)), intensity(at(1)), intensity(at(2))]);
            }
        }
    }
    Ok(canvas.image)
}

/// Filters as the window shows them: RGB tiles for colour filters when `rgb` is set, else channel `channel`
/// (or all side by side) on the diverging map.
pub fn filters_image(
    weights: &FloatArray,
    scale: f32,
    upscale: u32,
    rgb: bool,
    channel: Option<usize>,
) -> Result<RgbImage, ExportError> {
    if rgb && weights.shape.get(1) == Some(&3) {
        rgb_filter_grid(weights, scale, upscale)
    } else {
        filter_grid(weights, scale, upscale, channel)
    }
}

/// Equal tiles in a near-square grid with a one-cell gap and border, each cell `upscale` pixels square.
struct TileCanvas {
    image: RgbImage,
    columns: usize,
    tile_w: usize,
    tile_h: usize,
    upscale: u32,
}

impl TileCanvas {
    fn new(tiles: usize, tile_w: usize, tile_h: usize, upscale: u32) -> Self {
        let columns = (tiles as f64).sqrt().ceil().max(1.0) as usize;
        let rows = tiles.div_ceil(columns).max(1);
        let upscale = upscale.max(1);
        let width = (columns * (tile_w + 1) + 1) as u32 * upscale;
        let height = (rows * (tile_h + 1) + 1) as u32 * upscale;
        TileCanvas { image: RgbImage::from_pixel(width, height, Rgb([96, 96, 96])), columns, tile_w, tile_h, upscale }
    }

    /// Fills cell (`x`, `y`) of tile `tile`.
    fn paint(&mut self, tile: usize, x: usize, y: usize, colour: [u8; 3]) {
        let left = (tile % self.columns) * (self.tile_w + 1) + 1 + x;
        let top = (tile / self.columns) * (self.tile_h + 1) + 1 + y;
        let (px, py) = (left as u32 * self.upscale, top as u32 * self.upscale);
        for dy in 0..self.upscale {
            for dx in 0..self.upscale {
                if let Some(pixel) = self.image.get_pixel_mut_checked(px + dx, py + dy) {
                    *pixel = Rgb(colour);
                }
            }
        }
    }
}

/// Tiles activation maps `[channels, h, w]` (or a dense layer's `[units]`, drawn as one row) on the
/// sequential colour map over `[low, high]`, `upscale` pixels per value, with a one-pixel gap between maps.
pub fn map_grid(maps: &FloatArray, low: f32, high: f32, upscale: u32) -> Result<RgbImage, ExportError> {
    let (channels, h, w) = match *maps.shape.as_slice() {
        [c, h, w] => (c, h, w),
        [n] => (1, 1, n),
        _ => {
            return Err(ExportError::Shape {
                what: "activation maps".into(),
                detail: format!("expected [channels, h, w] or [units], got shape {:?}", maps.shape),
            });
        }
    };
    let mut canvas = TileCanvas::new(channels, w, h, upscale);
    for channel in 0..channels {
        for y in 0..h {
            for x in 0..w {
                let value = maps.data.get((channel * h + y) * w + x).copied().unwrap_or(f32::NAN);
                canvas.paint(channel, x, y, colormap::sequential(colormap::unit(value, low, high)));
            }
        }
    }
    Ok(canvas.image)
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
    line.push('\n');
    line
}

/// Writes `bytes` to `path`, naming the path on failure.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    fs::write(path, bytes).map_err(|source| ExportError::Write { path: path.to_path_buf(), source })
}

/// Creates `dir` (and its parents) for exports.
pub fn create_dir(dir: &Path) -> Result<(), ExportError> {
    fs::create_dir_all(dir).map_err(|source| ExportError::Write { path: dir.to_path_buf(), source })
}

/// A metrics CSV written as training goes, so a crash or a divergence never loses the rows so far.
pub struct MetricsCsv {
    path: PathBuf,
    file: std::io::BufWriter<fs::File>,
}

impl MetricsCsv {
    /// Creates the file and writes the header.
    pub fn create(path: &Path, layers: &[String]) -> Result<MetricsCsv, ExportError> {
        let file = fs::File::create(path).map_err(|source| ExportError::Write { path: path.to_path_buf(), source })?;
        let mut csv = MetricsCsv { path: path.to_path_buf(), file: std::io::BufWriter::new(file) };
        csv.write(metrics_csv_header(layers).as_bytes())?;
        Ok(csv)
    }

    /// Appends one row.
    pub fn append(&mut self, row: &MetricRow) -> Result<(), ExportError> {
        self.write(metrics_csv_line(row).as_bytes())
    }

    /// Flushes buffered rows to disk.
    pub fn flush(&mut self) -> Result<(), ExportError> {
        self.file.flush().map_err(|source| ExportError::Write { path: self.path.clone(), source })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.file.write_all(bytes).map_err(|source| ExportError::Write { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_grid_lays_out_tiles_with_a_shared_scale() {
        // Two 2×2 filters: the first all +1, the second all −0.5.
        let mut data = vec![1.0; 4];
        data.extend([-0.5; 4]);
        let weights = FloatArray::new(vec![2, 1, 2, 2], data).unwrap();
        let image = filter_grid(&weights, 1.0, 3, None).unwrap();
        // 2 columns and 1 row of (2 + 1)-weight cells plus a border: (2·3 + 1)·3 × (1·3 + 1)·3.
        assert_eq!((image.width(), image.height()), (21, 12));
        assert_eq!(image.get_pixel(3, 3).0, colormap::diverging(1.0, 1.0));
        let second = image.get_pixel(3 * 4, 3).0;
        assert_eq!(second, colormap::diverging(-0.5, 1.0));
        assert!(second[2] > second[0], "negative values are blue");
        assert!(filter_grid(&FloatArray::new(vec![4], vec![0.0; 4]).unwrap(), 1.0, 1, None).is_err());
    }

    #[test]
    fn rgb_filters_map_each_channel_to_its_colour() {
        // One 1×1 filter that is all red (+1 on R, −1 on G and B), one at zero.
        let weights = FloatArray::new(vec![2, 3, 1, 1], vec![1.0, -1.0, -1.0, 0.0, 0.0, 0.0]).unwrap();
        let image = rgb_filter_grid(&weights, 1.0, 1).unwrap();
        assert_eq!(image.get_pixel(1, 1).0, [255, 0, 0]);
        assert_eq!(image.get_pixel(3, 1).0, [128, 128, 128], "zero is mid grey");
        let grey = FloatArray::new(vec![1, 1, 1, 1], vec![0.5]).unwrap();
        assert!(rgb_filter_grid(&grey, 1.0, 1).is_err());
    }

    #[test]
    fn csv_rows_match_the_header() {
        let header = metrics_csv_header(&["conv1".into(), "dense1".into()]);
        let row = MetricRow {
            step: 3,
            epoch: 0,
            loss: 2.5,
            train_accuracy: 0.25,
            test_accuracy: 0.1,
            lr: 0.01,
            grad_norms: vec![0.5, 1.5],
            elapsed_secs: 0.25,
            step_secs: 0.2,
            stats: Vec::new(),
        };
        let line = metrics_csv_line(&row);
        let columns = |text: &str| text.trim_end_matches('\n').split(',').count();
        assert_eq!(columns(&header), columns(&line));
        assert!(header.contains("grad_norm_conv1,grad_norm_dense1"));
        assert!(header.contains(",dead_fraction_conv1,") && header.ends_with("act_var_dense1\n"));
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
