//! Regression heads on the embedded digits: a slant regression learns (test R² well above 0.5), a ReLU output
//! pins its outputs at 0 where the identity output of the same net from the same weights does not (the
//! `regression-output` preset as an A/B run), the `output-range` hint names the fix, and the command line
//! writes the figures and refuses what cannot work.

use convscope::config::{BackendKind, TrainConfig};
use convscope::diagnose::Rule;
use convscope::diagnose::presets;
use convscope::task::{Target, Task};
use convscope::train::{Driven, Driver, Evaluation};
use egui_kittest::kittest::Queryable;

use crate::support::{config, convscope, last_json_line, mnist, scratch_dir, stderr};

fn train(driver: &mut Driver, steps: usize) {
    for _ in 0..steps {
        match driver.step(false).unwrap() {
            Driven::Updated { .. } => {}
            Driven::Diverged { message, .. } => panic!("diverged: {message}"),
        }
    }
}

#[test]
fn the_regression_output_preset_pins_a_relu_head_at_zero_and_the_identity_arm_learns() {
    let preset = presets::find("regression-output").unwrap();
    let config = TrainConfig { test_every: 0, ..preset.config() };
    assert_eq!(config.task, Task::Regression(Target::Slant));
    let mut relu = Driver::new(config, mnist(), BackendKind::Flex, Evaluation::Never).unwrap();
    let weighted = relu.trainer().model().layers.len();
    let mut identity = relu.fork(&preset.other_arm.settings(weighted)).unwrap();
    train(&mut relu, 300);
    train(&mut identity, 300);
    relu.evaluate().unwrap();
    identity.evaluate().unwrap();
    let (a, b) = (relu.trainer().regression_eval().unwrap(), identity.trainer().regression_eval().unwrap());
    assert!(b.metrics.r2 > 0.5, "the identity head learns the slant: {:?}", b.metrics);
    assert!(a.metrics.r2 < b.metrics.r2 - 0.2, "ReLU {:?} against identity {:?}", a.metrics, b.metrics);
    // About half the standardised slants are negative: out of ReLU's reach, and pinned at its floor.
    assert!(a.metrics.unreachable > 0.3 && a.metrics.pinned > 0.2, "{a:?}");
    assert_eq!((b.metrics.unreachable, b.metrics.pinned), (0.0, 0.0));
    // The floor is drawn at ReLU's 0 in target units: the training slants' mean (standardised targets).
    let floor = a.edges.0.expect("ReLU has a floor");
    let pinned: Vec<f32> = a.predictions.iter().zip(&a.pinned).filter(|(_, p)| **p).map(|(v, _)| *v).collect();
    assert!(pinned.iter().all(|v| (v - floor).abs() < 1e-3), "pinned outputs sit on the floor {floor}");
    let hints = relu.hints();
    let hint = hints.iter().find(|h| h.rule == Rule::OutputRange).expect("the output-range hint fires");
    assert!(hint.sentence.contains("--output-activation identity"), "{}", hint.sentence);
    assert!(identity.hints().iter().all(|h| h.rule != Rule::OutputRange));
}

