//! A/B forks on the real model and data: arm B is an exact copy of arm A at the fork, stays bit-identical
//! when nothing is changed, trains on the very same batches, and differs from the first step after a change.

use convscope::arch::Activation;
use convscope::config::{BackendKind, OptimizerKind, Setting, TrainConfig};
use convscope::train::{Driven, Driver, Evaluation};

use crate::support::{config, mnist};

fn driver(config: TrainConfig) -> Driver {
    Driver::new(config, mnist(), BackendKind::Flex, Evaluation::Never).unwrap()
}

fn losses(driver: &mut Driver, steps: usize) -> Vec<f32> {
    (0..steps)
        .map(|_| match driver.step(false).unwrap() {
            Driven::Updated { row, .. } => row.loss,
            Driven::Diverged { message, .. } => panic!("diverged: {message}"),
        })
        .collect()
}

fn weights(driver: &Driver) -> Vec<Vec<f32>> {
    let trainer = driver.trainer();
    (0..trainer.model().layers.len()).map(|i| trainer.layer_weights(i).unwrap().data).collect()
}

/// 200 steps straight against 100, a fork with no change, and 100 more in each arm, alternating as the
/// window's worker does.
fn unchanged_fork_stays_identical(config: TrainConfig) {
    let mut straight = driver(config.clone());
    let all = losses(&mut straight, 200);
    let mut a = driver(config);
    assert_eq!(losses(&mut a, 100), all[..100]);
    let mut b = a.fork(&[]).unwrap();
    assert_eq!(b.trainer().step_count(), 100, "the fork starts at the step it was taken");
    assert_eq!(weights(&b), weights(&a), "at the fork both arms hold the same weights");
    let (mut after_a, mut after_b) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        after_a.extend(losses(&mut a, 1));
        after_b.extend(losses(&mut b, 1));
    }
    assert_eq!(after_a, all[100..], "forking leaves arm A's own run untouched");
    assert_eq!(after_b, after_a, "an unchanged fork stays bit-identical");
    assert_eq!(weights(&b), weights(&straight));
    assert_eq!(b.trainer().epoch(), straight.trainer().epoch());
    // Batch-norm's running statistics too: each arm keeps its own, so A's are the straight run's.
    assert_eq!(running_means(&a), running_means(&straight), "arm A's running statistics are its own");
    assert_eq!(running_means(&b), running_means(&straight));
}

fn running_means(driver: &Driver) -> Vec<Vec<f32>> {
    let layers = &driver.trainer().model().layers;
    layers.iter().map(|l| l.norm.running_mean.value().into_data().try_to_vec::<f32>().unwrap()).collect()
}

#[test]
fn an_unchanged_fork_stays_bit_identical_with_momentum_across_an_epoch() {
    // Batches of 64 cross an epoch (125 steps) after the fork: the next order comes from the copied generator.
    unchanged_fork_stays_identical(config(|c| c.batch_size = 64));
}

#[test]
fn an_unchanged_fork_stays_bit_identical_with_adam_batch_norm_and_shifts() {
    unchanged_fork_stays_identical(config(|c| {
        c.optimizer = OptimizerKind::Adam;
        c.lr = 1e-3;
        c.batch_norm = true;
        c.augment_shift = 2;
    }));
}

#[test]
fn both_arms_train_on_the_same_batches_and_a_change_shows_from_its_first_step() {
    let mut a = driver(config(|_| {}));
    losses(&mut a, 20);
    // A new rate changes only the update: the first step after the fork sees the same weights and the same
    // batch in both arms, so its loss is equal bit for bit; the next one is not.
    let mut slower = a.fork(&[Setting::LearningRate(0.001)]).unwrap();
    let mut relu_a = a.fork(&[]).unwrap();
    let hidden = a.trainer().model().layers.len() - 1;
    let to_sigmoid: Vec<Setting> =
        (0..hidden).map(|layer| Setting::Activation { layer, activation: Activation::Sigmoid }).collect();
    let mut sigmoid = a.fork(&to_sigmoid).unwrap();
    assert_eq!(sigmoid.trainer().model().layers[0].settings.activation, Activation::Sigmoid);
    assert_ne!(relu_a.trainer().model().layers[0].settings.activation, Activation::Sigmoid);

    let base = losses(&mut relu_a, 2);
    let slow = losses(&mut slower, 2);
    assert_eq!(slow[0], base[0], "same weights, same batch: the same first loss");
    assert_ne!(slow[1], base[1], "the smaller step shows from the second loss on");
    let sig = losses(&mut sigmoid, 1);
    assert_ne!(sig[0], base[0], "a fork to sigmoid differs from the first step after the fork");
    assert!(sig[0].is_finite());
    assert_eq!(sigmoid.trainer().step_count(), 21, "and counts on from the fork's step");
}

