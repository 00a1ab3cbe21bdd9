//! The one training driver every front end runs: the window's worker thread, `convscope train` and
//! `convscope bench`. It owns a [`Trainer`] and decides, in one place, when the test split is evaluated,
//! how a panic or a failure after the update is reported (once), and what the diagnosis rules say.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{BackendKind, Setting, TrainConfig};
use crate::data::DataSplit;
use crate::diagnose::{self, HINT_WINDOW, Hint};
use crate::snapshot::{MetricRow, Snapshot};
use crate::train::checkpoint::Checkpoint;
use crate::train::error::{TrainError, catch_panic};
use crate::train::step::StepOutcome;
use crate::train::trainer::Trainer;

/// The worker evaluates the test split at most once per this many seconds of training per second of
/// evaluation (so evaluation costs at most ≈ 4 % of the time), and no more often than `test_every` steps.
pub const EVAL_TIME_BUDGET_FACTOR: f64 = 25.0;

/// When the test split is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// Exactly every `test_every` steps (reproducible rows for `metrics.csv`).
    EveryTestEvery,
    /// Every `test_every` steps, but only when the time budget allows ([`EVAL_TIME_BUDGET_FACTOR`]): the
    /// window's pace.
    Budgeted,
    /// Only when asked ([`Driver::evaluate`]).
    Never,
}

/// What one driven step produced.
#[derive(Debug)]
pub enum Driven {
    /// The weights were updated.
    Updated {
        /// The step's metric row (its test accuracy is fresh when an evaluation was due).
        row: MetricRow,
        /// The snapshot, when one was asked for.
        snapshot: Option<Box<Snapshot>>,
        /// Failures after the update that were not reported before (each distinct message once).
        warnings: Vec<String>,
    },
    /// The update was skipped: the loss or a gradient was not finite, or the loss exploded.
    Diverged {
        /// The step that was attempted.
        step: u64,
        /// What happened and what to try.
        message: String,
    },
}

/// A [`Trainer`] with its evaluation schedule, its recent history and what it has reported.
pub struct Driver {
    trainer: Trainer,
    evaluation: Evaluation,
    /// Evaluate after this step too (the last step of a headless run).
    final_step: Option<u64>,
    /// Step and training seconds at the last evaluation, and how long it took.
    last_eval: (u64, f64, f64),
    /// The rows the diagnosis rules read (two of their windows).
    recent: VecDeque<MetricRow>,
    /// Warnings already reported, so a failure that repeats every step is said once.
    reported: HashSet<String>,
}

impl Driver {
    /// Builds the net for `data` from `config` on `backend` and evaluates it once (the first evaluation pays
    /// one-off warm-up costs, so the budget starts after it).
    pub fn new(
        config: TrainConfig,
        data: Arc<DataSplit>,
        backend: BackendKind,
        evaluation: Evaluation,
    ) -> Result<Driver, TrainError> {
        let trainer = catch_panic("building the net", || {
            let mut trainer = Trainer::new(config, data, backend)?;
            if evaluation != Evaluation::Never {
                trainer.evaluate()?;
            }
            Ok(trainer)
        })?;
        Ok(Driver::around(trainer, evaluation))
    }

    /// Continues `checkpoint` exactly where it stopped, on `data`, with `config` (its own, or with changed live
    /// settings); see [`Trainer::resume`]. The test accuracy it had stays until the next evaluation is due.
    pub fn resume(
        checkpoint: Checkpoint,
        config: TrainConfig,
        data: Arc<DataSplit>,
        backend: BackendKind,
        evaluation: Evaluation,
    ) -> Result<Driver, TrainError> {
        let trainer = catch_panic("resuming the net", || {
            let mut trainer = Trainer::resume(checkpoint, config, data, backend)?;
            if evaluation != Evaluation::Never && trainer.test_accuracy().is_nan() {
                trainer.evaluate()?;
            }
            Ok(trainer)
        })?;
        let mut driver = Driver::around(trainer, evaluation);
        driver.last_eval.0 = driver.trainer.test_step();
        Ok(driver)
    }

    fn around(trainer: Trainer, evaluation: Evaluation) -> Driver {
        Driver {
            trainer,
            evaluation,
            final_step: None,
            last_eval: (0, 0.0, 0.0),
            recent: VecDeque::with_capacity(2 * HINT_WINDOW),
            reported: HashSet::new(),
        }
    }

    /// Arm B of an A/B comparison: an exact copy of this driver (trainer, evaluation schedule, recent rows,
    /// what was reported) with `changes` applied from its next step on. With no changes, the two go on bit for
    /// bit alike on the same batches; a change that is refused leaves no fork behind.
    pub fn fork(&self, changes: &[Setting]) -> Result<Driver, TrainError> {
        let mut fork = Driver {
            trainer: catch_panic("forking the net", || self.trainer.fork())?,
            evaluation: self.evaluation,
            final_step: self.final_step,
            last_eval: self.last_eval,
            recent: self.recent.clone(),
            reported: self.reported.clone(),
        };
        for change in changes {
            fork.change(change)?;
        }
        Ok(fork)
    }

