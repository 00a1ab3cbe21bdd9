//! Forking from a past step: copies of arm A kept at steps spread over the whole run (every few steps while it
//! is young, thinned by halving as it grows, within a memory bound), and A's live changes, so that `ForkAt`
//! can rebuild A exactly as it was after any step — from the nearest copy before it, replaying A's changes at
//! the steps they took effect. Arm B runs up to that step silently, is born there (with its changes), and
//! catches up with A while training runs (A waits), so that from then on both arms train in lockstep on the
//! same batches.

use crate::config::Setting;
use crate::protocol::WorkerEvent;
use crate::train::driver::{Driven, Driver, Evaluation};
use crate::train::memory;

use super::arms::{ArmB, Behind};
use super::{PROBE_THUMBNAILS, Refused, Worker};

/// A copy of arm A is kept after every step that is a multiple of this, at first.
const FIRST_EVERY: u64 = 10;
/// At most this many copies (each doubling of the spacing halves them).
const MOST_COPIES: u64 = 24;
/// And at most this much memory for them all (by the net's estimated parameter memory).
const COPIES_MEMORY: u64 = 256 << 20;
/// While catching up, arm B sends a snapshot every this many steps, so its panels move.
const CATCH_UP_SNAPSHOT_EVERY: u64 = 50;

/// Arm A's kept copies and live changes.
pub(super) struct Rewind {
    /// Copies of arm A, oldest first, by the step they were taken after; the first (the net as it started, or
    /// as it was restored) is always kept.
    copies: Vec<(u64, Driver)>,
    /// A copy is taken after every step that is a multiple of this.
    every: u64,
    /// How many copies the memory bound allows.
    most: usize,
    /// A's live changes: the step before which each took effect, and the setting.
    changes: Vec<(u64, Setting)>,
}

impl Default for Rewind {
    fn default() -> Self {
        Rewind { copies: Vec::new(), every: FIRST_EVERY, most: MOST_COPIES as usize, changes: Vec::new() }
    }
}

impl Rewind {
    /// Starts over from `driver` (a new net, a restore, arm B made the run): its state now is the first copy.
    pub(super) fn restart(&mut self, driver: &Driver) {
        let config = driver.trainer().config();
        let each = memory::estimate(driver.trainer().plan(), config.batch_size, config.optimizer).parameters;
        let most = (COPIES_MEMORY / each.max(1)).clamp(2, MOST_COPIES) as usize;
        *self = Rewind { most, ..Rewind::default() };
        self.keep(driver);
    }

    /// After arm A's step: keeps a copy when one is due.
    pub(super) fn stepped(&mut self, driver: &Driver) {
        if driver.trainer().step_count().is_multiple_of(self.every) {
            self.keep(driver);
        }
    }

    /// Notes a live change arm A took from step `effective` on.
    pub(super) fn changed(&mut self, effective: u64, setting: &Setting) {
        self.changes.push((effective, *setting));
    }

    fn keep(&mut self, driver: &Driver) {
        // A copy that cannot be made only means a fork from before it goes back further.
        let Ok(copy) = driver.fork(&[]) else { return };
        self.copies.push((driver.trainer().step_count(), copy));
        while self.copies.len() > self.most {
            self.every = self.every.saturating_mul(2);
            let (first, every) = (self.copies[0].0, self.every);
            self.copies.retain(|(step, _)| *step == first || step.is_multiple_of(every));
        }
    }

    /// Arm A as it was at the nearest copy at or before `step`, with A's changes from there on.
    fn copy_before(&self, step: u64) -> Result<(Driver, Vec<(u64, Setting)>), Refused> {
        let oldest = self.copies.first().map_or(0, |(s, _)| *s);
        let (from, nearest) =
            self.copies.iter().rev().find(|(s, _)| *s <= step).ok_or(Refused::NotKept { step, oldest })?;
        let copy = nearest.fork(&[])?;
        let replayed = self.changes.iter().filter(|(at, _)| at > from).cloned().collect();
        Ok((copy, replayed))
    }
}

