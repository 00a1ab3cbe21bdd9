//! The egui window: one struct per panel (each a [`panels::Panel`]), the [`view::TrainingView`] built from
//! the worker's events, and the [`window::ConvscopeApp`] that runs a frame. It talks to the worker only
//! through [`protocol`](crate::protocol) messages behind a [`WorkerLink`](crate::protocol::WorkerLink), and
//! never imports burn, the data layer or the trainer. This file only names the parts.

mod arms;
pub mod banner;
pub mod exporting;
pub mod launch;
pub mod link;
pub mod outbox;
pub mod panels;
pub mod series;
pub mod stored;
pub mod textures;
pub mod timeline;
pub mod timers;
pub mod view;
pub mod window;

pub use launch::{DATA_REPAINT_INTERVAL, Launched, Launcher, Restored, WindowOptions, run_window};
pub use link::FakeWorker;
pub use outbox::Outbox;
pub use timers::FrameStats;
pub use window::{ConvscopeApp, RunOpener, Runs, State};