#[test]
fn a_fork_at_step_zero_may_change_the_init_and_later_one_may_not() {
    use convscope::arch::Init;
    let mut a = driver(config(|_| {}));
    let narrow = Init::Normal { std: 0.01 };
    let mut b = a.fork(&[Setting::Init(narrow)]).unwrap();
    // Arm B is the net `--init normal:0.01` builds from the same seed: the same random draws at another scale.
    let mut built = driver(config(|c| c.init = Some(narrow)));
    assert_eq!(weights(&b), weights(&built));
    for (wa, wb) in weights(&a).iter().zip(weights(&b)) {
        let ratio = wb[0] / wa[0];
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
        assert!(wa.iter().zip(&wb).all(|(x, y)| (y - x * ratio).abs() <= 1e-5 * y.abs() + 1e-12));
    }
    // On the same batches: B trains as that net does, and differs from A from its first step.
    let (la, lb) = (losses(&mut a, 5), losses(&mut b, 5));
    assert_eq!(lb, losses(&mut built, 5));
    assert_ne!(la[0], lb[0]);
    // Once the weights have trained, the init is refused, live or in a fork, and nothing changes.
    let error = a.change(&Setting::Init(Init::Xavier)).unwrap_err().to_string();
    assert!(error.contains("step 5") && error.contains("fork at step 0"), "{error}");
    assert!(a.fork(&[Setting::Init(Init::Xavier)]).is_err());
    assert_eq!(a.trainer().config().init, None);
}

#[test]
fn a_refused_change_leaves_no_fork() {
    let a = driver(config(|_| {}));
    let layers = a.trainer().model().layers.len();
    let error = a.fork(&[Setting::Bias { layer: layers + 3, enabled: true }]).err().expect("no such layer");
    assert!(error.to_string().contains("layer"), "{error}");
}

mod worker {
    //! The same through the worker's channel, as the window drives it.

    use std::time::{Duration, Instant};

    use convscope::config::Setting;
    use convscope::protocol::{Arm, Command, RunState, WorkerEvent};
    use convscope::snapshot::MetricRow;
    use convscope::train::{WorkerHandle, WorkerOptions};

    use crate::support::{config, mnist};

    /// Both arms' rows as they arrive.
    #[derive(Default)]
    struct Rows {
        a: Vec<MetricRow>,
        b: Vec<MetricRow>,
    }

