//! Property tests for the byte parsers: thousands of random and mutated IDX and CIFAR inputs must
//! never panic, and never make the parser allocate more than the input justifies. A counting global
//! allocator (test builds only) records the largest single allocation on the parsing thread.

// A global allocator can only be written with `unsafe`; this one just forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use flate2::Compression;
use flate2::write::GzEncoder;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cifar::{CifarKind, parse_cifar_bytes};
use super::idx::parse_idx_bytes;

/// Fixed costs any parse may have beyond the data: gzip decoder state (about 40 KiB of window and
/// tables), error message strings, and the small header vectors.
const SLACK: usize = 64 * 1024;
const IDX_CASES: usize = 10_000;
const CIFAR_CASES: usize = 5000;

struct PeakAlloc;

thread_local! {
    // `const` thread-locals of `Cell<primitive>` need no lazy initialisation and no destructor, so
    // touching them never allocates: safe to use from inside the allocator.
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with` rather than `with`: during thread teardown the slot may be gone; never panic here.
    let tracking = TRACKING.try_with(Cell::get).unwrap_or(false);
    if tracking {
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(size)));
    }
}

// SAFETY: every call forwards unchanged to `System`; the bookkeeping touches only thread-local cells.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Runs `parse` on this thread and returns its result with the largest single allocation it made.
fn peak_during<T>(parse: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|peak| peak.set(0));
    TRACKING.with(|tracking| tracking.set(true));
    let result = parse();
    TRACKING.with(|tracking| tracking.set(false));
    (result, PEAK.with(Cell::get))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("finish gzip")
}

fn idx_file(dims: &[u32], fill: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, u8::try_from(dims.len()).expect("few dims")];
    for dim in dims {
        bytes.extend_from_slice(&dim.to_be_bytes());
    }
    let len = dims.iter().map(|&dim| dim as usize).product::<usize>();
    bytes.extend((0..len).map(fill));
    bytes
}

/// Bytes the IDX header of a raw (uncompressed) input promises, or 0 when there is no full header.
fn implied_idx_len(raw: &[u8]) -> usize {
    let Some(&[0, 0, 8, dim_count]) = raw.get(..4) else { return 0 };
    let dim_count = usize::from(dim_count);
    if !(1..=4).contains(&dim_count) {
        return 0;
    }
    let Some(dim_bytes) = raw.get(4..4 + 4 * dim_count) else { return 0 };
    dim_bytes
        .chunks_exact(4)
        .map(|chunk| u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize)
        .try_fold(1usize, usize::checked_mul)
        .unwrap_or(usize::MAX)
}

/// One random change of a valid input: flipped bytes, a cut, an extension, a huge dimension, or
/// pure noise.
fn mutate(rng: &mut ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    match rng.random_range(0..7u8) {
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                if !bytes.is_empty() {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] ^= rng.random_range(1..=255u8);
                }
            }
        }
        1 => bytes.truncate(rng.random_range(0..=bytes.len())),
        2 => bytes.extend((0..rng.random_range(1..5000)).map(|_| rng.random::<u8>())),
        3 => {
            // A huge or random dimension: the header now promises far more than the file holds.
            let slot = 4 + 4 * rng.random_range(0..4usize);
            let value = match rng.random_range(0..3u8) {
                0 => u32::MAX,
                1 => 0x7fff_ffff,
                _ => rng.random::<u32>(),
            };
            if let Some(word) = bytes.get_mut(slot..slot + 4) {
                word.copy_from_slice(&value.to_be_bytes());
            }
        }
        4 => {
            if let Some(byte) = bytes.get_mut(rng.random_range(2..4usize)) {
                *byte = rng.random();
            }
        }
        5 => {
            let cut = rng.random_range(0..=bytes.len());
            bytes.truncate(cut);
            bytes.extend((0..rng.random_range(0..64)).map(|_| rng.random::<u8>()));
        }
        _ => bytes = (0..rng.random_range(0..600)).map(|_| rng.random::<u8>()).collect(),
    }
    bytes
}

fn check_no_panic<T>(case: usize, input: &[u8], parse: impl FnOnce() -> T) -> (T, usize) {
    match catch_unwind(AssertUnwindSafe(|| peak_during(parse))) {
        Ok(outcome) => outcome,
        Err(_) => panic!(
            "case {case}: parser panicked on {} bytes starting {:02x?}",
            input.len(),
            &input[..input.len().min(24)]
        ),
    }
}

#[test]
fn idx_parser_survives_random_and_mutated_inputs_within_memory_bounds() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x1d8);
    let images = idx_file(&[12, 9, 7], |index| (index * 31 % 256) as u8);
    let labels = idx_file(&[300], |index| (index % 10) as u8);
    let cube = idx_file(&[2, 3, 4, 5], |index| index as u8);
    let seeds = [images.clone(), labels.clone(), cube, gzip(&images), gzip(&labels)];
    let mut outcomes = [0usize; 2];
    for case in 0..IDX_CASES {
        let seed = &seeds[case % seeds.len()];
        // Every third case mutates the raw bytes and then gzips them: valid gzip, hostile content.
        let (input, raw) = if case % 3 == 2 {
            let raw = mutate(&mut rng, &seeds[case % 3]);
            (gzip(&raw), raw)
        } else {
            let input = mutate(&mut rng, seed);
            (input.clone(), input)
        };
        let (result, peak) = check_no_panic(case, &input, || parse_idx_bytes(&input, "fuzz"));
        outcomes[usize::from(result.is_ok())] += 1;
        // The spec bound: never more than the input or what its header promises, plus fixed costs.
        let implied = implied_idx_len(&raw);
        assert!(
            peak <= input.len().max(implied.saturating_add(1)).saturating_add(SLACK),
            "case {case}: peak {peak} for {} input bytes, header promising {implied}",
            input.len()
        );
        // Tighter: nothing beyond twice what really decompressed (the body grows by doubling).
        assert!(peak <= 2 * raw.len().max(input.len()) + SLACK, "case {case}: peak {peak} for {} raw bytes", raw.len());
        if let Ok(array) = result {
            assert_eq!(array.data.len(), array.dims.iter().product::<usize>(), "case {case}");
        }
    }
    // The mutations must exercise both outcomes, or the test proves little.
    assert!(outcomes[0] > IDX_CASES / 2 && outcomes[1] > 50, "errors/successes: {outcomes:?}");
}

#[test]
fn valid_gzip_idx_allocates_no_more_than_the_promise() {
    // 600 KiB of body: `read_to_end` doubles its buffer, up to 1 MiB here.
    let raw = idx_file(&[600, 32, 32], |index| (index % 251) as u8);
    let input = gzip(&raw);
    let (result, peak) = peak_during(|| parse_idx_bytes(&input, "valid.gz"));
    assert!(result.is_ok());
    assert!(peak <= 600 * 32 * 32 + 1 + SLACK, "peak {peak}");
    // A header promising 4 GB over 2 KB of real data costs only what arrives.
    let mut liar = idx_file(&[2, 32, 32], |_| 7);
    liar[4..8].copy_from_slice(&4_000_000u32.to_be_bytes());
    let input = gzip(&liar);
    let (result, peak) = peak_during(|| parse_idx_bytes(&input, "liar.gz"));
    assert!(result.is_err());
    assert!(peak <= SLACK, "peak {peak}");
}

fn cifar_file(kind: CifarKind, records: usize) -> Vec<u8> {
    (0..records * kind.record_len())
        .map(|index| (index * 13 % 256) as u8 % if index % kind.record_len() < 2 { 10 } else { 255 })
        .collect()
}

#[test]
fn cifar_parser_survives_random_and_mutated_inputs_within_memory_bounds() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xc1fa);
    let seeds = [cifar_file(CifarKind::Cifar10, 3), cifar_file(CifarKind::Cifar100, 2), Vec::new()];
    let mut outcomes = [0usize; 2];
    for case in 0..CIFAR_CASES {
        let input = match case % 4 {
            3 => {
                // Whole-record inputs of random content, so the success path is fuzzed too.
                let kind = if rng.random::<bool>() { CifarKind::Cifar10 } else { CifarKind::Cifar100 };
                (0..kind.record_len() * rng.random_range(1..4)).map(|_| rng.random::<u8>()).collect()
            }
            slot => mutate(&mut rng, &seeds[slot % seeds.len()]),
        };
        for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
            let (result, peak) = check_no_panic(case, &input, || parse_cifar_bytes(&input, kind, "fuzz.bin"));
            outcomes[usize::from(result.is_ok())] += 1;
            assert!(peak <= input.len() + SLACK, "case {case}: peak {peak} for {} bytes", input.len());
            match result {
                Ok(arrays) => {
                    assert_eq!(input.len() % kind.record_len(), 0, "case {case}");
                    assert_eq!(arrays.labels.len(), input.len() / kind.record_len());
                    assert_eq!(arrays.images.len(), arrays.labels.len() * 3072);
                }
                Err(_) => assert!(input.is_empty() || input.len() % kind.record_len() != 0, "case {case}"),
            }
        }
    }
    assert!(outcomes[0] > CIFAR_CASES / 2 && outcomes[1] > CIFAR_CASES / 4, "errors/successes: {outcomes:?}");
}

#[test]
fn the_allocator_sees_allocations_on_this_thread_only() {
    let (buffer, peak) = peak_during(|| vec![1u8; 123_457]);
    assert!(peak >= 123_457, "peak {peak}");
    drop(buffer);
    let other = || std::thread::Builder::new().name("allocating".into()).spawn(|| vec![0u8; 1 << 20]);
    let (_, idle) = peak_during(|| other().map(|thread| thread.join().map(|v| v.len())));
    assert!(idle < 1 << 20, "another thread's allocation leaked in: {idle}");
}
