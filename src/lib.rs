//! convscope: train a convolutional network live and watch it learn.
//!
//! Layers depend only downward: [`data`] (loading, batching) and [`arch`] (the spec) are plain Rust;
//! [`model`] is the burn module; [`train`] runs it on a worker thread; [`snapshot`] is the plain data the
//! worker sends; [`hints`] turns its statistics into sentences; [`export`] writes images and CSV; [`cli`]
//! holds the headless commands; [`app`] is the egui window, which talks to the worker only through
//! [`train::Command`] and [`train::WorkerEvent`].

pub mod app;
pub mod arch;
pub mod cli;
pub mod colormap;
pub mod data;
pub mod export;
pub mod hints;
pub mod kernels;
pub mod model;
pub mod snapshot;
pub mod train;
