//! Run histories through `convscope::history::parse_history`: the signature and format, then records of
//! length · CRC-32 · MessagePack `WorkerEvent`. Each record's checksum stops random mutation of its payload,
//! so the first input byte picks a mode (its value modulo 3):
//! - 0: the rest is the file as it is;
//! - 1: the rest is the file; the harness rewrites every record's CRC over its (mutated) payload first;
//! - 2: the rest is one record's MessagePack payload; the harness wraps it in a one-record history.
//!
//! A parse must account for the whole file: the records' ends lead to the end or to the torn tail.

use std::path::Path;

use convscope::history::parse_history;

/// The harness: one-time set-up, then a closure run on every input.
pub fn setup() -> impl FnMut(&[u8]) + std::panic::RefUnwindSafe {
    let path = Path::new("history.bin");
    move |data: &[u8]| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let mut owned = Vec::new();
        let bytes = match mode % 3 {
            0 => rest,
            1 => {
                owned.extend_from_slice(rest);
                crate::fix_history_checksums(&mut owned);
                &owned[..]
            }
            _ => {
                owned = crate::history_around(rest);
                &owned[..]
            }
        };
        if let Ok(history) = parse_history(path, bytes) {
            assert_eq!(history.events.len(), history.offsets.len());
            if let Some((offset, _)) = &history.torn {
                assert!(*offset as usize <= bytes.len());
            }
        }
    }
}
