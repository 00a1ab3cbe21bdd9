//! IDX files (raw or gzip) through `parse_idx_bytes`, the parser behind every MNIST-style load. A parse that
//! succeeds must hold exactly the bytes its dimensions promise.

/// The harness: one-time set-up, then a closure run on every input.
pub fn setup() -> impl FnMut(&[u8]) + std::panic::RefUnwindSafe {
    move |data: &[u8]| {
        if let Ok(array) = convscope::data::parse_idx_bytes(data, "fuzz") {
            let promised = array.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            assert_eq!(promised, Some(array.data.len()), "dims {:?}", array.dims);
        }
    }
}
