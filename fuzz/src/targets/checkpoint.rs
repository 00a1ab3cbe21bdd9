//! Checkpoint files through `convscope::train::parse_checkpoint` (signature, format, part lengths, CRC-32,
//! JSON header). The format ends with a CRC-32 of everything before it, which random mutation almost never
//! gets right, so the first input byte picks a mode (its value modulo 3):
//! - 0: the rest is the file as it is;
//! - 1: the rest is the file without its checksum; the harness appends the right one;
//! - 2: the rest is the JSON header alone; the harness wraps it with the signature, the format, two small
//!   records and the checksum, so every execution reaches the header's decoding.
//!
//! A checkpoint that parses has its configuration checked and planned as a resume would.

use std::path::Path;

use convscope::arch::ImageShape;
use convscope::train::checkpoint::parse_checkpoint;

/// The harness: one-time set-up, then a closure run on every input.
pub fn setup() -> impl FnMut(&[u8]) + std::panic::RefUnwindSafe {
    let path = Path::new("fuzz.ckpt");
    move |data: &[u8]| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let owned;
        let bytes = match mode % 3 {
            0 => rest,
            1 => {
                owned = crate::with_crc(rest);
                &owned[..]
            }
            _ => {
                owned = crate::checkpoint_around(rest, b"model", b"optimiser");
                &owned[..]
            }
        };
        if let Ok(checkpoint) = parse_checkpoint(path, bytes) {
            let config = checkpoint.config();
            let _ = checkpoint.step();
            if config.validate().is_ok() {
                let _ = config.plan(ImageShape { channels: 1, height: 28, width: 28 }, 10);
            }
        }
    }
}
