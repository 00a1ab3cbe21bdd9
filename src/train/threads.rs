//! The compute threads: burn's CPU kernels run on a rayon pool of named threads, optionally at a lower
//! priority than the window's.

use crate::train::error::TrainError;

/// How the compute threads are scheduled against the rest of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputePriority {
    /// The operating system's default (headless training and benchmarks).
    #[default]
    Normal,
    /// Slightly below the window's threads (nice +5 on Linux), so painting a frame never waits behind a
    /// training step; training still gets every cycle the window does not use.
    Background,
}

/// Niceness of [`ComputePriority::Background`] threads.
pub const BACKGROUND_NICE: i32 = 5;

/// At most this many compute threads per core: beyond a few, more threads only add switching (and thousands of
/// them take minutes to start).
pub const MAX_THREADS_PER_CORE: usize = 4;

/// Checks a `--threads` value against this machine's cores: 1 to [`MAX_THREADS_PER_CORE`] per core.
pub fn check_threads(threads: Option<usize>) -> Result<(), TrainError> {
    let Some(threads) = threads else { return Ok(()) };
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let most = cores * MAX_THREADS_PER_CORE;
    if (1..=most).contains(&threads) { Ok(()) } else { Err(TrainError::Threads { threads, cores, most }) }
}

/// Runs `work` with burn's CPU kernels limited to `threads` compute threads (`None`: rayon's default, which
/// honours `RAYON_NUM_THREADS`). The pool's threads are named `convscope-compute-N`.
pub fn with_compute_threads<T: Send>(
    threads: Option<usize>,
    priority: ComputePriority,
    work: impl FnOnce() -> T + Send,
) -> std::io::Result<T> {
    check_threads(threads).map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error.to_string()))?;
    let mut builder = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .thread_name(|i| format!("convscope-compute-{i}"));
    if priority == ComputePriority::Background {
        builder = builder.start_handler(|_| lower_current_thread_priority());
    }
    let pool = builder.build().map_err(std::io::Error::other)?;
    Ok(pool.install(work))
}

/// Raises the calling thread's niceness to [`BACKGROUND_NICE`] (Linux applies it to this thread alone and
/// needs no privilege to lower a priority). Elsewhere, and if refused, the thread keeps its priority.
fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE).ok();
}