impl Worker {
    /// Forks arm A as it was after step `step` into arm B with `changes` (replacing an arm B that exists). At
    /// A's own step this is a plain fork; before it, B runs up to `step` and catches up from there.
    pub(super) fn fork_at(&mut self, step: u64, changes: &[Setting]) -> Result<(), Refused> {
        let now = self.step_count();
        if step >= now {
            return if step == now { self.fork(changes) } else { Err(Refused::AheadOfRun { step, now }) };
        }
        let (mut copy, replayed) = self.rewind.copy_before(step)?;
        copy.set_evaluation(Evaluation::Never);
        self.drop_arm_b();
        let behind = Behind::RunningUp { to: step, replayed, changes: changes.to_vec() };
        self.arm_b = Some(ArmB::new(copy, Some(behind)));
        Ok(())
    }

    /// Whether arm B is still repeating A's steps up to its fork's step (the worker keeps stepping for it even
    /// while paused).
    pub(super) fn arm_b_running_up(&self) -> bool {
        self.arm_b.as_ref().is_some_and(|arm| matches!(arm.behind, Some(Behind::RunningUp { .. })))
    }

    /// Steps arm B on its own while it is behind arm A: up to its fork's step always, and from there up to A's
    /// step while training runs. Returns whether it took a step (A then waits for its turn).
    pub(super) fn step_arm_b_alone(&mut self) -> bool {
        let now = self.step_count();
        let Some(arm) = self.arm_b.as_mut() else { return false };
        let at = arm.driver.trainer().step_count();
        match &mut arm.behind {
            None => false,
            Some(Behind::RunningUp { to, replayed, .. }) if at < *to => {
                // A's changes that took effect before this step (or, at the fork's step, while A stood there).
                let due: Vec<Setting> =
                    replayed.iter().filter(|(effective, _)| *effective == at + 1).map(|(_, s)| *s).collect();
                let stepped = due.iter().try_for_each(|setting| arm.driver.change(setting)).and_then(|()| {
                    arm.driver.step(false).map(|driven| match driven {
                        Driven::Updated { .. } => None,
                        Driven::Diverged { message, .. } => Some(message),
                    })
                });
                let failed = match stepped {
                    Ok(diverged) => diverged,
                    Err(error) => Some(error.to_string()),
                };
                if let Some(error) = failed {
                    self.abandon_fork(&format!("repeating arm A's step {} failed: {error}", at + 1));
                }
                true
            }
            Some(Behind::RunningUp { .. }) => {
                self.give_birth_to_arm_b(now);
                true
            }
            Some(Behind::CatchingUp) if at >= now => {
                arm.behind = None;
                // From here on B is evaluated exactly when A is.
                arm.driver.set_evaluation(Evaluation::Never);
                false
            }
            Some(Behind::CatchingUp) => {
                let capture = at + 1 == now || (at + 1).is_multiple_of(CATCH_UP_SNAPSHOT_EVERY);
                self.step_arm_b(capture, false);
                if self.last_flush.elapsed() >= super::METRICS_FLUSH_INTERVAL {
                    self.flush();
                }
                true
            }
        }
    }

    /// Arm B reached its fork's step: its changes are made there, and the window meets it.
    fn give_birth_to_arm_b(&mut self, now: u64) {
        let Some(arm) = self.arm_b.as_mut() else { return };
        let Some(Behind::RunningUp { to, replayed, changes }) = arm.behind.take() else { return };
        // A's changes made while it stood at the fork's step belong to A as it was there.
        let made = replayed
            .iter()
            .filter(|(effective, _)| *effective == to + 1)
            .map(|(_, setting)| setting)
            .chain(&changes)
            .try_for_each(|setting| arm.driver.change(setting));
        if let Err(error) = made {
            return self.abandon_fork(&format!("arm B's changes at step {to} were refused: {error}"));
        }
        arm.driver.set_evaluation(Evaluation::Budgeted);
        arm.behind = Some(Behind::CatchingUp);
        let info = arm.driver.trainer().run_info(PROBE_THUMBNAILS);
        self.flush();
        self.send(WorkerEvent::ArmB(Box::new(WorkerEvent::Started(Box::new(info)))));
        self.refresh_arm_b();
        let text = format!(
            "arm B forked from step {to}: change its settings, then Play — it catches up with A (at step {now}) on \
             the same batches while A waits, and then both train in lockstep"
        );
        self.send(WorkerEvent::Notice(text));
        (self.waker)();
    }

    /// Drops an arm B that could not be rebuilt, saying why.
    fn abandon_fork(&mut self, why: &str) {
        self.arm_b = None;
        let step = self.step_count();
        self.send(WorkerEvent::Warning { step, message: format!("could not fork from a past step: {why}") });
    }
}
