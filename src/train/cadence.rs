//! When the next snapshot is due: every configured interval, stretched for a big net so that taking snapshots
//! never costs more than a small, fixed share of training time.

use std::time::{Duration, Instant};

/// The largest share of wall time snapshots may take: after a snapshot that cost `c`, the next waits at
/// least `c / SNAPSHOT_BUDGET`. Small nets never reach it (ref-mnist's ≈ 1 ms every 100 ms is ≈ 1 %); a wide
/// one's bigger activation maps then refresh less often instead of slowing training.
pub const SNAPSHOT_BUDGET: f64 = 0.02;

/// The snapshot clock of one training loop (the worker's, or the benchmark's that stands in for it).
#[derive(Debug, Clone, Default)]
pub struct SnapshotCadence {
    last: Option<Instant>,
    cost: Duration,
}

impl SnapshotCadence {
    /// Whether a snapshot is due, with `interval` the configured time between snapshots.
    pub fn due(&self, interval: Duration) -> bool {
        self.last.is_none_or(|taken| taken.elapsed() >= self.gap(interval))
    }

    /// The time the next snapshot waits after the last one.
    pub fn gap(&self, interval: Duration) -> Duration {
        interval.max(self.cost.div_f64(SNAPSHOT_BUDGET))
    }

    /// Records a snapshot taken just now that cost `cost` on top of its training step.
    pub fn taken(&mut self, cost: Duration) {
        self.last = Some(Instant::now());
        self.cost = cost;
    }

    /// Makes the next snapshot due at once (a new net: show it straight away).
    pub fn restart(&mut self) {
        *self = SnapshotCadence::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_costly_snapshot_stretches_the_gap_to_keep_within_budget() {
        let mut cadence = SnapshotCadence::default();
        let interval = Duration::from_millis(100);
        assert!(cadence.due(interval), "the first snapshot is due at once");
        cadence.taken(Duration::from_millis(1));
        assert_eq!(cadence.gap(interval), interval, "a cheap snapshot keeps the configured interval");
        assert!(!cadence.due(interval));
        cadence.taken(Duration::from_millis(5));
        assert_eq!(cadence.gap(interval), Duration::from_millis(250), "5 ms is 2 % of 250 ms");
        cadence.restart();
        assert!(cadence.due(interval));
    }
}
