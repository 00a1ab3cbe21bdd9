//! The view's side of an A/B comparison: arm B is a second [`TrainingView`] fed with the events the worker
//! wraps in [`WorkerEvent::ArmB`], started at the fork; commands for B go through the same optimistic
//! request-then-confirm path as A's. Closing A makes B's picture the run's.

use crate::app::view::{Severity, TrainingView};
use crate::diagnose::median;
use crate::protocol::{Arm, Command, WorkerEvent};
use crate::snapshot::MetricRow;

impl TrainingView {
    /// Takes in one of arm B's events.
    pub(crate) fn arm_b_event(&mut self, event: WorkerEvent) {
        if let WorkerEvent::Started(info) = &event {
            let mut b = TrainingView::new(info.config.clone());
            b.run_state = self.run_state;
            // B's net starts at the fork's step (a fork from a past step: there, not at A's step).
            self.fork_step = Some(info.step);
            // A band of an earlier arm B's settings does not describe this one.
            self.seed_runs[1] = None;
            self.arm_b = Some(Box::new(b));
        }
        // What goes wrong in B is told in the run's banner (B's own messages are drawn nowhere).
        match &event {
            WorkerEvent::Failed { message, .. } => self.message(Severity::Error, format!("arm B: {message}")),
            WorkerEvent::Warning { step, message } => {
                self.message(Severity::Warning, format!("arm B, step {step}: {message}"))
            }
            WorkerEvent::Diverged { step, message } => {
                self.message(Severity::Error, format!("arm B diverged at step {step}: {message}"))
            }
            _ => {}
        }
        let fork_step = self.fork_step.unwrap_or(0);
        let generation = self.run_generation;
        if let Some(b) = self.arm_b.as_mut() {
            b.apply(event);
            // B's own count starts at zero after a build; it is the run's step, as its rows say.
            b.step = b.step.max(fork_step);
            // A generation of its own, so caches keyed by it (the smoothed loss) never mistake a new B for the last.
            b.run_generation = b.run_generation.max(1) + (generation << 20) + (fork_step << 1);
        }
    }

    /// An arm was closed: B's view goes, or (A closed) it becomes the run's picture, keeping A's rows up to
    /// the fork as the shared past.
    pub(crate) fn arm_closed(&mut self, arm: Arm) {
        let Some(b) = self.arm_b.take() else { return };
        let fork_step = self.fork_step.take().unwrap_or(0);
        if arm == Arm::B {
            return;
        }
        let b = *b;
        self.rows.retain(|r| r.step <= fork_step);
        self.rows.extend(b.rows);
        // The plots are rebuilt from the kept rows (the newest 20,000: an older past is not drawn again).
        self.series = crate::app::series::RunSeries::default();
        for row in &self.rows {
            self.series.push(row);
        }
        self.layers = b.layers;
        self.config = b.config;
        self.confirmed = b.confirmed;
        self.snapshot = b.snapshot;
        self.snapshot_generation += 1;
        self.hints = b.hints;
        self.diverged = b.diverged;
        self.markers.retain(|m| m.step <= fork_step);
        self.markers.extend(b.markers);
        self.step = self.step.max(b.step);
        self.confirmed_layers = b.confirmed_layers;
        self.confusion = b.confusion;
        self.regression = b.regression;
        self.restored = None;
        // The plots and caches rebuild from the spliced rows.
        self.run_generation += 1;
    }

    /// Arm B's part of [`TrainingView::request`]: a change for B is shown in B at once.
    pub(crate) fn request_arm_b(&mut self, command: &Command) {
        if let (Command::ChangeB(setting), Some(b)) = (command, self.arm_b.as_mut()) {
            b.request(&Command::Change(*setting));
        }
    }

    /// Arm B's part of an answer: B's change confirmed or refused in B's view.
    pub(crate) fn answered_arm_b(&mut self, event: &WorkerEvent) -> bool {
        let Some(b) = self.arm_b.as_deref() else { return false };
        let event = match event {
            WorkerEvent::Applied { command: Command::ChangeB(setting), effective_step } => {
                WorkerEvent::Applied { command: Command::Change(*setting), effective_step: *effective_step }
            }
            WorkerEvent::Rejected { command: Command::ChangeB(setting), reason } => {
                WorkerEvent::Rejected { command: Command::Change(*setting), reason: reason.clone() }
            }
            _ => return false,
        };
        if let WorkerEvent::Rejected { command, reason } = &event {
            let what = command.describe(&b.weighted_names());
            self.message(Severity::Warning, format!("arm B: {what}: {reason}"));
        }
        if let Some(b) = self.arm_b.as_mut() {
            b.apply(event);
            b.messages.clear();
        }
        true
    }
}

/// Steps the verdict's loss and gradient figures are taken over (medians, as the hints take them).
const VERDICT_WINDOW: usize = 50;

