//! The confusion matrix on the real model and data: it counts every test image once and agrees with the test
//! accuracy, `train` writes it as `confusion.csv`, and in the window a click on a cell shows that mistake's
//! images and a click on one makes it the probe.

use convscope::app::FakeWorker;
use convscope::config::BackendKind;
use convscope::protocol::{Command, RunState, WorkerEvent};
use convscope::snapshot::{CONFUSION_EXAMPLES_PER_CELL, Confusion};
use convscope::train::{PROBE_THUMBNAILS, Trainer};
use eframe::egui;
use egui_kittest::kittest::Queryable;

use crate::support::{config, convscope, last_json_line, mnist, scratch_dir, stderr, window_on};

fn trained(steps: usize) -> Trainer {
    let mut trainer = Trainer::new(config(|_| {}), mnist(), BackendKind::Flex).unwrap();
    for _ in 0..steps {
        trainer.step(false).unwrap();
    }
    trainer
}

#[test]
fn the_matrix_counts_every_test_image_once_and_agrees_with_the_accuracy() {
    let mut trainer = trained(40);
    let accuracy = trainer.evaluate().unwrap();
    let confusion = trainer.confusion().unwrap();
    let test = &trainer.data().test;
    assert_eq!((confusion.classes, confusion.step), (10, 40));
    let total: u32 = confusion.counts.iter().sum::<u32>() + confusion.unscored;
    assert_eq!(total as usize, test.len());
    let right: u32 = (0..10).map(|c| confusion.at(c, c)).sum();
    assert_eq!(right as f32 / test.len() as f32, accuracy);
    for class in 0..10 {
        let labelled = test.labels().iter().filter(|&&l| usize::from(l) == class).count();
        assert_eq!(confusion.row_total(class) as usize, labelled, "row {class} holds every image of its class");
    }
    assert!(!confusion.examples.is_empty(), "40 steps leave mistakes to show");
    for example in &confusion.examples {
        assert_ne!(example.true_class, example.predicted);
        assert_eq!(test.label(example.test_index).map(usize::from), Some(example.true_class));
        assert_eq!(test.image(example.test_index), Some(example.pixels.as_slice()));
        let cell = confusion.examples_of(example.true_class, example.predicted).count();
        assert!(
            cell <= CONFUSION_EXAMPLES_PER_CELL && cell as u32 <= confusion.at(example.true_class, example.predicted)
        );
    }
}

#[test]
fn train_writes_the_matrix_as_csv() {
    let dir = scratch_dir("confusion-csv");
    let output = convscope(&["train", "--steps", "30", "--out", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    let text = std::fs::read_to_string(dir.join("confusion.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("true\\predicted,0,1,2,3,4,5,6,7,8,9"));
    let rows: Vec<Vec<u32>> = lines.map(|l| l.split(',').skip(1).map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 10);
    let total: u32 = rows.iter().flatten().sum();
    let right: u32 = (0..10).map(|c| rows[c][c]).sum();
    assert_eq!(total, 2000, "every test image once");
    let accuracy = summary["test_accuracy"].as_f64().unwrap();
    assert!((f64::from(right) / 2000.0 - accuracy).abs() < 1e-6, "{right} right against {accuracy}");
}

#[test]
fn a_click_on_a_cell_shows_its_images_and_a_click_on_one_makes_it_the_probe() {
    let mut trainer = trained(40);
    trainer.evaluate().unwrap();
    let confusion: Confusion = trainer.confusion().unwrap().clone();
    let example = confusion.examples[0].clone();
    let fake = FakeWorker::default();
    fake.push(WorkerEvent::Started(Box::new(trainer.run_info(PROBE_THUMBNAILS))));
    fake.push(WorkerEvent::Confusion(Box::new(confusion.clone())));
    fake.push(WorkerEvent::State { state: RunState::Paused, step: 40 });
    // Tall enough that the panel, last in the centre column, is on screen without scrolling.
    let mut harness = window_on(&fake, egui::vec2(1280.0, 1800.0));
    harness.get_by_label_contains("test split after step 40");
    let rect = harness.get_by_label("confusion matrix").rect();
    // The grid starts 34 points in (the row labels) and 14 down (the column labels); cells are square.
    let cell = (rect.width() - 34.0) / 10.0;
    let at = rect.min
        + egui::vec2(34.0 + (example.predicted as f32 + 0.5) * cell, 14.0 + (example.true_class as f32 + 0.5) * cell);
    harness.hover_at(at);
    for pressed in [true, false] {
        harness.event(egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
        harness.run_steps(1);
    }
    harness.run_steps(2);
    assert_eq!(harness.state().state.confusion.selected, Some((example.true_class, example.predicted)));
    let shown = format!("true {} predicted as {}", example.true_class, example.predicted);
    harness.get_by_label_contains(&shown);
    harness.get_by_label(&format!("mistaken test image {}", example.test_index)).click();
    harness.run_steps(2);
    assert_eq!(fake.sent().last(), Some(&Command::SetProbe(example.test_index)));
}

#[test]
fn the_worker_sends_the_matrix_after_each_evaluation_and_after_its_rows() {
    use std::time::{Duration, Instant};
    let options = convscope::train::WorkerOptions { start_paused: true, threads: Some(1), ..Default::default() };
    let worker = convscope::train::WorkerHandle::spawn(config(|c| c.test_every = 5), mnist(), options).unwrap();
    assert!(worker.send(Command::Step(5)));
    let (mut steps, mut last_row) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while steps.len() < 2 && Instant::now() < deadline {
        match worker.recv_timeout(Duration::from_millis(200)) {
            Some(WorkerEvent::Metrics(rows)) => last_row = rows.last().map_or(last_row, |r| r.step),
            Some(WorkerEvent::Confusion(confusion)) => {
                assert_eq!(confusion.step, last_row, "the rows up to the evaluation came first");
                assert_eq!(confusion.counts.iter().sum::<u32>() + confusion.unscored, 2000);
                steps.push(confusion.step);
            }
            _ => {}
        }
    }
    assert_eq!(steps, [0, 5], "one at the build, one after the evaluation at step 5");
}
