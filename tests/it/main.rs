//! The one integration-test binary: training on the real model and data, the worker's command channel, and
//! the `convscope` command line run as a process.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod attribution;
mod checkpoint;
mod cli;
mod compare;
mod confusion;
mod faults;
mod fork;
mod hints;
mod kernels;
mod layering;
mod optimizer;
mod regression;
mod support;
mod training;
mod ui;
mod window;
mod worker;
