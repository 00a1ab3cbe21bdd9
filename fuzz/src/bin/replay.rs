//! Runs one target's harness on saved inputs, without AFL: `replay TARGET FILE…` (a folder stands for the
//! files in it). For reproducing a crash in a plain build — `cargo build --release --bin replay` — with a
//! backtrace (`RUST_BACKTRACE=1`); each file is named before it runs, so the last name printed is the culprit.

use std::path::PathBuf;

use convscope_fuzz::targets;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_default();
    let mut run: Box<dyn FnMut(&[u8])> = match target.as_str() {
        "idx" => Box::new(targets::idx::setup()),
        "cifar" => Box::new(targets::cifar::setup()),
        "image" => Box::new(targets::image::setup()),
        "spec" => Box::new(targets::spec::setup()),
        "settings" => Box::new(targets::settings::setup()),
        "checkpoint" => Box::new(targets::checkpoint::setup()),
        "history" => Box::new(targets::history::setup()),
        _ => {
            eprintln!("usage: replay TARGET FILE…  (TARGET: {})", targets::NAMES.join(", "));
            std::process::exit(2);
        }
    };
    let mut files = Vec::new();
    for arg in args.map(PathBuf::from) {
        match std::fs::read_dir(&arg) {
            Ok(entries) => {
                let mut inside: Vec<PathBuf> =
                    entries.flatten().map(|entry| entry.path()).filter(|p| p.is_file()).collect();
                inside.sort();
                files.extend(inside);
            }
            Err(_) => files.push(arg),
        }
    }
    for file in &files {
        eprintln!("{target}: {}", file.display());
        let bytes = std::fs::read(file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        run(&bytes);
    }
    eprintln!("{target}: {} inputs ran without a crash", files.len());
}
