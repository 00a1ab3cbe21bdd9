//! The moments pass with its running quantities in vector registers (AVX-512 or AVX2), f′ computed in them
//! too for the common activations.

use std::marker::PhantomData;

use super::{AddBlock, Lanes, Slope};
use crate::pointwise::{self, Pointwise};
use crate::simd::Vector;

/// A [`Slope::Other`]'s slopes are computed ahead of the vector pass in blocks this long (a multiple of every
/// vector width).
const SLOPE_BLOCK: usize = 256;

/// The running quantities in registers of `V` (L = `V::L`), the slope computed in them too, the last partial
/// vector masked: lane by lane the operations of [`Lanes::add`], so the figures are the plain pass's.
pub(super) struct InRegisters<V>(PhantomData<V>);

impl<V: Vector, const L: usize> AddBlock<L> for InRegisters<V> {
    /// The running sums, and room for a [`Slope::Other`]'s slopes, computed ahead (zeroed once here: zeroing it
    /// for every block cost more than a 7×7 map's pass).
    type Held = (Running<V>, [f32; SLOPE_BLOCK]);
    #[inline(always)]
    unsafe fn hold(lanes: &Lanes<L>) -> Self::Held {
        debug_assert!(L == V::L);
        (unsafe { Running::load(lanes) }, [0.0; SLOPE_BLOCK])
    }
    #[inline(always)]
    unsafe fn release(held: &Self::Held, lanes: &mut Lanes<L>) {
        unsafe { held.0.store(lanes) }
    }
    #[inline(always)]
    unsafe fn add_block(held: &mut Self::Held, pre: &[f32], post: &[f32], slope: Slope) {
        debug_assert!(pre.len() == post.len());
        let (sums, slopes) = held;
        // SAFETY: the caller's CPU runs V; every load stays within a slice or `slopes` (the last partial vector
        // is read with `load_first`).
        unsafe {
            if let Slope::Other(slope) = slope {
                return add_block_slopes_ahead(sums, slopes, pre, post, slope);
            }
            // Every value finite is the rule: the block goes through without the checks for ±∞ and NaN, and again
            // with them only if a sum came out non-finite (a non-finite value, or an overflow, leaves its lane's
            // sum non-finite to the block's end). On finite values both ways give the same figures.
            // Copies in locals, which the compiler keeps in registers.
            let mut running = *sums;
            if running.finite() {
                add_values::<V, false, L>(&mut running, pre, post, slope);
                if running.finite() {
                    // Every a was finite, so the block's largest is its largest finite one: the unit's peak
                    // follows from the finite range's top (which it never falls below), one max fewer a vector.
                    running.peak = V::max(running.post_high, running.peak);
                    *sums = running;
                    return;
                }
                running = *sums;
            }
            add_values::<V, true, L>(&mut running, pre, post, slope);
            *sums = running;
        }
    }

    /// ReLU's a = max(z, 0) in registers when every z is finite (the sums say so after the block); otherwise,
    /// and for other activations, through `plane`.
    #[inline(always)]
    unsafe fn add_activated(held: &mut Self::Held, f: Pointwise, pre: &[f32], plane: &mut [f32], slope: Slope) {
        // SAFETY: as in `add_block`.
        unsafe {
            // ReLU's slope is the step at 0, counted as the lanes where z > 0.
            let step_at_zero = matches!(slope, Slope::Step { below } if below == 0.0);
            if f == Pointwise::Relu && step_at_zero && held.0.finite() {
                let mut running = held.0;
                add_relu::<V, L>(&mut running, pre);
                if running.finite() {
                    running.peak = V::max(running.post_high, running.peak);
                    held.0 = running;
                    return;
                }
            }
            pointwise::forward_into_plain(f, pre, plane);
            <Self as AddBlock<L>>::add_block(held, pre, plane, slope);
        }
    }
}