    /// Waits for the first event `pick` accepts, collecting both arms' rows on the way.
    fn wait_for<T>(worker: &WorkerHandle, rows: &mut Rows, mut pick: impl FnMut(&WorkerEvent) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Some(event) = worker.recv_timeout(Duration::from_millis(200)) else { continue };
            match &event {
                WorkerEvent::Metrics(batch) => rows.a.extend(batch.iter().cloned()),
                WorkerEvent::ArmB(inner) => match inner.as_ref() {
                    WorkerEvent::Metrics(batch) => rows.b.extend(batch.iter().cloned()),
                    WorkerEvent::Failed { message, .. } => panic!("arm B failed: {message}"),
                    _ => {}
                },
                WorkerEvent::Failed { message, .. } => panic!("worker failed: {message}"),
                _ => {}
            }
            if let Some(found) = pick(&event) {
                return found;
            }
        }
        panic!("timed out waiting for an event");
    }

    fn step_and_wait(worker: &WorkerHandle, rows: &mut Rows, steps: u32, until: u64) {
        assert!(worker.send(Command::Step(steps)));
        wait_for(worker, rows, |e| match e {
            WorkerEvent::State { state: RunState::Paused, step } if *step == until => Some(()),
            _ => None,
        });
    }

    fn answer(worker: &WorkerHandle, rows: &mut Rows, command: Command) -> Result<u64, String> {
        assert!(worker.send(command.clone()));
        wait_for(worker, rows, |e| match e {
            WorkerEvent::Applied { command: c, effective_step } if *c == command => Some(Ok(*effective_step)),
            WorkerEvent::Rejected { command: c, reason } if *c == command => Some(Err(reason.clone())),
            _ => None,
        })
    }

    #[test]
    fn a_fork_asked_for_while_data_loads_is_made_on_the_net_built_for_that_data() {
        let options = WorkerOptions { start_paused: true, threads: Some(1), ..WorkerOptions::default() };
        let worker = WorkerHandle::spawn(config(|_| {}), mnist(), options).unwrap();
        let folder = crate::worker::colour_folder("fork-after-load", 12);
        let request = convscope::protocol::DataRequest::path(folder);
        // As the window's launcher sends them for `--preset … --data …`: the load, then the fork.
        assert!(worker.send(Command::LoadData { request, config: Box::new(config(|_| {})) }));
        assert!(worker.send(Command::Fork(Vec::new())));
        let mut rows = Rows::default();
        let (mut a_input, mut b_input) = (None, None);
        wait_for(&worker, &mut rows, |e| {
            match e {
                WorkerEvent::Started(info) if info.input.channels == 3 => a_input = Some(info.input),
                WorkerEvent::ArmB(inner) => {
                    if let WorkerEvent::Started(info) = inner.as_ref() {
                        b_input = Some(info.input);
                    }
                }
                _ => {}
            }
            b_input.map(|_| ())
        });
        assert_eq!(b_input.map(|s| s.channels), Some(3), "arm B was forked from the net on the colour data");
        assert_eq!(a_input, b_input);
    }

    #[test]
    fn a_forked_arm_steps_in_lockstep_on_the_same_batches_and_closing_a_hands_the_run_to_b() {
        let options = WorkerOptions { start_paused: true, threads: Some(1), ..WorkerOptions::default() };
        let worker = WorkerHandle::spawn(config(|_| {}), mnist(), options).unwrap();
        let mut rows = Rows::default();
        let slower = Setting::LearningRate(0.001);
        let refused = answer(&worker, &mut rows, Command::ChangeB(slower)).unwrap_err();
        assert!(refused.contains("no arm B"), "{refused}");
        step_and_wait(&worker, &mut rows, 10, 10);

        assert_eq!(answer(&worker, &mut rows, Command::Fork(Vec::new())), Ok(11));
        step_and_wait(&worker, &mut rows, 20, 30);
        // The flush before the pause event carries B's rows too: they are all here.
        let after_fork: Vec<(u64, f32)> = rows.a.iter().filter(|r| r.step > 10).map(|r| (r.step, r.loss)).collect();
        let b: Vec<(u64, f32)> = rows.b.iter().map(|r| (r.step, r.loss)).collect();
        assert_eq!(b.first().map(|r| r.0), Some(11), "B's rows start after the fork");
        assert_eq!(b, after_fork, "an unchanged fork is bit-identical to A, step for step");

        assert_eq!(answer(&worker, &mut rows, Command::ChangeB(slower)), Ok(31));
        step_and_wait(&worker, &mut rows, 3, 33);
        let at = |rows: &[MetricRow], step: u64| rows.iter().find(|r| r.step == step).map(|r| (r.loss, r.lr)).unwrap();
        assert_eq!(at(&rows.b, 31).0, at(&rows.a, 31).0, "same weights and batch: the same loss at the change");
        assert_ne!(at(&rows.b, 32).0, at(&rows.a, 32).0, "the smaller step shows from the next loss on");
        assert_eq!(at(&rows.b, 32).1, 0.001);

        assert_eq!(answer(&worker, &mut rows, Command::CloseArm(Arm::A)), Ok(34));
        step_and_wait(&worker, &mut rows, 1, 34);
        assert_eq!(at(&rows.a, 34).1, 0.001, "after A closes, the run is B's");
        assert!(answer(&worker, &mut rows, Command::CloseArm(Arm::B)).is_err(), "no arm B is left");
    }

    /// A fork from a past step (a point on the timeline) is the run exactly as it was there: rebuilt from the
    /// nearest kept copy before it, repeating A's steps and A's live change in between, announced at that step,
    /// and caught up with A on the same batches before both step in lockstep.
    #[test]
    fn a_fork_from_a_past_step_is_the_run_as_it_was_there_and_catches_up_on_the_same_batches() {
        let options = WorkerOptions { start_paused: true, threads: Some(1), ..WorkerOptions::default() };
        let worker = WorkerHandle::spawn(config(|_| {}), mnist(), options).unwrap();
        let mut rows = Rows::default();
        step_and_wait(&worker, &mut rows, 12, 12);
        // A live change of A's that a rebuild from before it must repeat at the same step.
        assert_eq!(answer(&worker, &mut rows, Command::Change(Setting::LearningRate(0.02))), Ok(13));
        step_and_wait(&worker, &mut rows, 24, 36);

        let unchanged = Command::ForkAt { step: 17, changes: Vec::new() };
        assert_eq!(answer(&worker, &mut rows, unchanged), Ok(37));
        let born = wait_for(&worker, &mut rows, |e| match e {
            WorkerEvent::ArmB(inner) => match inner.as_ref() {
                WorkerEvent::Started(info) => Some((info.config.lr, info.step)),
                _ => None,
            },
            _ => None,
        });
        assert_eq!(born, (0.02, 17), "B is A as it was at step 17, after A's change at 13");
        assert!(rows.b.is_empty(), "the steps B repeats up to the fork are not sent");
        // One step: B catches up from 18 to 36 first (A waits), then both take step 37.
        step_and_wait(&worker, &mut rows, 1, 37);
        let a: Vec<(u64, f32)> = rows.a.iter().filter(|r| r.step > 17).map(|r| (r.step, r.loss)).collect();
        let b: Vec<(u64, f32)> = rows.b.iter().map(|r| (r.step, r.loss)).collect();
        assert_eq!(b.first().map(|r| r.0), Some(18));
        assert_eq!(b, a, "an unchanged fork from step 17 repeats A's steps 18–37 bit for bit");

        // A changed fork from before A's change: B differs from its first step after the fork, and keeps its rate.
        let slower = Command::ForkAt { step: 5, changes: vec![Setting::LearningRate(0.001)] };
        assert_eq!(answer(&worker, &mut rows, slower), Ok(38));
        rows.b.clear();
        step_and_wait(&worker, &mut rows, 1, 38);
        let at = |rows: &[MetricRow], step: u64| rows.iter().find(|r| r.step == step).map(|r| (r.loss, r.lr)).unwrap();
        assert_eq!(rows.b.first().map(|r| r.step), Some(6));
        assert_eq!(rows.b.last().map(|r| r.step), Some(38));
        assert_eq!(at(&rows.b, 6).0, at(&rows.a, 6).0, "the same weights and batch at step 6");
        assert_ne!(at(&rows.b, 7).0, at(&rows.a, 7).0, "the smaller step shows from the next loss on");
        assert_eq!(at(&rows.b, 20).1, 0.001, "A's later change is A's own");

        let ahead = answer(&worker, &mut rows, Command::ForkAt { step: 500, changes: Vec::new() }).unwrap_err();
        assert!(ahead.contains("ahead of the run"), "{ahead}");
    }

    /// Repeat over seeds trains the run's settings and arm B's from scratch with other seeds, paired, on a
    /// thread beside the live run; each curve is exactly that seed's run of that arm's settings.
    #[test]
    fn repeating_over_seeds_trains_both_arms_settings_with_other_seeds() {
        use convscope::config::{BackendKind, TrainConfig};
        use convscope::protocol::SeedRuns;
        use convscope::train::{StepOutcome, Trainer};

        let options = WorkerOptions { start_paused: true, threads: Some(1), ..WorkerOptions::default() };
        let base = config(|_| {});
        let worker = WorkerHandle::spawn(base.clone(), mnist(), options).unwrap();
        let mut rows = Rows::default();
        step_and_wait(&worker, &mut rows, 5, 5);
        // B's knobs: its rate, and a live switch of conv1's activation (not in its configuration).
        let tanh = Setting::Activation { layer: 0, activation: convscope::arch::Activation::Tanh };
        let b_changes = vec![Setting::LearningRate(0.001), tanh];
        assert_eq!(answer(&worker, &mut rows, Command::Fork(b_changes)), Ok(6));
        let too_many = answer(&worker, &mut rows, Command::RepeatOverSeeds { seeds: 50, steps: 10 }).unwrap_err();
        assert!(too_many.contains("1 to 20 seeds"), "{too_many}");
        assert_eq!(answer(&worker, &mut rows, Command::RepeatOverSeeds { seeds: 2, steps: 20 }), Ok(6));
        let mut last: [Option<SeedRuns>; 2] = [None, None];
        wait_for(&worker, &mut rows, |e| {
            if let WorkerEvent::SeedRuns(runs) = e {
                last[usize::from(runs.arm == Arm::B)] = Some((**runs).clone());
            }
            last.iter().all(|r| r.as_ref().is_some_and(|r| r.runs.len() == 2)).then_some(())
        });
        assert!(rows.a.iter().all(|r| r.step <= 5), "the live run stays paused meanwhile");
        for (runs, changes) in last.iter().flatten().zip([vec![], vec![Setting::LearningRate(0.001), tanh]]) {
            assert_eq!(runs.runs.iter().map(|r| r.seed).collect::<Vec<_>>(), [base.seed + 1, base.seed + 2]);
            for run in &runs.runs {
                assert!(run.test.is_some_and(|t| t > 0.0) && run.diverged_at.is_none());
                let config = TrainConfig { seed: run.seed, ..base.clone() };
                let expected: Vec<f32> = convscope::train::threads::with_compute_threads(
                    Some(1),
                    convscope::train::threads::ComputePriority::Normal,
                    || {
                        let mut trainer = Trainer::new(config, mnist(), BackendKind::Flex).unwrap();
                        changes.iter().for_each(|change| trainer.change(change).unwrap());
                        (0..20)
                            .map(|_| match trainer.step(false).unwrap() {
                                StepOutcome::Updated { row, .. } => row.loss,
                                StepOutcome::Diverged { message, .. } => panic!("{message}"),
                            })
                            .collect()
                    },
                )
                .unwrap();
                assert_eq!(run.losses, expected, "arm {:?}, seed {}: that seed's run, bit for bit", runs.arm, run.seed);
            }
        }
    }

    #[test]
    fn a_recorded_a_b_run_replays_with_both_arms() {
        use convscope::protocol::WorkerLink;
        let run_dir = crate::support::scratch_dir("fork-recorded").join("run");
        let options = WorkerOptions {
            start_paused: true,
            threads: Some(1),
            run_dir: Some(run_dir.clone()),
            ..Default::default()
        };
        let worker = WorkerHandle::spawn(config(|_| {}), mnist(), options).unwrap();
        let mut rows = Rows::default();
        step_and_wait(&worker, &mut rows, 5, 5);
        assert_eq!(answer(&worker, &mut rows, Command::Fork(vec![Setting::LearningRate(0.001)])), Ok(6));
        step_and_wait(&worker, &mut rows, 10, 15);
        drop(worker);

        let history = convscope::history::read_history(&run_dir.join("history.bin")).unwrap();
        let arm_b: Vec<&WorkerEvent> = history
            .events
            .iter()
            .filter_map(|e| if let WorkerEvent::ArmB(inner) = e { Some(inner.as_ref()) } else { None })
            .collect();
        assert!(matches!(arm_b.first(), Some(WorkerEvent::Started(_))), "B's net first: {:?}", arm_b.first());
        let b_rows: Vec<(u64, f64)> = arm_b
            .iter()
            .filter_map(|e| {
                if let WorkerEvent::Metrics(rows) = e { Some(rows.iter().map(|r| (r.step, r.lr))) } else { None }
            })
            .flatten()
            .collect();
        assert_eq!(b_rows, (6..=15).map(|step| (step, 0.001)).collect::<Vec<_>>(), "every row of B, at B's rate");
        // Thinned alike: a snapshot of B for every step that has one of A (all of them this early).
        let steps =
            |pick: &dyn Fn(&WorkerEvent) -> Option<u64>| history.events.iter().filter_map(pick).collect::<Vec<_>>();
        let a_steps = steps(&|e| if let WorkerEvent::Snapshot(s) = e { Some(s.step) } else { None });
        let b_steps = steps(&|e| match e {
            WorkerEvent::ArmB(inner) => {
                if let WorkerEvent::Snapshot(s) = inner.as_ref() {
                    Some(s.step)
                } else {
                    None
                }
            }
            _ => None,
        });
        assert!(b_steps.contains(&15) && b_steps.iter().all(|s| a_steps.contains(s)), "A {a_steps:?}, B {b_steps:?}");

        // The replay hands the window B's net, its rows and its last snapshot, after A's.
        let (mut replay, _) = convscope::replay::Replay::open(&run_dir).unwrap();
        let (mut b_started, mut b_rows, mut b_snapshots) = (false, 0, Vec::new());
        while let Some(event) = replay.try_recv() {
            let WorkerEvent::ArmB(inner) = event else { continue };
            match *inner {
                WorkerEvent::Started(_) => b_started = true,
                WorkerEvent::Metrics(rows) => b_rows += rows.len(),
                WorkerEvent::Snapshot(s) => b_snapshots.push(s.step),
                _ => {}
            }
        }
        assert!(b_started);
        assert_eq!((b_rows, b_snapshots), (10, vec![15]));
    }
}

