//! Faults and hostile input, each run as a user would meet it: signals during `train`, a full disk, an output
//! folder that cannot be made, absurd thread counts and nets that would not fit in memory, a one-class folder,
//! and flags that only mean something with `--data`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{convscope, last_json_line, scratch_dir, stderr};

/// A child process that is killed if the test fails before it ends (a stray million-step run would hold the
/// cores for the rest of the suite).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Starts `train` with `args` into `out` (its output into files there, so no pipe can fill and stall it) and
/// waits, at most a minute, until `started` holds.
fn spawn_train(out: &std::path::Path, args: &[&str], started: impl Fn() -> bool) -> Running {
    let file = |name: &str| Stdio::from(std::fs::File::create(out.join(name)).unwrap());
    let child = Command::new(env!("CARGO_BIN_EXE_convscope"))
        .arg("train")
        .args(args)
        .args(["--snapshot-every", "0", "--out"])
        .arg(out)
        .env("RAYON_NUM_THREADS", "2")
        .stdout(file("stdout.txt"))
        .stderr(file("stderr.txt"))
        .spawn()
        .unwrap();
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started() {
        assert!(Instant::now() < deadline, "the run did not get under way");
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

/// A long `train` into `out`, once it has written rows (the run is really under way).
fn long_run(out: &std::path::Path) -> Running {
    let rows_written = || std::fs::metadata(out.join("metrics.csv")).map_or(0, |m| m.len()) >= 16 << 10;
    spawn_train(out, &["--steps", "1000000", "--save-every", "1000000"], rows_written)
}

fn signal(running: &Running, name: &str) {
    let sent = Command::new("kill").args(["-s", name, &running.0.id().to_string()]).status().unwrap();
    assert!(sent.success());
}

/// Waits (at most a minute) for the run to end; its exit code, standard output and standard error.
fn finish(mut running: Running, out: &std::path::Path) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    (status.code(), read("stdout.txt"), read("stderr.txt"))
}

#[cfg(unix)]
#[test]
fn a_signal_stops_train_after_the_step_with_every_row_the_images_and_the_summary() {
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let out = scratch_dir(&format!("faults-sig{name}"));
        let running = long_run(&out);
        signal(&running, name);
        let (status, stdout, stderr) = finish(running, &out);
        assert_eq!(status, Some(code), "{stderr}");
        assert!(stderr.contains(&format!("stopped by SIG{name} after")), "{stderr}");
        let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(summary["stopped_by"], format!("SIG{name}"));
        let steps = summary["steps"].as_u64().unwrap();
        // With --save-every, a checkpoint of the step it stopped at, to resume from.
        assert!(out.join(convscope::train::checkpoint_file_name(steps)).exists(), "no checkpoint at step {steps}");
        assert!(steps > 0 && steps < 1_000_000, "{summary}");
        assert!(summary["test_accuracy"].as_f64().unwrap() > 0.0, "{summary}");
        // Every step done has its row, the last one whole: nothing was left in a buffer.
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        assert!(csv.ends_with('\n'));
        let last: u64 = csv.lines().last().unwrap().split(',').next().unwrap().parse().unwrap();
        assert_eq!((csv.lines().count() as u64 - 1, last), (steps, steps));
        for image in ["conv1_filters.png", "conv1_gradients.png"] {
            assert!(image::open(out.join(image)).is_ok(), "{image} is a whole PNG");
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_an_output_fault_with_no_torn_row_and_no_half_image() {
    // /dev/full takes the file but fails every write with "no space left on device".
    let out = scratch_dir("faults-full");
    std::os::unix::fs::symlink("/dev/full", out.join("metrics.csv")).unwrap();
    let output = convscope(&["train", "--steps", "300", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("metrics.csv") && message.contains("No space left on device"), "{message}");
    assert!(message.contains("the run stopped at step"), "{message}");
    // Nothing half-written is left: no image, no temporary file.
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    let expected = ["metrics.csv", "config.json", "history.bin", "data.json"];
    assert!(left.iter().all(|name| expected.iter().any(|e| name == *e)), "{left:?}");

    // Images go through a temporary file and a rename. A rename that fails (here: a folder where the file
    // should go) leaves what was there and no temporary file.
    let out = scratch_dir("faults-full-image");
    let blocked = out.join("conv1_filters.png");
    std::fs::create_dir_all(blocked.join("inside")).unwrap();
    assert!(convscope::files::write_atomically(&blocked, b"png").is_err());
    assert!(blocked.join("inside").is_dir());
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["conv1_filters.png"], "no temporary file is left");
}

#[test]
fn an_output_folder_that_cannot_be_made_is_exit_4_naming_it() {
    // A file where the folder should be: no user, root included, can create a folder inside it.
    let dir = scratch_dir("faults-readonly");
    let blocker = dir.join("file");
    std::fs::write(&blocker, "x").unwrap();
    let out = blocker.join("out");
    let output = convscope(&["train", "--steps", "3", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains(out.to_str().unwrap()), "{}", stderr(&output));
}

// The default budget comes from /proc/meminfo.
#[cfg(target_os = "linux")]
#[test]
fn thread_counts_and_nets_beyond_the_machine_are_refused_before_any_work() {
    let out = scratch_dir("faults-limits");
    let started = Instant::now();
    let output = convscope(&["train", "--threads", "2000", "--steps", "1", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--threads 2000 is out of range"), "{}", stderr(&output));
    // 21,000 filters passed the per-example cap, then took over 10 GB at the first step; its output layer alone
    // has 165 million weights.
    let output =
        convscope(&["train", "--arch", "conv 21000 3x3 pad 1", "--steps", "1", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("the output layer would connect"), "{}", stderr(&output));
    // Pooled, it plans, and is refused by its memory estimate (about 2 TB in batches of 4096).
    let huge = ["train", "--arch", "conv 21000 3x3 pad 1, pool 2", "--batch-size", "4096", "--steps", "1"];
    let output = convscope(&huge);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("this net needs about") && message.contains("allowed (half of the"), "{message}");
    // --max-memory sets the budget: the reference net in batches of 4096 needs more than 64 MiB.
    let output = convscope(&["train", "--batch-size", "4096", "--max-memory", "100M", "--steps", "1"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("use a batch size of"), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(60), "refused at once, not after trying");
    // The same budget bounds what a data folder may decode into.
    let folder = scratch_dir("faults-big-images");
    for class in ["a", "b"] {
        std::fs::create_dir(folder.join(class)).unwrap();
        for index in 0..3 {
            image::GrayImage::from_pixel(8, 8, image::Luma([index * 40]))
                .save(folder.join(class).join(format!("{index}.png")))
                .unwrap();
        }
    }
    let big =
        ["train", "--data", folder.to_str().unwrap(), "--image-size", "1024", "--max-memory", "4M", "--steps", "1"];
    let output = convscope(&big);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("6 images of 1×1024×1024 take 6.0 MiB, more than the 4.0 MiB allowed"),
        "{}",
        stderr(&output)
    );
    let output = convscope(&["train", "--arch", &"dense 4, ".repeat(70), "--steps", "1"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("more than 64 layers"), "{}", stderr(&output));
}

#[test]
fn data_flags_without_data_and_bad_numbers_get_clear_messages() {
    let output = convscope(&["train", "--image-size", "64", "--steps", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--data <PATH>"), "{}", stderr(&output));
    let output = convscope(&["train", "--init", "normal:1e308", "--steps", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("0 < SIGMA ≤ 100"), "{}", stderr(&output));
    // A divergence is blamed on what caused it, and numbers print short.
    let output = convscope(&["train", "--weight-decay", "1e308", "--steps", "20"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("the weight decay 1e308 is far too strong"), "{}", stderr(&output));
    let output = convscope(&["train", "--init", "normal:50", "--steps", "20"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("initial weights (init normal:50.0) are far too large"), "{}", stderr(&output));
    let output = convscope(&["train", "--lr", "1e308", "--steps", "20"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("the learning rate 1e308 is probably too high, try 1e307"), "{}", stderr(&output));
    // No step, no loss.
    let out = scratch_dir("faults-zero");
    let output = convscope(&["train", "--steps", "0", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(last_json_line(&output)["train_loss"].is_null());
}

#[cfg(unix)]
#[test]
fn a_second_signal_a_second_later_ends_train_at_once_even_inside_a_long_step() {
    // Steps of a few seconds each: the first signal asks for a stop after the step, the second ends it now.
    let out = scratch_dir("faults-second-signal");
    let heavy = ["--arch", "conv 128 3x3 pad 1, conv 128 3x3 pad 1", "--batch-size", "256", "--steps", "50"];
    let running = spawn_train(&out, &heavy, || out.join("config.json").exists());
    signal(&running, "INT");
    std::thread::sleep(Duration::from_millis(1300));
    signal(&running, "INT");
    let second = Instant::now();
    let (status, stdout, _) = finish(running, &out);
    assert_eq!(status, Some(130));
    assert!(second.elapsed() < Duration::from_secs(2), "ended {:?} after the second signal", second.elapsed());
    assert!(stdout.is_empty(), "ended at once, before any summary: {stdout}");
}

/// A write that fails part-way through a row (the file-size limit reached, as a quota would) leaves
/// `metrics.csv` cut back to its last whole row, and the run ends as an output fault. `/dev/full` cannot show
/// this: nothing is ever written there, so there is nothing to cut back.
#[test]
#[allow(unsafe_code)]
fn a_row_cut_by_the_file_size_limit_is_taken_back_and_the_run_exits_4() {
    use std::os::unix::process::CommandExt;
    let dir = scratch_dir("fault-fsize");
    let mut command = Command::new(env!("CARGO_BIN_EXE_convscope"));
    command
        .args(["train", "--steps", "600", "--snapshot-every", "0", "--out", dir.to_str().unwrap()])
        .env("RAYON_NUM_THREADS", "2");
    // SAFETY: between fork and exec only async-signal-safe calls are made (signal, setrlimit), touching no
    // memory of the parent. An ignored SIGXFSZ stays ignored across exec, so a write past the limit fails with
    // EFBIG instead of killing the process.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit { rlim_cur: 40_000, rlim_max: 40_000 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    let output = command.output().unwrap();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{message}");
    assert!(message.contains("metrics.csv"), "{message}");
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(text.len() <= 40_000 && text.ends_with('\n'), "{} bytes, ending {:?}", text.len(), text.chars().last());
    let mut lines = text.lines();
    let columns = lines.next().unwrap().split(',').count();
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() > 10 && rows.len() < 600, "{} rows", rows.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.split(',').count(), columns, "row {} is whole", i + 1);
        assert!(row.starts_with(&format!("{},", i + 1)), "rows 1… in order: {row}");
    }
}
