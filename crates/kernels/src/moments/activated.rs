//! A layer's activation and its statistics in one step, unit by unit side by side on the threads: each unit's
//! planes are copied aside, activated from the copy into place, then measured (or, where the activations are
//! not to be stored, activated into the aside buffer and measured there). A statistics step no longer keeps
//! a copy of every pre-activation in the autodiff graph (the activation had to write a new tensor), nor reads
//! both back afterwards.

use rayon::prelude::*;

use super::{AddBlock, Examples, Moments, Slope, UnitFigures, unit_figures};
use crate::pointwise::{self, PARALLEL_FROM, Pointwise};

/// Replaces every z in `values` (laid out `[batch, units, height, width]` as `dims` says) by f(z), and measures
/// the pre-activations and activations as [`super::measure`] does with `f.slope()` as f′ — the same figures, to
/// the bit. Units go side by side on the compute threads, each unit's values touched by one thread only; their
/// figures are merged in unit order. (Activating and measuring each plane in turn took two to four times as long
/// on small maps: the measurement read values whose activation had just stored them, masked, and waited for the
/// stores to reach the cache; and the activation was run in place, where the compiler stores only the lanes that
/// change.)
pub fn activate_and_measure(f: Pointwise, dims: [usize; 4], values: &mut [f32]) -> Moments {
    let [batch, units, height, width] = dims;
    if height * width <= 1 || values.len() != batch * units * height * width {
        // Dense layers (measured across units) and slices that do not match.
        let pre = values.to_vec();
        pointwise::forward_into(f, &pre, values);
        return super::measure(dims, &pre, values, f.slope());
    }
    by_units(f, dims, Values(values.as_mut_ptr()), Mode::InPlace)
}

/// The figures [`activate_and_measure`] gives, with `values` left as they are: each unit's activations are
/// computed aside and measured there (a layer whose activations are never stored whole, such as a ReLU run
/// after its max-pool).
pub fn measure_activated(f: Pointwise, dims: [usize; 4], values: &[f32]) -> Moments {
    let [batch, units, height, width] = dims;
    if height * width <= 1 || values.len() != batch * units * height * width {
        let mut post = vec![0.0; values.len()];
        pointwise::forward_into(f, values, &mut post);
        return super::measure(dims, values, &post, f.slope());
    }
    // The pointer is only read through in this mode (`UnitPlanes::plane_values`).
    by_units(f, dims, Values(values.as_ptr().cast_mut()), Mode::Aside)
}

/// The units measured side by side on the compute threads, each unit's values touched by one thread only;
/// their figures merged in unit order. `values_at` holds `dims`' values.
fn by_units(f: Pointwise, dims: [usize; 4], values_at: Values, mode: Mode) -> Moments {
    let [batch, units, height, width] = dims;
    let per_unit = height * width;
    let slope = f.slope();
    let unit = |unit: usize| {
        // The whole `Values` (a closure would take its pointer field alone, which is not `Sync`).
        let base = &values_at;
        let mut planes = UnitPlanes { base, units, unit, per_unit, batch, f, mode, aside: Vec::new() };
        measure_unit(&mut planes, slope)
    };
    let figures: Vec<UnitFigures> = if batch * units * per_unit >= PARALLEL_FROM {
        (0..units).into_par_iter().map(unit).collect()
    } else {
        (0..units).map(unit).collect()
    };
    let mut moments = Moments::empty(units);
    for (index, figures) in figures.into_iter().enumerate() {
        figures.merge_into(&mut moments, index);
    }
    moments
}

/// What a unit's buffer holds while it is measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The pre-activations, copied aside; the planes are activated in place.
    InPlace,
    /// The activations; the planes are only read.
    Aside,
}

/// The layer's values, shared by the units' tasks: each touches only its own unit's planes.
struct Values(*mut f32);

// SAFETY: the tasks touch disjoint planes of the slice behind the pointer, which outlives them.
unsafe impl Sync for Values {}

/// One unit's planes in the layer and its buffer (`[batch, per_unit]`), as `mode` says.
struct UnitPlanes<'a> {
    base: &'a Values,
    units: usize,
    unit: usize,
    per_unit: usize,
    batch: usize,
    f: Pointwise,
    mode: Mode,
    aside: Vec<f32>,
}