/// [`add_values`] unchecked with a = max(z, 0), which is ReLU's value for every finite z, and its slope (1 where
/// z > 0, else 0) counted.
#[inline(always)]
unsafe fn add_relu<V: Vector, const L: usize>(sums: &mut Running<V>, pre: &[f32]) {
    // SAFETY: as in `InRegisters::add_block`.
    unsafe {
        let zero = V::zero();
        let whole = pre.len() / L * L;
        for at in (0..whole).step_by(L) {
            let z = V::load(pre.as_ptr().add(at));
            sums.slope = V::add_one_where_positive(sums.slope, z);
            sums.add_but_slope::<false>(z, V::max(z, zero), L);
        }
        let n = pre.len() - whole;
        if n > 0 {
            // The lanes past the end load as 0, which counts nothing.
            let z = V::load_first(pre.as_ptr().add(whole), n);
            sums.slope = V::add_one_where_positive(sums.slope, z);
            sums.add_but_slope::<false>(z, V::max(z, zero), n);
        }
    }
}

/// Adds `pre` and `post` lane by lane, the last partial vector masked; `CHECKED` takes care of ±∞ and NaN.
#[inline(always)]
unsafe fn add_values<V: Vector, const CHECKED: bool, const L: usize>(
    sums: &mut Running<V>,
    pre: &[f32],
    post: &[f32],
    slope: Slope,
) {
    // SAFETY: as in `InRegisters::add_block`.
    unsafe {
        let whole = pre.len() / L * L;
        for at in (0..whole).step_by(L) {
            let (z, a) = (V::load(pre.as_ptr().add(at)), V::load(post.as_ptr().add(at)));
            sums.add::<CHECKED>(z, a, slope.vector::<V>(z, a), L);
        }
        let n = pre.len() - whole;
        if n > 0 {
            let (z, a) = (V::load_first(pre.as_ptr().add(whole), n), V::load_first(post.as_ptr().add(whole), n));
            sums.add::<CHECKED>(z, a, V::keep_first(n, slope.vector::<V>(z, a), 0.0), n);
        }
    }
}

/// As [`InRegisters::add_block`] for a slope the vector pass cannot compute: value by value into `slopes`
/// first, a block ahead.
#[inline(always)]
unsafe fn add_block_slopes_ahead<V: Vector>(
    sums: &mut Running<V>,
    slopes: &mut [f32; SLOPE_BLOCK],
    pre: &[f32],
    post: &[f32],
    slope: fn(f32, f32) -> f32,
) {
    let l = V::L;
    // SAFETY: as in `InRegisters::add_block`.
    unsafe {
        for (zs, activations) in pre.chunks(SLOPE_BLOCK).zip(post.chunks(SLOPE_BLOCK)) {
            for ((s, &z), &a) in slopes.iter_mut().zip(zs).zip(activations) {
                *s = slope(z, a);
            }
            let whole = zs.len() / l * l;
            for at in (0..whole).step_by(l) {
                let (z, a) = (V::load(zs.as_ptr().add(at)), V::load(activations.as_ptr().add(at)));
                sums.add::<true>(z, a, V::load(slopes.as_ptr().add(at)), l);
            }
            let n = zs.len() - whole;
            if n > 0 {
                let z = V::load_first(zs.as_ptr().add(whole), n);
                let a = V::load_first(activations.as_ptr().add(whole), n);
                sums.add::<true>(z, a, V::load_first(slopes.as_ptr().add(whole), n), n);
            }
        }
    }
}

/// [`Lanes`] held in registers.
pub(super) struct Running<V: Vector> {
    pre_sum: V::V,
    pre_square: V::V,
    post_sum: V::V,
    post_square: V::V,
    slope: V::V,
    pre_non_finite: V::V,
    pre_low: V::V,
    pre_high: V::V,
    post_low: V::V,
    post_high: V::V,
    peak: V::V,
}

impl<V: Vector> Running<V> {
    #[inline(always)]
    unsafe fn load<const L: usize>(lanes: &Lanes<L>) -> Self {
        // SAFETY: each lane array is L = V::L long.
        let load = |lane: &[f32; L]| unsafe { V::load(lane.as_ptr()) };
        Running {
            pre_sum: load(&lanes.pre_sum),
            pre_square: load(&lanes.pre_square),
            post_sum: load(&lanes.post_sum),
            post_square: load(&lanes.post_square),
            slope: load(&lanes.slope),
            pre_non_finite: load(&lanes.pre_non_finite),
            pre_low: load(&lanes.pre_low),
            pre_high: load(&lanes.pre_high),
            post_low: load(&lanes.post_low),
            post_high: load(&lanes.post_high),
            peak: load(&lanes.peak),
        }
    }

