//! Convolution, max-pool and element-wise activation kernels for convscope, on plain `f32` slices (NCHW):
//! im2col plus the `gemm` crate on any CPU, direct register-blocked kernels where the CPU has AVX-512 or AVX2. A
//! crate of its own so that it is optimised even in test builds (`[profile.dev.package.convscope-kernels]`) and
//! so its `unsafe` stays here; the autodiff plumbing that plugs it into burn lives in convscope's `src/kernels/`.

pub mod dense;
pub mod direct;
#[cfg(target_arch = "x86_64")]
mod dw_rows;
pub mod gemm;
pub mod moments;
pub mod peak;
pub mod pointwise;
pub mod pool;
#[cfg(target_arch = "x86_64")]
mod simd;
pub mod squares;
pub mod update;

/// Shape of one convolution: x [b, ci, h, w], w [co, ci, kh, kw], zero padding `pad` on every side, the same
/// stride in both directions (im2col + gemm take any; the direct kernels any for forward and dW, 1 for dX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    /// Batch.
    pub b: usize,
    /// Input channels.
    pub ci: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub co: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Stride (at least 1).
    pub stride: usize,
}

impl Geom {
    /// Output height.
    pub fn ho(&self) -> usize {
        outputs(self.h + 2 * self.pad, self.kh, self.stride)
    }
    /// Output width.
    pub fn wo(&self) -> usize {
        outputs(self.w + 2 * self.pad, self.kw, self.stride)
    }
    /// Values in one im2col column: ci × kh × kw.
    pub fn k(&self) -> usize {
        self.ci * self.kh * self.kw
    }
    /// Output pixels per channel.
    pub fn hw_out(&self) -> usize {
        self.ho() * self.wo()
    }
    /// Input pixels per channel.
    pub fn hw_in(&self) -> usize {
        self.h * self.w
    }
}

/// Window positions along a padded side of `padded` values: none where the window is wider than the side (the
/// stride-1 formula this replaced, padded + 1 − kernel, gave 0 there too rather than wrapping).
fn outputs(padded: usize, kernel: usize, stride: usize) -> usize {
    padded.checked_sub(kernel).map_or(0, |span| span / stride.max(1) + 1)
}

pub use direct::Isa;

/// `n` zeros, written by the current rayon pool's threads side by side in runs of `run` values (one thread
/// zeroing a layer's output while the others wait was a tenth of a two-thread step's serial time). At memset
/// speed: each run is one `fill`, not a value at a time through an iterator.
pub fn zeroed(n: usize, run: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n].par_chunks_mut(run.max(1)).for_each(|part| part.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the capacity is at least `n`, and each of the first `n` values was written just above.
    unsafe { v.set_len(n) };
    v
}

/// `n` values in runs of `run`, each run zeroed and then handed to `fill(index of the run, run)` by the thread of
/// the current rayon pool that zeroed it, while the run is still in that thread's cache: one parallel pass where
/// [`zeroed`] and a second pass over the same memory took two (and a second wake-up of the other threads).
pub fn zeroed_then(n: usize, run: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    use std::mem::MaybeUninit;
    let zero_then_fill = |index: usize, part: &mut [MaybeUninit<f32>]| {
        part.fill(MaybeUninit::new(0.0));
        // SAFETY: every value of `part` was written just above, and `MaybeUninit<f32>` has the layout of `f32`.
        let part = unsafe { &mut *(std::ptr::from_mut(part) as *mut [f32]) };
        fill(index, part);
    };
    // SAFETY: `zero_then_fill` writes every value of its run.
    unsafe { written_in_runs(n, run, zero_then_fill) }
}