mod window {
    //! The window's A/B: the Fork button, the strip with what B changed and the verdict, edits routed to the
    //! arm being edited, and closing an arm — driven through egui_kittest with a fake worker fed real events.

    use convscope::app::FakeWorker;
    use convscope::arch::Activation;
    use convscope::config::{BackendKind, Setting, TrainConfig};
    use convscope::protocol::{Arm, Command, RunState, WorkerEvent};
    use convscope::train::{Driven, Driver, Evaluation, PROBE_THUMBNAILS};
    use eframe::egui;
    use egui_kittest::kittest::Queryable;

    use crate::support::{mnist, window_on};

    fn rows(driver: &mut Driver, steps: usize) -> Vec<convscope::snapshot::MetricRow> {
        (0..steps)
            .filter_map(|_| match driver.step(false).unwrap() {
                Driven::Updated { row, .. } => Some(row),
                Driven::Diverged { .. } => None,
            })
            .collect()
    }

    /// A's events for 20 steps, then (as the worker sends them) a fork to sigmoid and 20 more steps of each.
    fn forked_events() -> (Vec<WorkerEvent>, Vec<WorkerEvent>) {
        let config = TrainConfig { test_every: 0, ..TrainConfig::default() };
        let mut a = Driver::new(config, mnist(), BackendKind::Flex, Evaluation::Never).unwrap();
        let before = rows(&mut a, 20);
        let started = vec![
            WorkerEvent::Started(Box::new(a.trainer().run_info(PROBE_THUMBNAILS))),
            WorkerEvent::Metrics(before),
            WorkerEvent::Snapshot(Box::new(a.trainer().refresh_snapshot().unwrap())),
            WorkerEvent::State { state: RunState::Paused, step: 20 },
        ];
        let hidden = a.trainer().model().layers.len() - 1;
        let to_sigmoid: Vec<Setting> =
            (0..hidden).map(|layer| Setting::Activation { layer, activation: Activation::Sigmoid }).collect();
        let mut b = a.fork(&to_sigmoid).unwrap();
        let b_started = WorkerEvent::Started(Box::new(b.trainer().run_info(PROBE_THUMBNAILS)));
        let (rows_a, rows_b) = (rows(&mut a, 20), rows(&mut b, 20));
        let arm_b = |event| WorkerEvent::ArmB(Box::new(event));
        let forked = vec![
            arm_b(b_started),
            WorkerEvent::Applied { command: Command::Fork(to_sigmoid), effective_step: 21 },
            WorkerEvent::Metrics(rows_a),
            arm_b(WorkerEvent::Metrics(rows_b)),
            WorkerEvent::Snapshot(Box::new(a.trainer().refresh_snapshot().unwrap())),
            arm_b(WorkerEvent::Snapshot(Box::new(b.trainer().refresh_snapshot().unwrap()))),
            WorkerEvent::State { state: RunState::Paused, step: 40 },
        ];
        (started, forked)
    }

