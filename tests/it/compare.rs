//! `convscope compare` run as a process: two arms over seeds, the JSON line, compare.csv, compare.json and
//! compare.png, and the arms' flags refused with a pointer to the fault.

use std::path::Path;

use crate::support::{convscope, last_json_line, scratch_dir, stderr};

/// A net small enough that four short runs take a second or two in a test build.
const SMALL: &str = "conv 4 5x5, pool 2, dense 16";

fn csv_rows(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("compare.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("arm,seed,step,loss,train_accuracy,test_accuracy,test_step"));
    lines.map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

#[test]
fn a_faster_rate_wins_in_every_seed_pair_and_every_output_is_written() {
    let dir = scratch_dir("compare-lr");
    let out = dir.to_str().unwrap();
    let args = ["compare", "--arch", SMALL, "--a", "--lr 0.0005", "--b", "--lr 0.05", "--seeds", "2", "--steps", "60"];
    let output = convscope(&[&args[..], &["--out", out]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    assert_eq!(summary["a"]["flags"], "--lr 0.0005");
    assert_eq!(summary["b"]["flags"], "--lr 0.05");
    assert_eq!(summary["seeds"], serde_json::json!([1, 2]));
    assert_eq!(summary["a"]["per_seed"].as_array().unwrap().len(), 2);
    let paired = &summary["paired_difference"];
    assert_eq!(paired["pairs"], 2);
    assert!(paired["loss_mean"].as_f64().unwrap() < -0.3, "B's loss is far lower: {paired}");
    assert_eq!(paired["b_higher_test_accuracy"], 2, "{paired}");
    let (a, b) =
        (summary["a"]["test_accuracy_mean"].as_f64().unwrap(), summary["b"]["test_accuracy_mean"].as_f64().unwrap());
    assert!((paired["test_accuracy_mean"].as_f64().unwrap() - (b - a)).abs() < 1e-5);
    assert!(stderr(&output).contains("B higher in 2 of 2 seed pairs"), "{}", stderr(&output));

    let rows = csv_rows(&dir);
    assert_eq!(rows.len(), 2 * 2 * 60, "one row per step, arm and seed");
    assert_eq!(rows[0][..3], ["A", "1", "1"]);
    assert_eq!(rows.last().unwrap()[..3], ["B", "2", "60"]);
    let last_test: f64 = rows.last().unwrap()[5].parse().unwrap();
    assert!((last_test - summary["b"]["per_seed"][1]["test_accuracy"].as_f64().unwrap()).abs() < 1e-6);
    let configs: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("compare.json")).unwrap()).unwrap();
    assert_eq!(configs[0]["config"]["lr"], 0.0005);
    assert_eq!(configs[1]["config"]["lr"], 0.05);
    let chart = image::open(dir.join("compare.png")).unwrap();
    assert_eq!((chart.width(), chart.height()), (1200, 520));
}

#[test]
fn identical_arms_give_identical_runs_because_a_pair_shares_its_seed() {
    let dir = scratch_dir("compare-same");
    let args = ["compare", "--arch", SMALL, "--a", "", "--b", "", "--seeds", "2", "--steps", "25", "--seed", "7"];
    let output = convscope(&[&args[..], &["--out", dir.to_str().unwrap()]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("the two arms have the same configuration"), "{}", stderr(&output));
    let summary = last_json_line(&output);
    assert_eq!(summary["seeds"], serde_json::json!([7, 8]), "--seed gives the first seed");
    assert_eq!(summary["paired_difference"]["loss_mean"], 0.0);
    assert_eq!(summary["paired_difference"]["loss_std"], 0.0);
    let rows = csv_rows(&dir);
    let (a, b): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r[0] == "A");
    let strip = |rows: Vec<&Vec<String>>| rows.into_iter().map(|r| r[1..].to_vec()).collect::<Vec<_>>();
    let (a, b) = (strip(a), strip(b));
    assert_eq!(a, b, "every row of arm B equals arm A's");
    assert_ne!(a[0][2], a[25][2], "while the two seeds differ");
}

#[test]
fn a_preset_fills_both_arms_and_its_knob_survives_a_shared_flag() {
    let dir = scratch_dir("compare-preset");
    // --activation tanh overrides the preset's sigmoid in both arms, except arm B's knob (ReLU).
    let args = ["compare", "--preset", "sigmoid-vs-relu", "--arch", SMALL, "--activation", "tanh"];
    let output = convscope(&[&args[..], &["--seeds", "1", "--steps", "5", "--out", dir.to_str().unwrap()]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = last_json_line(&output);
    assert_eq!(summary["preset"], "sigmoid-vs-relu");
    assert_eq!(summary["b"]["flags"], "--preset sigmoid-vs-relu --activation relu");
    let configs: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("compare.json")).unwrap()).unwrap();
    assert_eq!(configs[0]["config"]["activation"], "tanh");
    assert_eq!(configs[1]["config"]["activation"], "relu");
    assert_eq!(configs[1]["config"]["arch"], SMALL);
}

#[test]
fn bad_arm_flags_exit_2_naming_the_arm_and_the_fault() {
    let dir = scratch_dir("compare-bad");
    let out = dir.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 6] = [
        (&["compare"], &["nothing tells the two arms apart", "--preset"]),
        (&["compare", "--a", "--activation"], &["--a \"--activation\"", "value"]),
        (&["compare", "--b", "--lr fast"], &["--b \"--lr fast\"", "fast"]),
        (&["compare", "--a", "--bogus 3"], &["--a \"--bogus 3\"", "--bogus"]),
        (&["compare", "--a", "--seed 3"], &["--seed goes outside --a and --b"]),
        (&["compare", "--a", "--arch \"conv 4 5x5", "--b", ""], &["unbalanced quotes"]),
    ];
    for (args, needles) in cases {
        let output = convscope(&[args, &["--out", out, "--steps", "1"]].concat());
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        for needle in needles {
            assert!(message.contains(needle), "{args:?}: `{needle}` in {message}");
        }
    }
    let output = convscope(&["compare", "--a", "--arch \"conv 4 9x9 bogus\"", "--b", "", "--out", out]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("arm A"), "{}", stderr(&output));
}
