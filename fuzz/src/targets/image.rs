//! Image files through the real decoding path of the image-folder loader (`src/data/decode.rs`: content
//! sniffing, decoder limits, EXIF orientation, compositing on white, conversion and resizing), which is
//! path-based: each input is written to a file under /dev/shm.
//!
//! The first input byte chooses: bit 0, the entry point — 0: `load_probe_image` (decode + write planes);
//! 1: `load_image_folder` on a two-class folder whose class `a` holds the input and class `b` four copies of
//! a fixed valid PNG (header probe, then decode, resize, split); bit 1, grey or RGB; bits 2–7, the side length 1–64
//! (64 in folder mode: the loader's own default size). The rest is the file.
//!
//! `src/data/decode.rs` turns a panic inside an image decoder into a skipped, corrupt file (its message says
//! "the image decoder failed on it"), so by default such a panic is not a crash here either. With
//! `CONVSCOPE_FUZZ_DECODER_PANICS=1` it is: the harness panics when a load reports one, to find decoder bugs
//! worth reporting upstream. With `CONVSCOPE_FUZZ_SKIP_KNOWN=1` inputs that hit a known, reported crash are skipped, so a campaign can
//! look past it: PNG files with a PLTE chunk whose length is not a multiple of 3 (png 0.18.1 panics in
//! `create_rgba_palette`, image-rs/image-png#694; see `crashes/image/`).

use std::path::Path;

use convscope::arch::ImageShape;
use convscope::data::{LoadOptions, SkipReason, load_image_folder, load_probe_image};

/// What `src/data/decode.rs` says of a file whose decoder panicked (and was stopped).
const DECODER_PANICKED: &str = "the image decoder failed on it";

/// A valid 2×2 RGB PNG for class `b`, so the folder always has a second class.
const FIXED_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd, 0xd4, 0x9a, 0x73, 0x00, 0x00, 0x00, 0x16, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xc0, 0xf0, 0x9f, 0x81, 0x91, 0x81, 0xe1, 0xff, 0xff, 0xff,
    0x0c, 0x00, 0x1e, 0xf6, 0x04, 0xfd, 0x09, 0xed, 0x34, 0x3e, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// Whether `file` is a PNG with a palette chunk whose length is not a multiple of 3 (any PLTE chunk, valid or not).
fn png_palette_not_triples(file: &[u8]) -> bool {
    if !file.starts_with(b"\x89PNG\r\n\x1a\n") {
        return false;
    }
    let mut at: usize = 8;
    while let Some(head) = at.checked_add(8).and_then(|end| file.get(at..end)) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if &head[4..8] == b"PLTE" && len % 3 != 0 {
            return true;
        }
        at = at.saturating_add(len).saturating_add(12);
    }
    false
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("the scratch file could not be written");
}

/// The harness: one-time set-up, then a closure run on every input.
pub fn setup() -> impl FnMut(&[u8]) + std::panic::RefUnwindSafe {
    let dir = crate::scratch_dir("image");
    let probe_file = dir.join("probe.img");
    let folder = dir.join("folder");
    for class in ["a", "b"] {
        std::fs::create_dir_all(folder.join(class)).expect("the class folders could not be made");
    }
    let input_file = folder.join("a").join("x.img");
    // Four in `b`, so a split into train and test parts succeeds even when the input is skipped.
    for name in ["y1.png", "y2.png", "y3.png", "y4.png"] {
        write(&folder.join("b").join(name), FIXED_PNG);
    }
    let skip_known = std::env::var_os("CONVSCOPE_FUZZ_SKIP_KNOWN").is_some_and(|value| value == "1");
    let decoder_panics = std::env::var_os("CONVSCOPE_FUZZ_DECODER_PANICS").is_some_and(|value| value == "1");
    move |data: &[u8]| {
        let Some((&selector, file)) = data.split_first() else {
            return;
        };
        if skip_known && png_palette_not_triples(file) {
            return;
        }
        let channels = if selector & 2 == 0 { 1 } else { 3 };
        let side = usize::from(selector >> 2) + 1;
        if selector & 1 == 0 {
            write(&probe_file, file);
            let shape = ImageShape { channels, height: side, width: side };
            match load_probe_image(&probe_file, shape) {
                Ok(planes) => assert_eq!(planes.len(), channels * side * side),
                Err(error) => assert!(
                    !(decoder_panics && error.to_string().contains(DECODER_PANICKED)),
                    "an image decoder panicked: {error}"
                ),
            }
        } else {
            write(&input_file, file);
            let image_size = (side < 64).then_some(side);
            let options = LoadOptions { classes: None, seed: 1, image_size, channels: Some(channels) };
            let panicked = match load_image_folder(&folder, &options) {
                Ok((_, report)) => report
                    .skipped
                    .iter()
                    .find(
                        |skipped| matches!(&skipped.reason, SkipReason::Corrupt(why) if why.contains(DECODER_PANICKED)),
                    )
                    .map(|skipped| skipped.reason.to_string()),
                Err(error) => Some(error.to_string()).filter(|message| message.contains(DECODER_PANICKED)),
            };
            if let (true, Some(message)) = (decoder_panics, panicked) {
                panic!("an image decoder panicked: {message}");
            }
        }
    }
}