    #[test]
    fn fork_shows_both_arms_routes_edits_to_the_chosen_arm_and_closes() {
        let (started, forked) = forked_events();
        let fake = FakeWorker::default();
        for event in started {
            fake.push(event);
        }
        let mut harness = window_on(&fake, egui::vec2(1280.0, 800.0));
        assert!(harness.query_by_label_contains("same batches since").is_none(), "no strip before a fork");
        harness.get_by_label("Fork A/B").click();
        harness.run_steps(2);
        assert_eq!(fake.sent(), [Command::Fork(Vec::new())]);

        for event in forked {
            fake.push(event);
        }
        harness.run_steps(3);
        harness.get_by_label_contains("forked at step 20");
        harness.get_by_label_contains("B: conv1, conv2: relu -> sigmoid");
        harness.get_by_label_contains("after 40 steps");
        let verdict = harness.state().view.verdict().unwrap();
        assert!(verdict.contains("its loss") && verdict.contains("its conv1 gradient"), "{verdict}");

        // Edits go to A until arm B is chosen; then the learning rate shown and changed is B's.
        harness.get_by_label("arm B").click();
        harness.run_steps(2);
        harness.get_by_label("×2").click();
        harness.run_steps(2);
        let sent = fake.sent();
        assert_eq!(sent.last(), Some(&Command::ChangeB(Setting::LearningRate(0.02))), "{sent:?}");
        let view = &harness.state().view;
        assert_eq!(view.arm_b.as_ref().unwrap().config.lr, 0.02, "B shows its new rate at once");
        assert_eq!(view.config.lr, 0.01, "A keeps its own");
        // The strip names every knob B turned, its init and clipping among them.
        let b = harness.state_mut().view.arm_b.as_mut().unwrap();
        b.config.init = Some(convscope::arch::Init::Normal { std: 0.01 });
        b.config.grad_clip = 1.0;
        let differences = harness.state().view.arm_differences();
        assert!(differences.iter().any(|d| d == "init by activation -> normal:0.01"), "{differences:?}");
        assert!(differences.iter().any(|d| d == "clip 0 -> 1.00"), "{differences:?}");
        // What goes wrong in B is told in the run's banner, and a Fork A/B on B's view stays off.
        let warning = WorkerEvent::Warning { step: 40, message: "a statistic could not be computed".into() };
        fake.push(WorkerEvent::ArmB(Box::new(warning)));
        harness.run_steps(2);
        harness.get_by_label_contains("arm B, step 40: a statistic could not be computed");
        let sent_before = fake.sent().len();
        harness.get_by_label("Fork A/B").click();
        harness.run_steps(2);
        assert_eq!(fake.sent().len(), sent_before, "no second fork while one runs: {:?}", fake.sent());
        harness.get_by_label("Close B").click();
        harness.run_steps(2);
        assert_eq!(fake.sent().last(), Some(&Command::CloseArm(Arm::B)));
        fake.push(WorkerEvent::ArmClosed(Arm::B));
        harness.run_steps(2);
        assert!(harness.state().view.arm_b.is_none());
        assert!(harness.query_by_label_contains("same batches since").is_none(), "the strip goes with arm B");
    }
}

