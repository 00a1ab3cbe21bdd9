//! Ctrl+C and `kill` during a headless run: the first SIGINT or SIGTERM asks the run to stop after the current
//! step, so it still flushes its rows, writes its images and prints its summary; a second signal at least a
//! second later ends the process at once (one arriving sooner, e.g. a doubled key press, is ignored).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long after the first signal a second one ends the process at once.
pub const FORCE_AFTER: Duration = Duration::from_secs(1);

/// The stop request of one run.
pub struct Interrupt {
    /// The signal that asked to stop (0: none yet).
    signal: Arc<AtomicUsize>,
    /// Set [`FORCE_AFTER`] after the first signal: from then on a signal exits at once.
    armed: Arc<AtomicBool>,
}

impl Interrupt {
    /// Installs the handlers. Where signals cannot be handled, the run simply cannot be stopped gracefully.
    pub fn install() -> Interrupt {
        let interrupt = Interrupt { signal: Arc::new(AtomicUsize::new(0)), armed: Arc::new(AtomicBool::new(false)) };
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGINT, SIGTERM};
            for signal in [SIGINT, SIGTERM] {
                // The shell's convention: 128 + the signal number.
                let code = 128 + signal;
                signal_hook::flag::register_conditional_shutdown(signal, code, interrupt.armed.clone()).ok();
                signal_hook::flag::register_usize(signal, interrupt.signal.clone(), signal as usize).ok();
            }
            // The forced exit is armed a second after the first signal itself, whatever the run is doing then
            // (a long step, the final evaluation), not when the loop next looks.
            if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
                let armed = interrupt.armed.clone();
                let arming = std::thread::Builder::new().name("convscope-signals".into()).spawn(move || {
                    if signals.forever().next().is_some() {
                        std::thread::sleep(FORCE_AFTER);
                        armed.store(true, Ordering::Relaxed);
                    }
                });
                if arming.is_err() {
                    interrupt.armed.store(true, Ordering::Relaxed);
                }
            }
        }
        interrupt
    }

    /// The signal that asked the run to stop, once one has.
    pub fn requested(&self) -> Option<Signal> {
        Signal::from_number(self.signal.load(Ordering::Relaxed))
    }
}

/// A signal that stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl+C.
    Interrupt,
    /// `kill`.
    Terminate,
}

impl Signal {
    fn from_number(number: usize) -> Option<Signal> {
        #[cfg(unix)]
        {
            let number = i32::try_from(number).ok()?;
            if number == signal_hook::consts::SIGINT {
                return Some(Signal::Interrupt);
            }
            if number == signal_hook::consts::SIGTERM {
                return Some(Signal::Terminate);
            }
        }
        let _ = number;
        None
    }

    fn number(self) -> usize {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }

    /// Its name, as the summary reports it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit code a run stopped by it ends with (128 + the signal number, as shells report it).
    pub fn exit_code(self) -> u8 {
        128 + self.number() as u8
    }
}
