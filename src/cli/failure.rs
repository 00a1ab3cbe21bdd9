//! A failed command: the error with its context, and the exit code it maps to.

/// A failed command: what to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// 1 internal, 2 bad input, 3 diverged, 4 output fault; 130 / 143 stopped by SIGINT / SIGTERM.
    pub code: u8,
    /// The error with its context chain.
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad input: a flag, a spec or a file the user gave (exit 2).
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Failure {
        Failure { code: 2, error: error.into() }
    }

    /// Something inside went wrong (exit 1).
    pub fn internal(error: impl Into<anyhow::Error>) -> Failure {
        Failure { code: 1, error: error.into() }
    }

    /// Training diverged (exit 3).
    pub fn diverged(message: String) -> Failure {
        Failure { code: 3, error: anyhow::anyhow!(message) }
    }

    /// The output could not be written during the run: a full disk, a read-only or vanished folder (exit 4).
    pub fn output(error: impl Into<anyhow::Error>) -> Failure {
        Failure { code: 4, error: error.into() }
    }

    /// Stopped by `signal` (exit 130 / 143); `done` says how far the command got and what it kept.
    pub fn stopped(signal: crate::cli::interrupt::Signal, done: &str) -> Failure {
        Failure { code: signal.exit_code(), error: anyhow::anyhow!("stopped by {} after {done}", signal.name()) }
    }

    /// The message for the terminal: the context chain joined with `: `, leaving out a cause whose text the
    /// message before it already quotes (our errors name their cause in their own words).
    pub fn message(&self) -> String {
        let mut message = String::new();
        for cause in self.error.chain() {
            let text = cause.to_string();
            if !message.contains(&text) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
        }
        message
    }
}
