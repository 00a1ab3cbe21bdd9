//! The compute threads: burn's CPU kernels run on a rayon pool of named threads, optionally at a lower
//! priority than the window's.

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

/// Runs `work` with burn's CPU kernels limited to `threads` compute threads (`None`: rayon's default, which
/// honours `RAYON_NUM_THREADS`). The pool's threads are named `convscope-compute-N`.
pub fn with_compute_threads<T: Send>(
    threads: Option<usize>,
    priority: ComputePriority,
    work: impl FnOnce() -> T + Send,
) -> std::io::Result<T> {
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
