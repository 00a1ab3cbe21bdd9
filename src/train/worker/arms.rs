//! Arm B of an A/B comparison on the worker: a fork of the running driver that steps right after it, so both
//! arms see the same batches, and reports through [`WorkerEvent::ArmB`]. Closing A makes B the run.

use crate::config::Setting;
use crate::diagnose::Hint;
use crate::protocol::{Arm, Command, WorkerEvent};
use crate::snapshot::MetricRow;
use crate::train::driver::{Driven, Driver, Evaluation};
use crate::train::error::{TrainError, catch_panic};

use super::{PROBE_THUMBNAILS, Refused, Worker};

/// Where an arm B forked from a past step stands.
pub(super) enum Behind {
    /// Repeating arm A's steps, silently, up to the fork's step `to`; then `changes` make it arm B.
    RunningUp {
        /// The fork's step.
        to: u64,
        /// A's live changes after the copy it started from, by the step before which each took effect.
        replayed: Vec<(u64, Setting)>,
        /// Arm B's changes, made at `to`.
        changes: Vec<Setting>,
    },
    /// Born at the fork's step, and behind arm A: it steps alone while training runs, A waiting.
    CatchingUp,
}

/// The second arm: its driver, its rows since the last flush, and its hints.
pub(super) struct ArmB {
    pub(super) driver: Driver,
    rows: Vec<MetricRow>,
    /// The hints last sent, and whether rows arrived since they were computed.
    hints: (Vec<Hint>, bool),
    /// Forked from a past step, and not yet at arm A's step (`None`: in lockstep with A).
    pub(super) behind: Option<Behind>,
}

impl ArmB {
    pub(super) fn new(driver: Driver, behind: Option<Behind>) -> ArmB {
        ArmB { driver, rows: Vec::new(), hints: (Vec::new(), false), behind }
    }

    /// Whether the window knows this arm (one forked from a past step is announced at that step).
    fn announced(&self) -> bool {
        !matches!(self.behind, Some(Behind::RunningUp { .. }))
    }

    /// Arm B's trainer, for what both arms share (the probe).
    pub(super) fn trainer_mut(&mut self) -> &mut crate::train::Trainer {
        self.driver.trainer_mut()
    }
}

fn arm_b(event: WorkerEvent) -> WorkerEvent {
    WorkerEvent::ArmB(Box::new(event))
}

impl Worker {
    /// Forks the running net into arm B with `changes` (replacing an arm B that exists) and announces it.
    pub(super) fn fork(&mut self, changes: &[Setting]) -> Result<(), Refused> {
        let driver = self.driver.as_ref().ok_or(TrainError::NoNet)?;
        let mut fork = driver.fork(changes)?;
        // Evaluated exactly when arm A is (`step_arm_b`), so the verdict compares the same steps.
        fork.set_evaluation(Evaluation::Never);
        // A's rows up to the fork go out first: B's start after them.
        self.flush();
        self.send(arm_b(WorkerEvent::Started(Box::new(fork.trainer().run_info(PROBE_THUMBNAILS)))));
        self.arm_b = Some(ArmB::new(fork, None));
        self.refresh_arm_b();
        Ok(())
    }

    /// Forks now, or — while new data is loading — once the net built on it is running (a preset opened with
    /// `--data` starts as an A/B run on that data, not on the net it replaces).
    pub(super) fn fork_or_defer(&mut self, changes: &[Setting]) -> Result<(), Refused> {
        let loading_data = self.load.as_ref().is_some_and(|load| matches!(load.command, Command::LoadData { .. }));
        if loading_data {
            self.fork_after_load = Some(changes.to_vec());
            return Ok(());
        }
        self.fork(changes)
    }

    /// The fork that waited for a data load, on whatever net runs after it (the new one, or the old one when the
    /// data could not be used); a failure is told, not fatal.
    pub(super) fn fork_after_load(&mut self) {
        let Some(changes) = self.fork_after_load.take() else { return };
        if let Err(error) = self.fork(&changes) {
            let step = self.driver.as_ref().map_or(0, |d| d.trainer().step_count());
            self.send(WorkerEvent::Warning { step, message: format!("could not fork arm B: {error}") });
        }
    }