#[test]
fn train_writes_r2_mae_and_mse_and_refuses_a_regression_on_a_softmax_head() {
    let out = scratch_dir("regression-train");
    let out_arg = out.to_str().unwrap();
    let output =
        convscope(&["train", "--task", "regression:ink", "--steps", "30", "--test-every", "15", "--out", out_arg]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    for key in ["test_r2", "test_mae", "test_mse"] {
        assert!(summary[key].as_f64().is_some_and(f64::is_finite), "{key}: {summary}");
    }
    assert!(summary["test_accuracy"].is_null(), "a regression has no accuracy: {summary}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let last: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    let column = |name: &str| last[header.iter().position(|h| *h == name).unwrap()].parse::<f64>().unwrap();
    assert!((column("test_r2") - summary["test_r2"].as_f64().unwrap()).abs() < 1e-6);
    assert!(column("train_mae") > 0.0);
    assert!(!out.join("confusion.csv").exists(), "no confusion matrix for a regression");

    let refused = convscope(&["train", "--task", "regression:slant", "--output", "softmax", "--out", out_arg]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("predicts a number, but the output is softmax"), "{}", stderr(&refused));
    let no_file = convscope(&["train", "--task", "regression:file", "--steps", "1", "--out", out_arg]);
    assert_eq!(no_file.status.code(), Some(2));
    assert!(stderr(&no_file).contains("add --targets FILE.csv"), "{}", stderr(&no_file));
}

#[test]
fn a_targets_file_trains_and_a_bad_row_is_named_by_its_line() {
    let out = scratch_dir("regression-targets");
    let data = mnist();
    let total = data.train.len() + data.test.len();
    // The digit's label as a number: a real target every example has.
    let labels = data.train.labels().iter().chain(data.test.labels());
    let rows: Vec<String> = labels.enumerate().map(|(i, l)| format!("{i},{l}")).collect();
    let good = out.join("targets.csv");
    std::fs::write(&good, format!("index,target\n{}\n", rows.join("\n"))).unwrap();
    let out_arg = out.to_str().unwrap();
    let flags = ["train", "--task", "regression:file", "--steps", "20", "--test-every", "20", "--out", out_arg];
    let output = convscope(&[&flags[..], &["--targets", good.to_str().unwrap()]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(last_json_line(&output)["test_r2"].as_f64().is_some_and(f64::is_finite));
    assert_eq!(rows.len(), total);

    let mut broken = rows.clone();
    broken[41] = "41,NaN".to_owned();
    let bad = out.join("bad.csv");
    std::fs::write(&bad, format!("index,target\n{}\n", broken.join("\n"))).unwrap();
    let output = convscope(&[&flags[..], &["--targets", bad.to_str().unwrap()]].concat());
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("bad.csv: line 43: the target NaN is not finite"), "{message}");
}

#[test]
fn a_regression_net_switches_its_output_activation_live_and_keeps_its_weights() {
    let config = config(|c| {
        c.switch_task(Task::Regression(Target::Slant));
        c.output_activation = convscope::arch::Activation::Relu;
    });
    assert_eq!(config.lr, convscope::config::REGRESSION_LR, "a regression starts at its own rate");
    let mut driver = Driver::new(config, mnist(), BackendKind::Flex, Evaluation::Never).unwrap();
    let last = driver.trainer().model().layers.len() - 1;
    let before = driver.trainer().layer_weights(last).unwrap();
    let to_identity =
        convscope::config::Setting::Activation { layer: last, activation: convscope::arch::Activation::Identity };
    driver.change(&to_identity).unwrap();
    assert_eq!(driver.trainer().layer_weights(last).unwrap(), before);
    assert_eq!(driver.trainer().config().output_activation, convscope::arch::Activation::Identity);
    // A classifier's output activation belongs to its loss: the same change is refused there.
    let mut classifier =
        Driver::new(crate::support::config(|_| {}), mnist(), BackendKind::Flex, Evaluation::Never).unwrap();
    let relu = convscope::config::Setting::Activation { layer: last, activation: convscope::arch::Activation::Relu };
    assert!(classifier.change(&relu).is_err());
}

#[test]
fn the_window_shows_the_scatter_and_the_pinned_meter_and_switches_the_task_after_asking() {
    use convscope::app::FakeWorker;
    use convscope::protocol::{Command, RunState, WorkerEvent};
    use convscope::train::PROBE_THUMBNAILS;
    use eframe::egui;

    let config = TrainConfig { test_every: 0, ..presets::find("regression-output").unwrap().config() };
    let mut trainer = convscope::train::Trainer::new(config, mnist(), BackendKind::Flex).unwrap();
    for _ in 0..20 {
        trainer.step(false).unwrap();
    }
    trainer.evaluate().unwrap();
    let eval = trainer.regression_eval().unwrap().clone();
    assert!(eval.metrics.pinned > 0.0, "{eval:?}");
    let fake = FakeWorker::default();
    fake.push(WorkerEvent::Started(Box::new(trainer.run_info(PROBE_THUMBNAILS))));
    fake.push(WorkerEvent::Regression(Box::new(eval.clone())));
    fake.push(WorkerEvent::State { state: RunState::Paused, step: 20 });
    let mut harness = crate::support::window_on(&fake, egui::vec2(1280.0, 1800.0));
    harness.get_by_label("Predicted vs true");
    harness.get_by_label_contains(&format!("R² {:.3}", eval.metrics.r2));
    harness.get_by_label(&format!("pinned {:.0} %", 100.0 * eval.metrics.pinned));
    // The task picker asks before it builds a new net, then sends the reset with the classifier's head.
    harness.get_by_label("Task").click();
    harness.run_steps(2);
    harness.get_by_label("classification").click();
    harness.run_steps(2);
    assert!(!fake.sent().iter().any(|c| matches!(c, Command::Reset(_))), "nothing before the answer");
    harness.get_by_label("Switch task").click();
    harness.run_steps(2);
    let Some(Command::Reset(config)) = fake.sent().last().cloned() else { panic!("{:?}", fake.sent()) };
    assert_eq!((config.task, config.output), (Task::Classification, convscope::arch::OutputKind::Softmax));
    assert_eq!(config.lr, TrainConfig::default().lr, "the classifier's rate comes back with its task");
}

#[test]
fn compare_reports_a_regression_by_its_test_r2() {
    let dir = scratch_dir("regression-compare");
    let args = ["compare", "--preset", "regression-output", "--seeds", "1", "--steps", "150", "--test-every", "150"];
    let output = convscope(&[&args[..], &["--out", dir.to_str().unwrap()]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    let (a, b) = (summary["a"]["test_r2_mean"].as_f64().unwrap(), summary["b"]["test_r2_mean"].as_f64().unwrap());
    let paired = &summary["paired_difference"];
    assert!((paired["test_r2_mean"].as_f64().unwrap() - (b - a)).abs() < 1e-5, "{paired}");
    assert_eq!(paired["b_higher_test_r2"], 1, "the identity arm beats the ReLU arm: {summary}");
    assert!(stderr(&output).contains("B's test R² is +"), "{}", stderr(&output));
}

#[test]
fn an_image_folder_takes_its_targets_by_file_name_and_an_unknown_file_is_named_by_its_line() {
    let dir = scratch_dir("regression-folder");
    let data = dir.join("images");
    let mut rows = vec!["file,target".to_owned()];
    for class in ["dark", "light"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..10u32 {
            // The target is the square's grey level: a number the pixels really carry.
            let grey = if class == "dark" { 40 + 3 * i } else { 160 + 3 * i };
            let image = image::GrayImage::from_fn(12, 12, |x, y| {
                image::Luma([if (3..9).contains(&x) && (3..9).contains(&y) { grey as u8 } else { 0 }])
            });
            image.save(data.join(class).join(format!("{i}.png"))).unwrap();
            // One row by its path in the folder, the other by its file name alone would be ambiguous here.
            rows.push(format!("{class}/{i}.png,{}", f64::from(grey) / 255.0));
        }
    }
    let targets = dir.join("targets.csv");
    std::fs::write(&targets, rows.join("\n")).unwrap();
    let out = dir.join("out");
    let args =
        ["train", "--task", "regression:file", "--arch", "conv 4 3x3, pool 2", "--steps", "10", "--test-every", "10"];
    let paths =
        ["--data", data.to_str().unwrap(), "--targets", targets.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let output = convscope(&[&args[..], &paths[..]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(last_json_line(&output)["test_r2"].as_f64().is_some_and(f64::is_finite));

    rows[3] = "dark/missing.png,0.5".to_owned();
    std::fs::write(&targets, rows.join("\n")).unwrap();
    let output = convscope(&[&args[..], &paths[..]].concat());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("targets.csv: line 4: no image `dark/missing.png` in the data"),
        "{}",
        stderr(&output)
    );
    rows[3] = "2.png,0.5".to_owned();
    std::fs::write(&targets, rows.join("\n")).unwrap();
    let output = convscope(&[&args[..], &paths[..]].concat());
    assert!(stderr(&output).contains("line 4: several images are called `2.png`"), "{}", stderr(&output));
}
