//! convscope: train a convolutional network live and watch it learn.
//!
//! Layers depend only downward (ARCHITECTURE.md has the map): [`arch`] (the spec), [`config`] (the run's
//! settings), [`snapshot`] (what the worker sends) and [`protocol`] (the messages) are plain data; [`data`]
//! loads and batches; [`model`] is the burn module; [`train`] runs it through one [`train::Driver`] on a
//! worker thread; [`diagnose`] turns statistics into sentences; [`render`] draws pictures and [`export`]
//! writes them (through [`files`], which reads regular files only and writes whole files and rows); [`history`] records a run's events to replay it and [`timelapse`] turns them into a GIF and [`replay`] plays them back in the window; [`cli`] is the command line; [`app`] is the egui window, which talks to the worker only
//! through [`protocol::Command`] and [`protocol::WorkerEvent`].

pub mod app;
pub mod arch;
pub mod budget;
pub mod cli;
pub mod compare;
pub mod config;
pub mod data;
pub mod diagnose;
pub mod export;
pub mod files;
pub mod history;
pub mod kernels;
pub mod model;
pub mod protocol;
pub mod render;
pub mod replay;
pub mod snapshot;
pub mod task;
pub mod timelapse;
pub mod train;