    /// Changes a live setting of arm B.
    pub(super) fn change_arm_b(&mut self, setting: &Setting) -> Result<(), Refused> {
        let arm = self.arm_b.as_mut().ok_or(Refused::NoArmB)?;
        arm.driver.change(setting)?;
        arm.hints.1 = true;
        Ok(())
    }

    /// Closes `arm`: B is dropped; closing A makes B's driver the run's.
    pub(super) fn close_arm(&mut self, arm: Arm) -> Result<(), Refused> {
        if !self.arm_b.as_ref().is_some_and(ArmB::announced) {
            return Err(Refused::NoArmB);
        }
        // Both arms' rows go out before the close.
        self.flush();
        let Some(b) = self.arm_b.take() else { return Err(Refused::NoArmB) };
        if arm == Arm::A {
            self.rewind.restart(&b.driver);
            self.driver = Some(b.driver);
            self.hints = b.hints;
        }
        self.send(WorkerEvent::ArmClosed(arm));
        Ok(())
    }

    /// Ends an A/B comparison because arm A's net was replaced (reset, new data, a checkpoint opened).
    pub(super) fn drop_arm_b(&mut self) {
        if self.arm_b.take().is_some_and(|arm| arm.announced()) {
            self.send(WorkerEvent::ArmClosed(Arm::B));
        }
    }

    /// Runs arm B's step after A's attempt (with a snapshot when A took one, evaluated when A was); pauses both
    /// when B diverges or fails.
    pub(super) fn step_arm_b(&mut self, capture: bool, evaluate: bool) {
        let Some(arm) = self.arm_b.as_mut() else { return };
        let attempted = arm.driver.trainer().step_count() + 1;
        match arm.driver.step(capture) {
            Ok(Driven::Updated { mut row, snapshot, mut warnings }) => {
                if evaluate {
                    match arm.driver.evaluate() {
                        Ok(accuracy) => {
                            (row.test_accuracy, row.test_step) = (accuracy, row.step);
                            row.test_regression = arm.driver.trainer().test_regression();
                        }
                        Err(error) => warnings.push(format!("evaluating the test split failed: {error}")),
                    }
                }
                let evaluation = if evaluate { arm.driver.trainer().evaluation_events() } else { Vec::new() };
                arm.rows.push(row);
                arm.hints.1 = true;
                for message in warnings {
                    self.send(arm_b(WorkerEvent::Warning { step: attempted, message }));
                }
                if !evaluation.is_empty() {
                    self.flush_arm_b();
                    evaluation.into_iter().for_each(|event| self.send(arm_b(event)));
                }
                if let Some(snapshot) = snapshot {
                    self.flush_arm_b();
                    self.send(arm_b(WorkerEvent::Snapshot(snapshot)));
                }
            }
            Ok(Driven::Diverged { step, message }) => {
                self.steps_left = 0;
                self.flush();
                self.send(arm_b(WorkerEvent::Diverged { step, message }));
                self.set_running(false);
            }
            Err(error) => {
                self.steps_left = 0;
                self.flush();
                let message = format!("{error}; arm B's weights are as before the step; training paused");
                self.send(arm_b(WorkerEvent::Failed { step: attempted, message }));
                self.set_running(false);
            }
        }
    }

    /// Sends arm B's batched rows and changed hints (part of every flush).
    pub(super) fn flush_arm_b(&mut self) {
        let Some(mut arm) = self.arm_b.take() else { return };
        let rows = std::mem::take(&mut arm.rows);
        if !rows.is_empty() {
            self.send(arm_b(WorkerEvent::Metrics(rows)));
        }
        if arm.hints.1 {
            let hints = arm.driver.hints();
            if hints != arm.hints.0 {
                self.send(arm_b(WorkerEvent::Hints(hints.clone())));
            }
            arm.hints = (hints, false);
        }
        self.arm_b = Some(arm);
    }

    /// Sends a snapshot of arm B as it is now (after the fork, or a change while paused).
    pub(super) fn refresh_arm_b(&mut self) {
        let Some(arm) = self.arm_b.as_ref().filter(|arm| arm.announced()) else { return };
        let event = match catch_panic("taking a snapshot", || arm.driver.trainer().refresh_snapshot()) {
            Ok(snapshot) => WorkerEvent::Snapshot(Box::new(snapshot)),
            Err(error) => WorkerEvent::Failed { step: arm.driver.trainer().step_count(), message: error.to_string() },
        };
        self.send(arm_b(event));
    }
}
