//! The `convscope` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use convscope::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    keep_freed_buffers();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message());
            ExitCode::from(failure.code)
        }
    }
}

/// glibc hands freed memory back to the kernel eagerly — large blocks by `munmap`, the free top of each
/// thread's heap by `madvise` — so the next allocation of that size page-faults it in afresh. Two places pay:
/// the software renderer (Mesa's llvmpipe) allocates and frees frame-sized buffers every frame (over 40 % of
/// the UI thread under Xvfb; frame p95 9 -> 6 ms with this), and the compute threads free megabytes of
/// activations every step (a 300-step bench made 310 `madvise` calls with the defaults, none with this;
/// snapshot cost at the window's cadence ~1.9 % -> ~1.0 %, plain training ~4 % faster). Thresholds at
/// glibc's documented maximum (32 MiB for mmap) keep freed memory for reuse. glibc reads them at start-up
/// only, so the process re-executes itself once with them set.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const THRESHOLD: &str = "MALLOC_MMAP_THRESHOLD_";
        if std::env::var_os(THRESHOLD).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let error = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(THRESHOLD, (32 << 20).to_string())
            .env("MALLOC_TRIM_THRESHOLD_", (512 << 20).to_string())
            .exec();
        // Only reached when the re-execution failed: carry on with the default allocator settings.
        eprintln!("convscope: could not restart with tuned allocator settings ({error}); continuing");
    }
}