impl UnitPlanes<'_> {
    /// Example `example`'s plane of the unit.
    ///
    /// # Safety
    /// `example` is below the batch (the entry point checked that the slice holds every plane); this unit's
    /// planes are this task's alone, no other reference to this plane is alive, and `mode` is `InPlace`.
    unsafe fn plane<'p>(&self, example: usize) -> &'p mut [f32] {
        unsafe {
            std::slice::from_raw_parts_mut(
                self.base.0.add((example * self.units + self.unit) * self.per_unit),
                self.per_unit,
            )
        }
    }

    /// Example `example`'s plane of the unit, read only.
    ///
    /// # Safety
    /// As for `plane`, in either mode.
    unsafe fn plane_values<'p>(&self, example: usize) -> &'p [f32] {
        unsafe {
            std::slice::from_raw_parts(
                self.base.0.add((example * self.units + self.unit) * self.per_unit),
                self.per_unit,
            )
        }
    }

    /// Fills the buffer: in place, copies every plane aside, then activates each from its copy; aside, writes
    /// each plane's activations there. Inlined into the entry point of the caller's instruction set: a call per
    /// plane (an activation's dispatch and its loop's tail, for a few dozen values) cost more than the plane's
    /// measurement.
    #[inline(always)]
    fn activate(&mut self) {
        let (batch, per_unit) = (self.batch, self.per_unit);
        self.aside.clear();
        if self.mode == Mode::Aside {
            return self.activate_aside();
        }
        self.aside.reserve_exact(batch * per_unit);
        for example in 0..batch {
            // SAFETY: as in `plane`; the reference ends with this iteration.
            let plane = unsafe { self.plane(example) };
            self.aside.extend_from_slice(plane);
        }
        self.activate_copied();
    }

    /// [`Self::activate`] with the planes copied a vector at a time: `extend_from_slice` called `memmove` once a
    /// plane, which cost more than copying a 7×7 plane.
    ///
    /// # Safety
    /// The CPU runs `V`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn activate_vectors<V: crate::simd::Vector>(&mut self) {
        let (batch, per_unit) = (self.batch, self.per_unit);
        self.aside.clear();
        if self.mode == Mode::Aside {
            return self.activate_aside();
        }
        self.aside.reserve_exact(batch * per_unit);
        let copies = self.aside.spare_capacity_mut().as_mut_ptr().cast::<f32>();
        for example in 0..batch {
            // SAFETY: as in `plane`; `copies` has room for batch·per_unit values (reserved above); the CPU runs V.
            unsafe { V::copy(self.plane(example).as_ptr(), copies.add(example * per_unit), per_unit) };
        }
        // SAFETY: the first batch·per_unit values were written just above.
        unsafe { self.aside.set_len(batch * per_unit) };
        self.activate_copied();
    }

    /// Activates each plane from its copy in the buffer.
    #[inline(always)]
    fn activate_copied(&mut self) {
        let per_unit = self.per_unit;
        for (example, z) in self.aside.chunks_exact(per_unit).enumerate() {
            // SAFETY: as above.
            pointwise::forward_into_plain(self.f, z, unsafe { self.plane(example) });
        }
    }

    /// Writes each plane's activations into the (empty) buffer, the planes untouched.
    #[inline(always)]
    fn activate_aside(&mut self) {
        let per_unit = self.per_unit;
        let mut aside = std::mem::take(&mut self.aside);
        aside.resize(self.batch * per_unit, 0.0);
        for (example, a) in aside.chunks_exact_mut(per_unit).enumerate() {
            // SAFETY: as in `plane_values`.
            pointwise::forward_into_plain(self.f, unsafe { self.plane_values(example) }, a);
        }
        self.aside = aside;
    }
}

impl Examples for UnitPlanes<'_> {
    #[inline(always)]
    unsafe fn add<W: AddBlock<L>, const L: usize>(
        &mut self,
        held: &mut W::Held,
        example: usize,
        slope: Slope,
    ) -> usize {
        let aside = &self.aside[example * self.per_unit..(example + 1) * self.per_unit];
        // SAFETY: `unit_figures` asks for each example of the batch once, after `activate`; the caller's CPU
        // runs `W`.
        let plane = unsafe { self.plane_values(example) };
        let (pre, post) = if self.mode == Mode::InPlace { (aside, plane) } else { (plane, aside) };
        unsafe { W::add_block(held, pre, post, slope) };
        self.per_unit
    }
}

/// One unit activated and measured, on the widest vectors the CPU runs.
fn measure_unit(planes: &mut UnitPlanes, slope: Slope) -> UnitFigures {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::direct::Isa;
        // SAFETY: each entry point runs only where `runs_here` found its CPU features.
        if Isa::Avx512.runs_here() {
            return unsafe { unit_avx512(planes, slope) };
        }
        if Isa::Avx2.runs_here() {
            return unsafe { unit_avx2(planes, slope) };
        }
    }
    planes.activate();
    // SAFETY: plain code runs anywhere.
    unsafe { unit_figures::<super::Plain, _, 8>((planes.batch, planes.per_unit), planes, slope) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn unit_avx512(planes: &mut UnitPlanes, slope: Slope) -> UnitFigures {
    unsafe { planes.activate_vectors::<crate::simd::Avx512>() };
    unsafe {
        unit_figures::<super::InRegisters<crate::simd::Avx512>, _, 16>((planes.batch, planes.per_unit), planes, slope)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn unit_avx2(planes: &mut UnitPlanes, slope: Slope) -> UnitFigures {
    unsafe { planes.activate_vectors::<crate::simd::Avx2>() };
    unsafe {
        unit_figures::<super::InRegisters<crate::simd::Avx2>, _, 8>((planes.batch, planes.per_unit), planes, slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused pass against activating first and measuring after: the same activations and figures, to the bit,
    /// on one thread and split over units (a layer of 32k values or more), tails and non-finite values included;
    /// and the pass that leaves the values as they are gives the same figures.
    #[test]
    fn activating_while_measuring_changes_nothing() {
        let activations =
            [Pointwise::Relu, Pointwise::LeakyRelu(0.01), Pointwise::Elu(1.0), Pointwise::Sigmoid, Pointwise::Tanh];
        for dims in [[3, 5, 7, 5], [2, 3, 30, 30], [32, 8, 28, 28], [4, 6, 1, 1], [2, 4, 3, 3], [2, 3, 4, 4]] {
            let count = dims.iter().product::<usize>();
            let mut pre: Vec<f32> = (0..count).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 8.0).collect();
            pre[count / 3] = f32::NAN;
            pre[count / 2] = f32::INFINITY;
            for f in activations {
                let mut separate = pre.clone();
                pointwise::forward_in_place(f, &mut separate);
                let expected = super::super::measure(dims, &pre, &separate, f.slope());
                let mut fused = pre.clone();
                let got = activate_and_measure(f, dims, &mut fused);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fused), bits(&separate), "{f:?} {dims:?}: the activations");
                assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{f:?} {dims:?}: the figures");
                assert_eq!(got.measured, count);
                let aside = measure_activated(f, dims, &pre);
                assert_eq!(format!("{aside:?}"), format!("{expected:?}"), "{f:?} {dims:?}: measured aside");
            }
        }
    }
}