    #[inline(always)]
    unsafe fn store<const L: usize>(&self, lanes: &mut Lanes<L>) {
        // SAFETY: as in `load`.
        let store = |lane: &mut [f32; L], v| unsafe { V::store(lane.as_mut_ptr(), v) };
        store(&mut lanes.pre_sum, self.pre_sum);
        store(&mut lanes.pre_square, self.pre_square);
        store(&mut lanes.post_sum, self.post_sum);
        store(&mut lanes.post_square, self.post_square);
        store(&mut lanes.slope, self.slope);
        store(&mut lanes.pre_non_finite, self.pre_non_finite);
        store(&mut lanes.pre_low, self.pre_low);
        store(&mut lanes.pre_high, self.pre_high);
        store(&mut lanes.post_low, self.post_low);
        store(&mut lanes.post_high, self.post_high);
        store(&mut lanes.peak, self.peak);
    }

    /// Whether every running sum of z and of a is finite.
    #[inline(always)]
    unsafe fn finite(&self) -> bool {
        unsafe { V::all_finite(V::add(V::mul(self.pre_sum, V::splat(0.0)), V::mul(self.post_sum, V::splat(0.0)))) }
    }

    /// Adds the first `n` lanes of z, a and the slopes; the others must be 0 (so they add nothing to a sum).
    /// Unless `CHECKED`, every value must be finite, and the peak is left to the caller.
    #[inline(always)]
    unsafe fn add<const CHECKED: bool>(&mut self, z: V::V, a: V::V, slope: V::V, n: usize) {
        unsafe {
            self.slope = V::add(self.slope, slope);
            self.add_but_slope::<CHECKED>(z, a, n);
        }
    }

    /// [`Running::add`] but the slope, which the caller adds.
    #[inline(always)]
    unsafe fn add_but_slope<const CHECKED: bool>(&mut self, z: V::V, a: V::V, n: usize) {
        unsafe {
            self.pre_sum = V::add(self.pre_sum, z);
            self.pre_square = V::fmadd(z, z, self.pre_square);
            self.post_sum = V::add(self.post_sum, a);
            self.post_square = V::fmadd(a, a, self.post_square);
            let (mut z_ranged, mut a_ranged, mut a) = (z, a, a);
            if CHECKED {
                let ((finite_z, z_not_finite), (finite_a, _)) = (V::finite_or_nan(z), V::finite_or_nan(a));
                self.pre_non_finite = V::add(self.pre_non_finite, z_not_finite);
                (z_ranged, a_ranged) = (finite_z, finite_a);
            }
            if n < V::L {
                // Lanes past the end range over NaN, which a comparison never takes.
                (z_ranged, a_ranged, a) = (
                    V::keep_first(n, z_ranged, f32::NAN),
                    V::keep_first(n, a_ranged, f32::NAN),
                    V::keep_first(n, a, f32::NAN),
                );
            }
            self.pre_low = V::min(z_ranged, self.pre_low);
            self.pre_high = V::max(z_ranged, self.pre_high);
            self.post_low = V::min(a_ranged, self.post_low);
            self.post_high = V::max(a_ranged, self.post_high);
            if CHECKED {
                self.peak = V::max(a, self.peak);
            }
        }
    }
}

impl<V: Vector> Clone for Running<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V: Vector> Copy for Running<V> {}

impl Slope {
    /// f′ lane by lane (not for [`Slope::Other`]).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn vector<V: Vector>(self, z: V::V, a: V::V) -> V::V {
        unsafe {
            match self {
                Slope::Step { below } => V::where_positive(z, V::splat(1.0), V::splat(below)),
                Slope::Elu { alpha } => V::where_positive(z, V::splat(1.0), V::add(a, V::splat(alpha))),
                Slope::Logistic => V::sub(a, V::mul(a, a)),
                Slope::Tanh => V::sub(V::splat(1.0), V::mul(a, a)),
                Slope::One | Slope::Other(_) => V::splat(1.0),
            }
        }
    }
}