#[test]
fn every_preset_opens_as_an_a_b_run_with_its_other_arm_in_b() {
    use convscope::diagnose::presets::{PRESETS, Switch};
    for preset in PRESETS {
        let config = TrainConfig { test_every: 0, ..preset.config() };
        let mut a = driver(config);
        let weighted = a.trainer().model().layers.len();
        let mut b = a.fork(&preset.other_arm.settings(weighted)).unwrap();
        let (la, lb) = (losses(&mut a, 3), losses(&mut b, 3));
        let (ca, cb) = (a.trainer().config(), b.trainer().config());
        let hidden_b = &b.trainer().model().layers[0].settings;
        let knob_in_b = match preset.other_arm {
            Switch::Activation(activation) => hidden_b.activation == activation && ca.activation != activation,
            Switch::BatchNorm => hidden_b.batch_norm && !a.trainer().model().layers[0].settings.batch_norm,
            Switch::LearningRate(lr) => cb.lr == lr && ca.lr != lr,
            Switch::Bias => hidden_b.bias && !a.trainer().model().layers[0].settings.bias,
            Switch::Output(kind) => cb.output == kind && ca.output != kind,
            Switch::OutputActivation(activation) => {
                let output =
                    |d: &convscope::train::Driver| d.trainer().model().layers[weighted - 1].settings.activation;
                output(&b) == activation && output(&a) != activation && cb.output_activation == activation
            }
        };
        assert!(knob_in_b, "{}: arm B has the other arm's change", preset.name);
        // The rate changes only the update, and a bias switched on starts at zero: the first loss is shared.
        // Every other knob changes the forward pass at once.
        match preset.other_arm {
            Switch::LearningRate(_) | Switch::Bias => assert_eq!(lb[0], la[0], "{}", preset.name),
            _ => assert_ne!(lb[0], la[0], "{}: B differs from its first step", preset.name),
        }
        assert_ne!(lb[2], la[2], "{}", preset.name);
    }
}
