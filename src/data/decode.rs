//! Decoding one image file: header probes, bounded decoding, compositing on white, resizing and writing
//! channel planes.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, ImageDecoder, ImageError, ImageReader, Limits};

use crate::arch::ImageShape;
use crate::data::SkipReason;

/// Decoder limits: a bigger picture is skipped as too large rather than decoded.
const MAX_DECODE_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// What a header tells before decoding.
pub(crate) struct Probe {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) colour: bool,
}

fn open_reader(path: &Path) -> Result<ImageReader<BufReader<File>>, SkipReason> {
    let unreadable = |error: io::Error| SkipReason::Unreadable(error.to_string());
    let file = crate::files::open_regular(path).map_err(unreadable)?;
    // Nothing to decode; and the pseudo-files of /proc say 0 bytes but some never stop (or never start) giving.
    if file.metadata().map_err(unreadable)?.len() == 0 {
        return Err(SkipReason::Corrupt("the file is empty".into()));
    }
    // No extension hint: the content alone decides, so a text file named .png is "not an image".
    let mut reader = ImageReader::new(BufReader::new(file)).with_guessed_format().map_err(unreadable)?;
    if reader.format().is_none() {
        return Err(SkipReason::NotAnImage);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    Ok(reader)
}

/// Runs a decoder on one file so that a panic inside it (png 0.18.1 indexes past a palette shorter than its
/// pixels need, found by fuzzing) costs that file, as a corrupt one, and never the load or the process. The
/// panic is not printed: it is reported as the file's skip reason.
fn guarded<T>(work: impl FnOnce() -> Result<T, SkipReason>) -> Result<T, SkipReason> {
    quiet_panics_while_decoding();
    DECODING.with(|flag| flag.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    DECODING.with(|flag| flag.set(false));
    outcome.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".to_owned());
        Err(SkipReason::Corrupt(format!("the image decoder failed on it: {message}")))
    })
}

thread_local! {
    /// Set while this thread runs a decoder under [`guarded`].
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays silent for a decoder's panic under [`guarded`] and hands every other
/// panic to the hook that was there before.
fn quiet_panics_while_decoding() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

pub(crate) fn probe(path: &Path) -> Result<Probe, SkipReason> {
    guarded(|| probe_unguarded(path))
}

fn probe_unguarded(path: &Path) -> Result<Probe, SkipReason> {
    let decoder = open_reader(path)?.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(SkipReason::Corrupt(format!("the header gives a size of {width}×{height}")));
    }
    Ok(Probe { width, height, colour: decoder.color_type().has_color() })
}

pub(crate) fn decode(path: &Path) -> Result<DynamicImage, SkipReason> {
    guarded(|| decode_unguarded(path))
}

fn decode_unguarded(path: &Path) -> Result<DynamicImage, SkipReason> {
    let mut decoder = open_reader(path)?.into_decoder().map_err(classify)?;
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        let (width, height) = decoder.dimensions();
        return Err(SkipReason::TooLarge(format!("{width}×{height}")));
    }
    // Camera JPEGs are often stored sideways with an EXIF note saying so.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn classify(error: ImageError) -> SkipReason {
    match error {
        ImageError::Unsupported(error) => SkipReason::Unsupported(error.to_string()),
        ImageError::Limits(error) => SkipReason::TooLarge(error.to_string()),
        ImageError::IoError(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            SkipReason::Corrupt(format!("cut short ({error})"))
        }
        ImageError::IoError(error) => SkipReason::Unreadable(error.to_string()),
        error => SkipReason::Corrupt(error.to_string()),
    }
}

/// Composites on white, converts to the channel count, resizes, and writes C×H×W into `out`.
///
/// The per-pixel work on the full-size picture goes through `DynamicImage`'s own conversions and
/// resize, which are compiled with the `image` crate's optimisations even in a debug build.
pub(crate) fn write_planar(image: DynamicImage, shape: ImageShape, out: &mut [u8]) {
    let flat = flatten_on_white(image);
    let converted = if shape.channels == 1 {
        // Rec. 709 luma, the same weights as everywhere else in `image`.
        DynamicImage::ImageLuma8(flat.into_luma8())
    } else {
        DynamicImage::ImageRgb8(flat.into_rgb8())
    };
    let (width, height) = (u32::try_from(shape.width).unwrap_or(1), u32::try_from(shape.height).unwrap_or(1));
    let resized = if converted.dimensions() == (width, height) {
        converted
    } else {
        // Triangle (bilinear) widens with the scale factor, so downscaling averages, not aliases.
        converted.resize_exact(width, height, FilterType::Triangle)
    };
    match resized {
        DynamicImage::ImageLuma8(grey) => {
            for (slot, &value) in out.iter_mut().zip(grey.as_raw()) {
                *slot = value;
            }
        }
        other => {
            let rgb = other.into_rgb8();
            let plane = shape.height * shape.width;
            let mut planes = out.chunks_exact_mut(plane.max(1));
            let (Some(red), Some(green), Some(blue)) = (planes.next(), planes.next(), planes.next()) else {
                return;
            };
            for (((pixel, r), g), b) in rgb.as_raw().chunks_exact(3).zip(red).zip(green).zip(blue) {
                if let &[pr, pg, pb] = pixel {
                    (*r, *g, *b) = (pr, pg, pb);
                }
            }
        }
    }
}

/// The image with any transparency composited on a white background (alpha dropped).
fn flatten_on_white(image: DynamicImage) -> DynamicImage {
    if !image.color().has_alpha() {
        return image;
    }
    let mut rgba = image.into_rgba8();
    for pixel in rgba.chunks_exact_mut(4) {
        if let [r, g, b, a] = pixel
            && *a != u8::MAX
        {
            let alpha = u32::from(*a);
            let white = 255 * (255 - alpha) + 127;
            for value in [r, g, b] {
                *value = u8::try_from((u32::from(*value) * alpha + white) / 255).unwrap_or(u8::MAX);
            }
            *a = u8::MAX;
        }
    }
    DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8())
}
