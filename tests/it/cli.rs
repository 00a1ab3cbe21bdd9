//! `convscope` run as a process: training on the embedded data, broken IDX files, divergence, bench.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::support::{asset_dir, convscope, last_json_line, scratch_dir, stderr};

fn gunzip(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()), &mut bytes)
        .unwrap();
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn train_learns_the_embedded_digits_and_writes_its_outputs() {
    let out = scratch_dir("train-out");
    let output = convscope(&["train", "--steps", "300", "--seed", "3", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    assert_eq!(summary["steps"], 300);
    let accuracy = summary["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "test accuracy after 300 steps: {accuracy}");
    assert!(summary["images_per_sec"].as_f64().unwrap() > 0.0);
    assert!(summary["train_loss"].as_f64().unwrap() < 0.5);
    for name in ["conv1_filters.png", "conv1_gradients.png"] {
        let image = image::open(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(image.width() > 50 && image.height() > 50);
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in ["step", "loss", "train_accuracy", "test_accuracy", "lr"] {
        assert!(header.contains(&column), "missing column {column}");
    }
    let norms: Vec<&&str> = header.iter().filter(|c| c.contains("grad") && c.contains("norm")).collect();
    assert_eq!(norms, [&"grad_norm_conv1", &"grad_norm_conv2", &"grad_norm_dense1"]);
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 300);
    let filled = |name: &str| {
        let column = header.iter().position(|&c| c == name).unwrap_or_else(|| panic!("no column {name}"));
        rows.iter().all(|r| !r.split(',').nth(column).unwrap().is_empty())
    };
    assert!(rows.iter().all(|r| r.split(',').count() == header.len()));
    for column in ["loss", "grad_norm_dense1", "update_ratio_conv1", "dead_fraction_conv2", "act_var_dense1"] {
        assert!(filled(column), "{column} has a value on every step");
    }
    // Statistics that do not apply stay empty: a ReLU does not saturate, the output layer has no slope.
    assert!(!filled("saturated_fraction_conv1") && !filled("mean_slope_dense1"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["config"]["seed"], 3);
}

/// Writes the train pair into a fresh folder, letting `mangle` change the image and label bytes (raw).
pub(crate) fn idx_folder(tag: &str, mangle: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>)) -> std::path::PathBuf {
    let dir = scratch_dir(tag);
    let mut images = gunzip(&asset_dir().join("train-images-idx3-ubyte.gz"));
    let mut labels = gunzip(&asset_dir().join("train-labels-idx1-ubyte.gz"));
    mangle(&mut images, &mut labels);
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
    dir
}

fn assert_bad_input(dir: &Path, needles: &[&str]) {
    let out = scratch_dir("bad-out");
    let output = convscope(&["train", "--data", dir.to_str().unwrap(), "--steps", "1", "--out", out.to_str().unwrap()]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    for needle in needles {
        assert!(message.contains(needle), "expected {needle:?} in: {message}");
    }
}

#[test]
fn broken_idx_files_exit_2_naming_the_fault() {
    let truncated = idx_folder("truncated", |images, _| images.truncate(images.len() - 1000));
    assert_bad_input(&truncated, &["train-images-idx3-ubyte.gz", "truncated"]);

    let magic = idx_folder("magic", |images, _| images[2] = 0x09);
    assert_bad_input(&magic, &["train-images-idx3-ubyte.gz"]);

    let mismatch = idx_folder("mismatch", |_, labels| {
        labels.truncate(labels.len() - 10);
        labels[4..8].copy_from_slice(&7990_u32.to_be_bytes());
    });
    assert_bad_input(&mismatch, &["8000", "7990"]);

    let out_of_range = idx_folder("label-range", |_, labels| labels[8 + 17] = 12);
    assert_bad_input(&out_of_range, &["index 17", "12"]);

    let huge = idx_folder("huge", |images, _| images[4..8].copy_from_slice(&1_000_000_000_u32.to_be_bytes()));
    assert_bad_input(&huge, &["truncated"]);

    let corrupt = scratch_dir("corrupt");
    let mut gz = std::fs::read(asset_dir().join("train-images-idx3-ubyte.gz")).unwrap();
    let middle = gz.len() / 2;
    for byte in &mut gz[middle..middle + 64] {
        *byte ^= 0x5A;
    }
    std::fs::write(corrupt.join("train-images-idx3-ubyte.gz"), gz).unwrap();
    std::fs::copy(asset_dir().join("train-labels-idx1-ubyte.gz"), corrupt.join("train-labels-idx1-ubyte.gz")).unwrap();
    assert_bad_input(&corrupt, &["train-images-idx3-ubyte.gz"]);

    let empty = scratch_dir("empty");
    std::fs::write(empty.join("train-images-idx3-ubyte"), b"").unwrap();
    std::fs::copy(asset_dir().join("train-labels-idx1-ubyte.gz"), empty.join("train-labels-idx1-ubyte.gz")).unwrap();
    assert_bad_input(&empty, &["train-images-idx3-ubyte", "empty"]);

    let missing = scratch_dir("missing");
    assert_bad_input(&missing, &["train-images-idx3-ubyte"]);
}

#[test]
fn a_valid_train_only_folder_trains_with_a_held_out_split() {
    let dir = idx_folder("train-only", |_, _| {});
    let out = scratch_dir("train-only-out");
    let output =
        convscope(&["train", "--data", dir.to_str().unwrap(), "--steps", "20", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    assert_eq!(summary["steps"], 20);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert!(config["data"].as_str().unwrap().contains("train split"), "{config}");
}

#[test]
fn bad_arguments_exit_2_with_a_pointer_to_the_fault() {
    let out = scratch_dir("bad-args-out");
    let output = convscope(&[
        "train",
        "--arch",
        "conv 8 5x5, pool 2, pool 2, pool 2, pool 2, pool 2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("^^^^^^"), "{}", stderr(&output));
    let output = convscope(&["train", "--lr=-1", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("learning rate"), "{}", stderr(&output));
    let output = convscope(&["train", "--layer-activations", "relu,swish", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("swish"), "{}", stderr(&output));
}

#[test]
fn the_window_takes_the_training_flags_and_refuses_bad_ones_before_it_opens() {
    // These fail while parsing, before any window could open (no display is needed).
    for (args, needle) in [
        (&["--pace", "fast"][..], "steps per second"),
        (&["--pace", "0"][..], "steps per second"),
        (&["--preset", "bias", "--lr=-1"][..], "learning rate"),
        (&["--preset", "nope"][..], "sigmoid-vs-relu"),
        (&["--activation", "swish"][..], "swish"),
        (&["--arch", "conv 8 9x9, pool 2, pool 2, pool 2, pool 2, pool 2"][..], "^^^"),
        (&["--resume", "/nonexistent/run/checkpoint-step000100.ckpt"][..], "checkpoint-step000100.ckpt"),
        (&["--resume", "Cargo.toml"][..], "not a convscope checkpoint"),
        (&["open", "/nonexistent/run"][..], "/nonexistent/run"),
        (&["open", "Cargo.toml"][..], "not a convscope history"),
    ] {
        let output = convscope(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(needle), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn divergence_exits_3_naming_the_step() {
    let out = scratch_dir("diverge-out");
    let output = convscope(&[
        "train",
        "--activation",
        "identity",
        "--lr",
        "1000",
        "--optimizer",
        "sgd",
        "--steps",
        "50",
        "--out",
        out.to_str().unwrap(),
    ]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{message}");
    assert!(message.contains("diverged at step"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    assert!(out.join("metrics.csv").exists(), "the rows up to the divergence are kept");
}

#[test]
fn a_relu_net_at_lr_1000_exits_3_within_a_few_steps() {
    let out = scratch_dir("explode-out");
    let output = convscope(&["train", "--lr", "1000", "--steps", "50", "--out", out.to_str().unwrap()]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{message}");
    assert!(message.contains("diverged at step"), "{message}");
    assert!(message.contains("try 100"), "the message suggests a lower rate: {message}");
}

/// The rule ids in a summary's `hints`.
fn hint_rules(summary: &serde_json::Value) -> Vec<String> {
    summary["hints"].as_array().unwrap().iter().map(|h| h["rule"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_vanishing_gradients_preset_shows_and_names_the_problem_and_relu_cures_it() {
    let out = scratch_dir("vanishing-out");
    let dir = out.to_str().unwrap();
    let output = convscope(&["train", "--preset", "vanishing-gradients", "--steps", "200", "--out", dir]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    let norms = summary["grad_norms"].as_array().unwrap();
    let first = norms.first().unwrap()["grad_norm"].as_f64().unwrap();
    let last = norms.last().unwrap()["grad_norm"].as_f64().unwrap();
    assert!(first * 100.0 <= last, "conv1 {first} should be 100× below the output layer's {last}");
    let rules = hint_rules(&summary);
    assert!(rules.contains(&"vanishing-gradients".to_owned()), "{summary}");
    assert!(rules.contains(&"plateau".to_owned()), "the loss sits at ln 10: {summary}");
    assert!(stderr(&output).contains("hint (vanishing-gradients): conv1 gradient norm"), "{}", stderr(&output));
    // The statistics columns are filled on every step.
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|&c| c == "saturated_fraction_conv1").unwrap();
    assert!(csv.lines().skip(1).all(|line| !line.split(',').nth(column).unwrap().is_empty()));

    let output = convscope(&[
        "train",
        "--preset",
        "vanishing-gradients",
        "--activation",
        "relu",
        "--steps",
        "200",
        "--out",
        dir,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    assert!(!hint_rules(&summary).contains(&"vanishing-gradients".to_owned()), "{summary}");
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"arch\": \"deep6\"") && config.contains("\"activation\": \"relu\""), "{config}");
}

#[test]
fn an_unknown_preset_lists_the_known_ones() {
    let out = scratch_dir("preset-out");
    let output = convscope(&["train", "--preset", "sigmoid", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("sigmoid-vs-relu, saturation, dead-relu"), "{}", stderr(&output));
}

#[test]
fn bench_prints_its_figures_as_the_first_line() {
    let output = convscope(&["bench", "--steps", "12", "--threads", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let archs: Vec<&str> = lines.iter().map(|l| l["arch"].as_str().unwrap()).collect();
    assert_eq!(archs, ["ref-mnist", "wide"], "the reference first, then the wide net");
    let first = &lines[0];
    for key in ["images_per_sec", "images_per_sec_with_snapshots", "threads", "cpu_s", "batch", "final_loss"] {
        assert!(!first[key].is_null(), "missing {key} in {first}");
    }
    assert_eq!(first["threads"], 1);
    assert_eq!(first["batch"], 32);
    // ref-mnist: conv 8 5x5 on 28×28, conv 16 5x5 on 14×14 (8 channels), dense 784 → 10. Forward, the weight
    // gradient, and the input gradient of every layer but the first; a multiply-add counts two FLOPs.
    let macs = [8.0 * 28.0 * 28.0 * 25.0, 16.0 * 14.0 * 14.0 * 8.0 * 25.0, 784.0 * 10.0];
    let flops = 2.0 * (2.0 * macs[0] + 3.0 * macs[1] + 3.0 * macs[2]);
    assert!((first["mflop_per_image"].as_f64().unwrap() - flops / 1e6).abs() < 1e-6, "{first}");
    let achieved = first["gflop_per_sec"].as_f64().unwrap();
    assert!((achieved - flops * first["images_per_sec"].as_f64().unwrap() / 1e9).abs() < 1e-6 * achieved);
    if let Some(peak) = first["fma_peak_gflop_per_core"].as_f64() {
        let share = first["peak_share_pct"].as_f64().unwrap();
        assert!((share - 100.0 * achieved / peak).abs() < 1e-6 * share && share < 100.0, "{first}");
    }
}

#[test]
fn bench_times_any_input_shape_and_refuses_one_that_is_not() {
    let args = ["bench", "--steps", "3", "--threads", "1", "--also", "", "--arch", "conv 4 3x3 pad 1, pool 2"];
    let output = convscope(&[&args[..], &["--input", "3x16x16"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let line: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim()).unwrap();
    assert_eq!(line["input"], "3x16x16");
    let macs = [4.0 * 16.0 * 16.0 * 3.0 * 9.0, 4.0 * 8.0 * 8.0 * 10.0];
    let flops = 2.0 * (2.0 * macs[0] + 3.0 * macs[1]);
    assert!((line["mflop_per_image"].as_f64().unwrap() - flops / 1e6).abs() < 1e-6, "{line}");
    let refused = convscope(&["bench", "--input", "3x32"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("give CxHxW"), "{}", stderr(&refused));
}

/// Draws a filled square of `colour` on white at a position set by `seed`, `size`×`size` pixels.
fn drawn_square(size: u32, colour: [u8; 3], seed: u32) -> image::RgbImage {
    let offset = seed % (size / 2);
    image::RgbImage::from_fn(size, size, |x, y| {
        let inside = (offset..offset + size / 2).contains(&x) && (offset..offset + size / 2).contains(&y);
        image::Rgb(if inside { colour } else { [255, 255, 255] })
    })
}

#[test]
fn an_image_folder_of_mixed_files_trains_and_reports_what_it_skipped() {
    let dir = scratch_dir("image-folder");
    let classes = [("red", [220, 30, 30]), ("green", [30, 180, 40]), ("blue", [40, 60, 220])];
    for (name, colour) in classes {
        let class_dir = dir.join(name);
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in 0..12u32 {
            // Mixed sizes and formats: most 24×24 PNG, some 32×32 JPEG, some RGBA PNG with a transparent margin.
            match i % 3 {
                0 => drawn_square(32, colour, i).save(class_dir.join(format!("{i}.jpg"))).unwrap(),
                1 => {
                    let rgba = image::RgbaImage::from_fn(24, 24, |x, y| {
                        let edge = x < 2 || y < 2;
                        let [r, g, b] = colour;
                        image::Rgba(if edge { [0, 0, 0, 0] } else { [r, g, b, 255] })
                    });
                    rgba.save(class_dir.join(format!("{i}.png"))).unwrap();
                }
                _ => drawn_square(24, colour, i).save(class_dir.join(format!("{i}.png"))).unwrap(),
            }
        }
    }
    std::fs::write(dir.join("red/broken.png"), b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    std::fs::write(dir.join("green/notes.txt"), "collected on a Tuesday").unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let out = scratch_dir("image-folder-out");
    let output = convscope(&[
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--steps",
        "50",
        "--batch-size",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(message.contains("broken.png") && message.contains("notes.txt") && message.contains("empty"), "{message}");
    assert!(message.contains("3×24×24") && message.contains("3 classes"), "{message}");
    let summary = last_json_line(&output);
    assert_eq!(summary["steps"], 50);
    let filters = image::open(out.join("conv1_filters.png")).unwrap();
    assert!(filters.width() > 50);
}

#[test]
fn cifar_batches_train_and_a_partial_record_is_refused() {
    let dir = scratch_dir("cifar");
    let mut bytes = Vec::new();
    for record in 0..300u32 {
        let label = (record % 10) as u8;
        bytes.push(label);
        // Each class a different flat colour per plane, with noise from the record number.
        for plane in 0..3u32 {
            let level = ((u32::from(label) * 25 + plane * 60 + record % 7) % 256) as u8;
            bytes.extend(std::iter::repeat_n(level, 1024));
        }
    }
    std::fs::write(dir.join("data_batch_1.bin"), &bytes).unwrap();
    std::fs::write(dir.join("test_batch.bin"), &bytes[..3073 * 50]).unwrap();
    let out = scratch_dir("cifar-out");
    let args = ["train", "--data", dir.to_str().unwrap(), "--steps", "20", "--out", out.to_str().unwrap()];
    let output = convscope(&args);
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(message.contains("300 train and 50 test images of 3×32×32"), "{message}");
    std::fs::write(dir.join("test_batch.bin"), &bytes[..3073 * 50 + 100]).unwrap();
    let output = convscope(&args);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("test_batch.bin") && message.contains("3073"), "{message}");
}

#[test]
fn a_backend_that_is_not_compiled_in_is_a_clear_error() {
    if cfg!(feature = "wgpu") {
        return;
    }
    let out = scratch_dir("no-wgpu-out");
    let output = convscope(&["train", "--backend", "wgpu", "--steps", "5", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--features wgpu"), "{}", stderr(&output));
    // The window refuses it the same way, before any window opens (so no display is needed here).
    let output = convscope(&["--backend", "wgpu", "--fresh"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("the wgpu backend is not compiled in"), "{}", stderr(&output));
}

/// The step and loss columns of a metrics.csv, from step `from` on.
fn losses_from(csv: &std::path::Path, from: u64) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(csv).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let mut columns = line.split(',');
            let step: u64 = columns.next().unwrap().parse().unwrap();
            (step, columns.nth(1).unwrap().to_owned())
        })
        .filter(|(step, _)| *step >= from)
        .collect()
}

#[test]
fn train_saves_checkpoints_and_a_resumed_run_continues_the_step_numbers_bit_identically() {
    let (straight, first, second) = (scratch_dir("cli-straight"), scratch_dir("cli-first"), scratch_dir("cli-second"));
    let run = |args: &[&str], out: &std::path::Path| {
        let mut all = vec!["train", "--stats-every", "50", "--out", out.to_str().unwrap()];
        all.extend_from_slice(args);
        let output = convscope(&all);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        output
    };
    run(&["--steps", "120"], &straight);
    run(&["--steps", "60", "--save-every", "25"], &first);
    let saved: Vec<String> =
        ["000025", "000050", "000060"].iter().map(|s| format!("checkpoint-step{s}.ckpt")).collect();
    for name in &saved {
        assert!(first.join(name).is_file(), "{name} in {:?}", std::fs::read_dir(&first).unwrap().collect::<Vec<_>>());
    }
    let checkpoint = first.join(&saved[2]);
    let output = run(&["--resume", checkpoint.to_str().unwrap(), "--steps", "60"], &second);
    assert_eq!(last_json_line(&output)["last_step"], 120);
    let resumed = losses_from(&second.join("metrics.csv"), 0);
    assert_eq!(resumed.first().map(|r| r.0), Some(61), "the resumed rows continue at 61");
    assert_eq!(resumed, losses_from(&straight.join("metrics.csv"), 61), "and match the run that never stopped");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(second.join("config.json")).unwrap()).unwrap();
    assert!(config["resumed_from"].as_str().unwrap().ends_with("checkpoint-step000060.ckpt"));

    // A damaged checkpoint: exit 2, the file and the fault named, nothing written over.
    let damaged = first.join("damaged.ckpt");
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    bytes.truncate(bytes.len() - 100);
    std::fs::write(&damaged, bytes).unwrap();
    let output = convscope(&["train", "--resume", damaged.to_str().unwrap(), "--out", second.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("damaged.ckpt") && stderr(&output).contains("cut short"), "{}", stderr(&output));
    assert_eq!(losses_from(&second.join("metrics.csv"), 0), resumed, "the earlier run's rows are untouched");
    // Another architecture on top of it is refused, naming both.
    let output = convscope(&["train", "--resume", checkpoint.to_str().unwrap(), "--arch", "mlp", "--steps", "1"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("its net is `ref-mnist`"), "{}", stderr(&output));
}

#[test]
fn a_killed_training_run_leaves_a_history_whose_complete_records_all_read_back() {
    let out = scratch_dir("cli-killed");
    let history = out.join("history.bin");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_convscope"))
        .args(["train", "--steps", "1000000", "--snapshot-every", "3", "--stats-every", "50", "--out"])
        .arg(&out)
        .env("RAYON_NUM_THREADS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it record a few dozen snapshots, then kill it (SIGKILL: no chance to finish a record).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&history).map_or(0, |m| m.len()) < 4 << 20 {
        assert!(std::time::Instant::now() < deadline, "the history did not grow");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let read = convscope::history::read_history(&history).unwrap();
    let mut snapshots = Vec::new();
    let mut rows = Vec::new();
    for event in &read.events {
        match event {
            convscope::protocol::WorkerEvent::Snapshot(s) => snapshots.push(s.step),
            convscope::protocol::WorkerEvent::Metrics(batch) => rows.extend(batch.iter().map(|r| r.step)),
            _ => {}
        }
    }
    assert!(matches!(read.events[0], convscope::protocol::WorkerEvent::Started(_)), "the net comes first");
    assert!(snapshots.len() >= 10, "{} snapshots", snapshots.len());
    assert!(snapshots.iter().all(|s| s % 3 == 0), "{snapshots:?}");
    // Every step up to the last complete record, in order, none missing.
    assert_eq!(rows, (1..=rows.len() as u64).collect::<Vec<_>>());
    assert!(rows.len() as u64 >= *snapshots.last().unwrap());
}

#[test]
fn a_recorded_run_becomes_a_timelapse_gif_and_a_bad_record_is_refused() {
    let out = scratch_dir("cli-timelapse");
    let output = convscope(&["train", "--steps", "60", "--snapshot-every", "10", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let gif = out.join("conv1.gif");
    let output = convscope(&["timelapse", out.to_str().unwrap(), "--out", gif.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(last_json_line(&output)["frames_available"], 6);
    let mut decoder = gif::DecodeOptions::new().read_info(std::fs::File::open(&gif).unwrap()).unwrap();
    let mut frames = 0;
    while decoder.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 6, "one frame per recorded snapshot");
    // An APNG when the name says so: the same six frames, in a PNG that still shows its first frame anywhere.
    let apng = out.join("conv1.png");
    let output = convscope(&["timelapse", out.to_str().unwrap(), "--out", apng.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let mut reader =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&apng).unwrap())).read_info().unwrap();
    assert_eq!(reader.info().animation_control().map(|a| a.num_frames), Some(6));
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let mut apng_frames = 0;
    while reader.next_frame(&mut buffer).is_ok() {
        apng_frames += 1;
    }
    assert_eq!(apng_frames, 6);
    assert_eq!(image::open(&apng).unwrap().width(), image::open(&gif).unwrap().width(), "the same frames");
    // A history cut in the middle of a record still makes a timelapse of the records before it.
    let bytes = std::fs::read(out.join("history.bin")).unwrap();
    let cut = out.join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let output = convscope(&["timelapse", cut.to_str().unwrap(), "--out", gif.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("cut short"), "{}", stderr(&output));
    // Not a history, or a layer it does not have: exit 2, naming what is wrong.
    let output = convscope(&["timelapse", "Cargo.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not a convscope history"), "{}", stderr(&output));
    let output = convscope(&["timelapse", out.to_str().unwrap(), "--layer", "conv7", "--out", gif.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("conv7") && stderr(&output).contains("conv1, conv2"), "{}", stderr(&output));
}
