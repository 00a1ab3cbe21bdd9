//! When the next snapshot is due: every configured interval, stretched for a big net (or a GPU, where reading
//! activations back stalls the queue) so that taking snapshots costs at most a small, fixed share of training.

use std::time::{Duration, Instant};

use crate::snapshot::SNAPSHOT_BUDGET;

/// However costly snapshots are, the window refreshes at least this often: a net that slow to look at is
/// better seen once a second than not at all.
pub const LONGEST_GAP: Duration = Duration::from_secs(1);

/// Weight of the newest plain step in the running mean of plain step times.
const PLAIN_STEP_WEIGHT: f64 = 0.1;

/// The snapshot clock of one training loop (the worker's, or the benchmark's that stands in for it).
#[derive(Debug, Clone, Default)]
pub struct SnapshotCadence {
    last: Option<Instant>,
    /// What the last snapshot cost: its step's time beyond a plain step's.
    cost: Duration,
    /// Running mean of the time of steps without a snapshot.
    plain_step: Option<Duration>,
}

impl SnapshotCadence {
    /// Whether a snapshot is due, with `interval` the configured time between snapshots.
    pub fn due(&self, interval: Duration) -> bool {
        self.last.is_none_or(|taken| taken.elapsed() >= self.gap(interval))
    }

    /// The time the next snapshot waits after the last one.
    pub fn gap(&self, interval: Duration) -> Duration {
        interval.max(self.cost.div_f64(SNAPSHOT_BUDGET).min(LONGEST_GAP))
    }

    /// What the last snapshot cost: its step's time beyond a plain step's.
    pub fn cost(&self) -> Duration {
        self.cost
    }

    /// Records a finished training step that took `took` (the whole `Trainer::step` call), with or without a
    /// snapshot. A snapshot's cost is what its step took beyond a plain one, so it includes whatever taking
    /// it slows down: the traced forward pass, read-backs, a GPU queue drained early.
    pub fn step_done(&mut self, took: Duration, snapshot: bool) {
        if snapshot {
            self.last = Some(Instant::now());
            // Before any plain step has been timed (the first steps, perhaps compiling GPU kernels) there is
            // nothing to compare with: do not stretch the gap on a guess.
            self.cost = self.plain_step.map_or(Duration::ZERO, |plain| took.saturating_sub(plain));
        } else {
            self.plain_step = Some(match self.plain_step {
                None => took,
                Some(mean) => mean.mul_f64(1.0 - PLAIN_STEP_WEIGHT) + took.mul_f64(PLAIN_STEP_WEIGHT),
            });
        }
    }

    /// Makes the next snapshot due at once and forgets the timings (a new net: show it straight away).
    pub fn restart(&mut self) {
        *self = SnapshotCadence::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_costly_snapshot_stretches_the_gap_to_keep_within_budget() {
        let mut cadence = SnapshotCadence::default();
        let interval = 100 * MS;
        assert!(cadence.due(interval), "the first snapshot is due at once");
        cadence.step_done(60_000 * MS, true);
        assert_eq!(cadence.gap(interval), interval, "no plain step timed yet: a slow first step stretches nothing");
        for _ in 0..5 {
            cadence.step_done(2 * MS, false);
        }
        cadence.step_done(3 * MS, true);
        assert_eq!(cadence.gap(interval), interval, "1 ms beyond a plain step keeps the configured interval");
        assert!(!cadence.due(interval));
        cadence.step_done(7 * MS, true);
        assert_eq!(cadence.gap(interval), 250 * MS, "5 ms beyond a plain step is 2 % of 250 ms");
        cadence.step_done(500 * MS, true);
        assert_eq!(cadence.gap(interval), LONGEST_GAP, "the window still refreshes once a second");
        cadence.restart();
        assert!(cadence.due(interval));
    }
}