    /// Changes when the test split is evaluated from now on.
    pub fn set_evaluation(&mut self, evaluation: Evaluation) {
        self.evaluation = evaluation;
    }

    /// The trainer.
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// The trainer, for changes between steps.
    pub fn trainer_mut(&mut self) -> &mut Trainer {
        &mut self.trainer
    }

    /// Also evaluate right after step `step` (a headless run's last).
    pub fn evaluate_after(&mut self, step: u64) {
        self.final_step = Some(step);
    }

    /// Runs one step (with a snapshot when `capture`), then evaluates the test split when due. A panic
    /// inside the step becomes [`TrainError::Panicked`]; the weights are then as before the step.
    pub fn step(&mut self, capture: bool) -> Result<Driven, TrainError> {
        match catch_panic("the step", || self.trainer.step(capture))? {
            StepOutcome::Diverged { step, message } => Ok(Driven::Diverged { step, message }),
            StepOutcome::Updated { mut row, snapshot, warnings } => {
                let mut warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
                if self.evaluation_due() {
                    match self.evaluate() {
                        Ok(accuracy) => {
                            (row.test_accuracy, row.test_step) = (accuracy, row.step);
                            row.test_regression = self.trainer.test_regression();
                        }
                        Err(error) => warnings.push(format!(
                            "evaluating the test split failed: {error}; the test accuracy shown is from step {}",
                            self.last_eval.0
                        )),
                    }
                }
                warnings.retain(|w| self.reported.insert(w.clone()));
                if self.recent.len() == 2 * HINT_WINDOW {
                    self.recent.pop_front();
                }
                self.recent.push_back(row.clone());
                Ok(Driven::Updated { row, snapshot, warnings })
            }
        }
    }

    fn evaluation_due(&self) -> bool {
        let step = self.trainer.step_count();
        if self.final_step == Some(step) {
            return true;
        }
        let test_every = self.trainer.config().test_every;
        let (at_step, at_secs, took) = self.last_eval;
        let steps_due = test_every > 0 && step >= at_step + test_every;
        match self.evaluation {
            Evaluation::Never => false,
            Evaluation::EveryTestEvery => test_every > 0 && step.is_multiple_of(test_every),
            Evaluation::Budgeted => steps_due && self.trainer.step_secs() - at_secs >= EVAL_TIME_BUDGET_FACTOR * took,
        }
    }

    /// Evaluates the whole test split now (a panic becomes an error), and restarts the evaluation budget.
    pub fn evaluate(&mut self) -> Result<f32, TrainError> {
        let started = Instant::now();
        let result = catch_panic("evaluating the test split", || self.trainer.evaluate());
        let trainer = &self.trainer;
        self.last_eval = (trainer.step_count(), trainer.step_secs(), started.elapsed().as_secs_f64());
        result
    }

    /// Applies a live setting from the next step on.
    pub fn change(&mut self, setting: &Setting) -> Result<(), TrainError> {
        self.trainer.change(setting)
    }

    /// Goes back to the last healthy weights, optionally at half the learning rate; returns the step restored.
    pub fn restore(&mut self, halve_lr: bool) -> Result<u64, TrainError> {
        let step = self.trainer.restore_healthy()?;
        // What the rules read came from the weights just thrown away.
        self.recent.clear();
        if halve_lr {
            let lr = self.trainer.config().lr / 2.0;
            self.trainer.change(&Setting::LearningRate(lr))?;
        }
        Ok(step)
    }

    /// What the diagnosis rules make of the recent steps.
    pub fn hints(&mut self) -> Vec<Hint> {
        diagnose::diagnose(self.recent.make_contiguous(), &self.trainer.layer_infos())
    }

    /// Median weight-gradient norm of each layer with weights over the last [`HINT_WINDOW`] steps, with its
    /// name, input to output.
    pub fn recent_grad_norms(&self) -> Vec<(String, f32)> {
        self.trainer
            .model()
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let recent = self.recent.iter().rev().take(HINT_WINDOW);
                (layer.name.clone(), diagnose::median(recent.filter_map(|r| r.grad_norms.get(i).copied()).collect()))
            })
            .collect()
    }

    /// Mean loss over the last (up to) [`HINT_WINDOW`] steps.
    pub fn recent_loss(&self) -> f32 {
        let recent: Vec<f32> = self.recent.iter().rev().take(HINT_WINDOW).map(|r| r.loss).collect();
        recent.iter().sum::<f32>() / recent.len().max(1) as f32
    }
}
