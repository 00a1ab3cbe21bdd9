//! `convscope timelapse RUN`: a recorded run's filters and weight gradients as an animated GIF (or APNG).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;
use clap::Args;

use crate::cli::failure::Failure;
use crate::history::history_path;
use crate::timelapse::{Animation, RecordedTimelapse, TimelapseError, timelapse_of_history};

/// Options of `convscope timelapse`.
#[derive(Debug, Args)]
pub struct TimelapseArgs {
    /// A run folder (a `train --out` folder or a window run's) or its history.bin.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// The conv layer to show [default: the first].
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// Use every K-th recorded snapshot.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub every: u64,
    /// Frames per second.
    #[arg(long, value_name = "FPS", default_value_t = 10.0)]
    pub fps: f64,
    /// The file to write: a GIF, or an animated PNG when the name ends in .png or .apng.
    #[arg(long, value_name = "FILE", default_value = "timelapse.gif")]
    pub out: PathBuf,
}

/// Writes the timelapse and prints what it wrote.
pub fn run_timelapse(args: &TimelapseArgs) -> Result<(), Failure> {
    if !(args.fps.is_finite() && (0.5..=100.0).contains(&args.fps)) {
        return Err(Failure::bad_input(anyhow!("--fps {} must be between 0.5 and 100", args.fps)));
    }
    let path = history_path(&args.run);
    let started = Instant::now();
    let delay = (100.0 / args.fps).round().clamp(1.0, 65_535.0) as u16;
    let every = usize::try_from(args.every).unwrap_or(usize::MAX);
    let animation = Animation::for_path(&args.out);
    let made = timelapse_of_history(&path, args.layer.as_deref(), (every, delay), animation).map_err(|e| match e {
        TimelapseError::History(_) | TimelapseError::NoConvLayer(_) => Failure::bad_input(e),
        other => Failure::bad_input(anyhow!("{}: {other}", path.display())),
    })?;
    if let Some(torn) = &made.torn {
        eprintln!("convscope: {} ends in {torn}; the records before it are used", path.display());
    }
    let RecordedTimelapse { bytes, layer, frames, .. } = made;
    crate::export::write_file(&args.out, &bytes).map_err(Failure::bad_input)?;
    println!(
        "{{\"out\":{},\"frames_available\":{frames},\"layer\":{},\"bytes\":{},\"encode_secs\":{:.3}}}",
        serde_json::to_string(&args.out.display().to_string()).map_err(Failure::internal)?,
        serde_json::to_string(&layer).map_err(Failure::internal)?,
        bytes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
