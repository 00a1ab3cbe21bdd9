//! The hot pieces of a training step, timed one by one on the reference net (ref-mnist, batch 32, the
//! embedded digits): forward, forward + backward, a whole step (optimiser included) with and without layer
//! statistics, snapshot extraction (tensors → plain data), and colour-mapping a filter grid for export.
//!
//! `cargo bench --bench hot` (set `RAYON_NUM_THREADS=1` for one thread). Whole-run throughput comes from
//! `convscope bench`; this says where a step's time goes.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData};
use convscope::config::{BackendKind, TrainConfig};
use convscope::data::{DataSplit, embedded_mnist};
use convscope::export;
use convscope::render;
use convscope::train::Trainer;
use divan::Bencher;

fn main() {
    divan::main();
}

fn trainer() -> Trainer {
    let data: Arc<DataSplit> = Arc::new(embedded_mnist().expect("the embedded digits parse"));
    let mut trainer =
        Trainer::new(TrainConfig { test_every: 0, ..TrainConfig::default() }, data, BackendKind::Flex).expect("net");
    // Past the first steps' one-off costs.
    for _ in 0..20 {
        trainer.step(false).expect("step");
    }
    trainer
}

/// A batch of 32 images shaped like the digits, on the trainer's device.
fn batch(trainer: &Trainer) -> Tensor<4> {
    let values: Vec<f32> = (0..32 * 28 * 28).map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5).collect();
    let device = trainer.model().layers[0].bias.val().device();
    Tensor::from_data(TensorData::new(values, [32, 1, 28, 28]), &device)
}

#[divan::bench]
fn forward(bencher: Bencher) {
    let trainer = trainer();
    let images = batch(&trainer);
    bencher.bench_local(|| trainer.model().forward(images.clone()).into_data());
}

#[divan::bench]
fn forward_backward(bencher: Bencher) {
    let trainer = trainer();
    let images = batch(&trainer);
    bencher.bench_local(|| {
        let logits = trainer.model().forward(images.clone());
        logits.square().mean().backward()
    });
}

#[divan::bench]
fn training_step(bencher: Bencher) {
    let mut trainer = trainer();
    bencher.bench_local(|| trainer.step(false).expect("step"));
}

#[divan::bench]
fn training_step_with_statistics(bencher: Bencher) {
    let mut trainer = trainer();
    trainer.set_stats_every(1);
    bencher.bench_local(|| trainer.step(false).expect("step"));
}

#[divan::bench]
fn snapshot_extraction(bencher: Bencher) {
    let trainer = trainer();
    bencher.bench_local(|| trainer.refresh_snapshot().expect("snapshot"));
}

#[divan::bench]
fn colour_map_filter_grid(bencher: Bencher) {
    let trainer = trainer();
    let weights = trainer.layer_weights(1).expect("conv2 weights");
    let scale = weights.max_abs();
    bencher.bench_local(|| render::filter_grid(&weights, scale, export::EXPORT_PIXELS_PER_WEIGHT, None).expect("grid"));
}
