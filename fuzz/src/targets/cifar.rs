//! CIFAR binary batches through `parse_cifar_bytes`. The first input byte picks the kind (even: CIFAR-10,
//! odd: CIFAR-100); the rest is the file. A parse that succeeds must hold 3072 pixel bytes per label.

use convscope::data::{CifarKind, parse_cifar_bytes};

/// The harness: one-time set-up, then a closure run on every input.
pub fn setup() -> impl FnMut(&[u8]) + std::panic::RefUnwindSafe {
    move |data: &[u8]| {
        let Some((&selector, file)) = data.split_first() else {
            return;
        };
        let kind = if selector & 1 == 0 { CifarKind::Cifar10 } else { CifarKind::Cifar100 };
        if let Ok(arrays) = parse_cifar_bytes(file, kind, "fuzz") {
            assert_eq!(arrays.images.len(), arrays.labels.len() * 3072);
        }
    }
}
