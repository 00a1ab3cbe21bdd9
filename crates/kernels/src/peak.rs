//! The machine's f32 FMA peak on one core, measured: independent fused multiply-adds on the widest vectors the
//! CPU runs, enough of them in flight to hide the instruction's latency on every FMA port. `convscope bench`
//! divides the FLOP/s it achieves by this, so a figure says how close to the machine's limit it is.

use std::hint::black_box;
use std::time::Instant;

use crate::direct::Isa;

/// FMAs per vector lane in one timed run: about 50 ms at 100 GFLOP/s with 16 lanes.
const ITERATIONS: usize = 8_000_000;
/// Timed runs; the fastest counts (a run may lose the core to another process).
const RUNS: usize = 3;
/// Independent accumulators: two FMA ports × four cycles of latency need eight in flight; twelve leave room.
const CHAINS: usize = 12;

/// One core's f32 FMA throughput in GFLOP/s (an FMA counts two FLOPs), the fastest of a few short runs on
/// `isa`'s vectors; `None` where the CPU does not run `isa`.
pub fn fma_peak_gflops(isa: Isa) -> Option<f64> {
    if !isa.runs_here() {
        return None;
    }
    let lanes = match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
    };
    let flops = (2 * lanes * CHAINS * ITERATIONS) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let started = Instant::now();
        black_box(chains(isa, black_box(ITERATIONS)));
        best = best.min(started.elapsed().as_secs_f64());
    }
    Some(flops / best.max(1e-9) / 1e9)
}

#[cfg(target_arch = "x86_64")]
fn chains(isa: Isa, iterations: usize) -> f32 {
    // SAFETY: `fma_peak_gflops` checked that this CPU runs `isa`.
    unsafe {
        match isa {
            Isa::Avx512 => avx512(iterations),
            Isa::Avx2 => avx2(iterations),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn chains(_isa: Isa, _iterations: usize) -> f32 {
    0.0
}

/// `CHAINS` accumulators, each `a ← a·m + c` `iterations` times (m just below 1: no overflow, no denormals).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn avx512(iterations: usize) -> f32 {
    use std::arch::x86_64::{_mm512_add_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_ps};
    let (m, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..iterations {
        for a in &mut acc {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    let total = acc.iter().fold(_mm512_set1_ps(0.0), |sum, &a| _mm512_add_ps(sum, a));
    _mm512_reduce_add_ps(total)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(iterations: usize) -> f32 {
    use std::arch::x86_64::{__m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_storeu_ps};
    let (m, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc: [__m256; CHAINS] = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..iterations {
        for a in &mut acc {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let total = acc.iter().fold(_mm256_set1_ps(0.0), |sum, &a| _mm256_add_ps(sum, a));
    let mut lanes = [0.0_f32; 8];
    // SAFETY: `lanes` holds the 8 floats the store writes.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_a_plausible_number_on_every_instruction_set_this_cpu_runs() {
        for isa in [Isa::Avx512, Isa::Avx2] {
            match fma_peak_gflops(isa) {
                // Any core of the last fifteen years: above 1 GFLOP/s, below 1 TFLOP/s per core.
                Some(peak) => assert!((1.0..1000.0).contains(&peak), "{isa:?}: {peak} GFLOP/s"),
                None => assert!(!isa.runs_here()),
            }
        }
    }
}