impl TrainingView {
    /// What arm B does differently from arm A, e.g. "conv1: sigmoid -> relu", "lr 0.01 -> 0.001" (empty when
    /// nothing differs or there is no arm B).
    pub fn arm_differences(&self) -> Vec<String> {
        let Some(b) = self.arm_b.as_deref() else { return Vec::new() };
        let names = self.weighted_names();
        // Per layer, what differs; the same change in several layers is said once for all of them.
        let mut changes: Vec<(String, Vec<&str>)> = Vec::new();
        for ((name, a), b) in names.iter().zip(self.layer_settings()).zip(b.layer_settings()) {
            let on_off = |on: bool| if on { "on" } else { "off" };
            let layer_changes = [
                (a.activation != b.activation).then(|| format!("{} -> {}", a.activation, b.activation)),
                (a.bias != b.bias).then(|| format!("bias {}", on_off(b.bias))),
                (a.batch_norm != b.batch_norm).then(|| format!("batch-norm {}", on_off(b.batch_norm))),
            ];
            for change in layer_changes.into_iter().flatten() {
                match changes.iter_mut().find(|(c, _)| *c == change) {
                    Some((_, layers)) => layers.push(name),
                    None => changes.push((change, vec![name])),
                }
            }
        }
        let mut differences: Vec<String> = changes
            .into_iter()
            .map(|(change, layers)| match layers.as_slice() {
                [one] => format!("{one}: {change}"),
                [first, .., last] if layers.len() > 2 => format!("{} layers ({first}…{last}): {change}", layers.len()),
                _ => format!("{}: {change}", layers.join(", ")),
            })
            .collect();
        let (ca, cb) = (&self.config, &b.config);
        let number = |name: &str, a: f64, b: f64| (a != b).then(|| format!("{name} {} -> {}", short(a), short(b)));
        differences.extend(number("lr", ca.lr, cb.lr));
        differences.extend(number("momentum", ca.momentum, cb.momentum));
        differences.extend(number("weight decay", ca.weight_decay, cb.weight_decay));
        differences.extend(number("batch", ca.batch_size as f64, cb.batch_size as f64));
        differences.extend(number("clip", ca.grad_clip, cb.grad_clip));
        if ca.optimizer != cb.optimizer {
            differences.push(format!("optimiser {} -> {}", ca.optimizer.name(), cb.optimizer.name()));
        }
        if ca.output != cb.output {
            differences.push(format!("output {} -> {}", ca.output.name(), cb.output.name()));
        }
        if ca.init != cb.init {
            let name = crate::arch::Init::describe;
            differences.push(format!("init {} -> {}", name(ca.init), name(cb.init)));
        }
        differences
    }

    /// One line on how the arms compare at the newest step both have reached: test accuracy, loss and the first
    /// layer's gradient (`None` before B's first step).
    pub fn verdict(&self) -> Option<String> {
        let b = self.arm_b.as_deref()?;
        let step = self.rows.last()?.step.min(b.rows.last()?.step);
        let upto = |rows: &[MetricRow]| -> Vec<MetricRow> {
            rows.iter().filter(|r| r.step <= step).rev().take(VERDICT_WINDOW).cloned().collect()
        };
        let (ra, rb) = (upto(&self.rows), upto(&b.rows));
        let (last_a, last_b) = (ra.first()?, rb.first()?);
        let mut parts = Vec::new();
        if let (Some(a), Some(b)) = (last_a.test_regression, last_b.test_regression) {
            let word = if b.r2 >= a.r2 { "higher" } else { "lower" };
            parts.push(format!("B's test R² is {:.2} {word} ({:.3} against {:.3})", (b.r2 - a.r2).abs(), b.r2, a.r2));
        }
        if last_a.test_accuracy.is_finite() && last_b.test_accuracy.is_finite() {
            let points = 100.0 * (last_b.test_accuracy - last_a.test_accuracy);
            let word = if points >= 0.0 { "higher" } else { "lower" };
            parts.push(format!(
                "B's test accuracy is {:.1} pp {word} ({:.1} % against {:.1} %)",
                points.abs(),
                100.0 * last_b.test_accuracy,
                100.0 * last_a.test_accuracy
            ));
        }
        let loss = |rows: &[MetricRow]| median(rows.iter().map(|r| r.loss).collect());
        parts.push(format!("its loss {} against {}", short(f64::from(loss(&rb))), short(f64::from(loss(&ra)))));
        let first_grad =
            |rows: &[MetricRow]| median(rows.iter().filter_map(|r| r.grad_norms.first().copied()).collect());
        let ratio = first_grad(&rb) / first_grad(&ra);
        if let (Some(name), true) = (self.weighted_names().first(), ratio.is_finite() && ratio > 0.0) {
            let (factor, word) = if ratio >= 1.0 { (ratio, "larger") } else { (1.0 / ratio, "smaller") };
            parts.push(format!("its {name} gradient {}× {word}", short(f64::from(factor))));
        }
        Some(format!("after {step} steps {}", parts.join("; ")))
    }
}

/// A number in few characters: 0.001, 0.12, 31, 2.5e-6.
fn short(value: f64) -> String {
    crate::app::panels::short(value as f32)
}