/// `n` values in runs of `run`, each handed to `fill(index of the run, run)` on the current rayon pool's threads,
/// unwritten: for a kernel that writes every value, where [`zeroed_then`] would write them twice.
///
/// # Safety
/// `fill` writes every value of the run it is given.
pub(crate) unsafe fn written_in_runs(
    n: usize,
    run: usize,
    fill: impl Fn(usize, &mut [std::mem::MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let run = run.max(1);
    let mut v: Vec<f32> = Vec::with_capacity(n);
    let spare = &mut v.spare_capacity_mut()[..n];
    if run >= n {
        fill(0, spare);
    } else {
        spare.par_chunks_mut(run).enumerate().for_each(|(index, part)| fill(index, part));
    }
    // SAFETY: the capacity is at least `n`, and `fill` wrote each of the first `n` values (the caller's promise).
    unsafe { v.set_len(n) };
    v
}

/// The cores this process may run on, asked once: the standard library reads the affinity mask and the cgroup's
/// quota files each time (tens of microseconds, more than a small net's whole step takes to measure).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// How long [`with_threads_awake`] waits for its spinners to start (a sleeping thread wakes in well under it).
const SPINNERS_WAITED_FOR: std::time::Duration = std::time::Duration::from_millis(10);

/// Runs `work` (a training step) with the current rayon pool's other threads kept awake: each spins on the
/// pool's pending work until `work` returns, so that the step's parallel ops start on them at once. Asleep
/// between ops, a thread took a futex wake-up per op (about a tenth of a two-thread ref-mnist step). Which thread
/// runs what changes nothing in the results: every split is fixed by shape and thread count.
pub fn with_threads_awake<R>(work: impl FnOnce() -> R) -> R {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let others = rayon::current_num_threads().saturating_sub(1);
    // More threads than cores: a spinner would take a core from a thread with work.
    if others == 0 || others >= cores() || rayon::current_thread_index().is_none() {
        return work();
    }
    /// Ends the spinning however `work` ends (a panic included: the scope waits for its spinners).
    struct Finished<'a>(&'a AtomicBool);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let (finished, awake) = (AtomicBool::new(false), AtomicUsize::new(0));
    rayon::in_place_scope(|scope| {
        let _finished = Finished(&finished);
        for _ in 0..others {
            scope.spawn(|_| {
                awake.fetch_add(1, Ordering::AcqRel);
                while !finished.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        // Not before every spinner has a thread: one left in this thread's deque could be run by this thread
        // while it waits inside `work`, and would never return. A thread busy elsewhere (another step in the
        // same pool, waiting for this one's threads in turn) is not waited for long: the spinning is called
        // off, and a spinner that starts later stops at once.
        let asked = std::time::Instant::now();
        while awake.load(Ordering::Acquire) < others {
            if asked.elapsed() > SPINNERS_WAITED_FOR {
                finished.store(true, Ordering::Release);
                break;
            }
            std::hint::spin_loop();
        }
        work()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn work_with_the_threads_awake_gives_its_result_and_its_panic() {
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            let sum = super::with_threads_awake(|| (0..100_000u64).into_par_iter().sum::<u64>());
            assert_eq!(sum, 4_999_950_000);
            // Nested, and again: the spinners end each time.
            let nested = super::with_threads_awake(|| super::with_threads_awake(|| 7) + 1);
            assert_eq!(nested, 8);
            let panicked = std::panic::catch_unwind(|| super::with_threads_awake(|| panic!("a failed step")));
            assert!(panicked.is_err(), "a panic comes out, and the spinners stop");
            assert_eq!(super::with_threads_awake(|| rayon::join(|| 1, || 2)), (1, 2));
            // Two steps at once in one pool, each asking for the other's thread: neither waits for ever.
            let (a, b) = rayon::join(|| super::with_threads_awake(|| 1), || super::with_threads_awake(|| 2));
            assert_eq!((a, b), (1, 2));
        });
    }

    #[test]
    fn zeroed_is_n_zeros_whatever_the_runs() {
        for (n, run) in [(0, 4), (1, 4), (10, 3), (100_000, 4096), (7, 0)] {
            let v = super::zeroed(n, run);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn output_sides_follow_the_stride_and_are_zero_where_the_window_does_not_fit() {
        let g = super::Geom { b: 1, ci: 1, h: 28, w: 13, co: 1, kh: 3, kw: 3, pad: 1, stride: 2 };
        assert_eq!((g.ho(), g.wo()), (14, 7));
        assert_eq!((super::Geom { stride: 1, ..g }.ho(), super::Geom { kw: 16, pad: 1, ..g }.wo()), (28, 0));
    }

    #[test]
    fn zeroed_then_hands_every_run_zeroed_to_fill_once() {
        for (n, run) in [(0, 4), (1, 4), (10, 3), (100_000, 4096), (7, 0), (9, 9)] {
            let v = super::zeroed_then(n, run, |index, part| {
                assert!(part.iter().all(|&x| x == 0.0), "handed over zeroed");
                // Values in the second half of each run are left at zero.
                let half = part.len() / 2;
                part[..half].iter_mut().enumerate().for_each(|(i, x)| *x = (index * run.max(1) + i) as f32 + 1.0);
            });
            assert_eq!(v.len(), n);
            for (i, &x) in v.iter().enumerate() {
                let (run, at) = (run.max(1), i % run.max(1));
                let len = run.min(n - i / run * run);
                assert_eq!(x, if at < len / 2 { i as f32 + 1.0 } else { 0.0 }, "value {i} of {n} in runs of {run}");
            }
        }
    }
}
