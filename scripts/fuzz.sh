#!/usr/bin/env bash
# Coverage-guided fuzzing of convscope's parsers with cargo-afl (AFL++), one target at a time.
#
#   scripts/fuzz.sh [EXECS_PER_TARGET] [TARGET...]     default: 1000000 executions, every target
#
# Targets (fuzz/src/targets/): idx cifar image spec settings checkpoint history — fuzz/README.md says what
# each harness does. Installs cargo-afl (and builds its AFL++) when missing, builds the fuzz crate
# instrumented, runs `afl-fuzz -E EXECS` per target from the seeds in fuzz/corpus/<target>/ into
# fuzz/out/<target>/ (gitignored), and prints a table of executions, crashes, hangs, corpus size and speed.
# Exits 1 when any target saved a crash (the inputs are in fuzz/out/<target>/default/crashes/).
#
# Environment:
#   CARGO_TARGET_DIR   the instrumented build (default fuzz/target-afl; the first build takes 20–40 min on
#                      2 cores, since burn and eframe are instrumented too)
#   FUZZ_OUT           output folder (default fuzz/out); a previous run's folder with crashes is kept aside
#   FUZZ_TIMEOUT_MS    afl-fuzz -t: one execution longer than this is a hang (default 1000)
#   FUZZ_MAX_SECONDS   afl-fuzz -V: also stop a target after this many seconds of fuzzing (default: no limit)
#   FUZZ_NICE          niceness of the build and of afl-fuzz (default 19: the machine stays usable)
#   FUZZ_SKIP_BUILD=1  use the binaries already in CARGO_TARGET_DIR
#   CONVSCOPE_FUZZ_DECODER_PANICS=1, CONVSCOPE_FUZZ_SKIP_KNOWN=1   reach the image harness (fuzz/README.md)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/fuzz"
all_targets=(idx cifar image spec settings checkpoint history)

execs="${1:-1000000}"
if [[ $# -gt 0 ]]; then shift; fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=("${all_targets[@]}"); fi
if ! [[ "$execs" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [EXECS_PER_TARGET] [TARGET...]   (targets: ${all_targets[*]})" >&2
    exit 2
fi
for target in "${targets[@]}"; do
    if [[ ! " ${all_targets[*]} " == *" $target "* ]]; then
        echo "fuzz.sh: unknown target '$target' (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz_dir/target-afl}"
out_root="${FUZZ_OUT:-$fuzz_dir/out}"
timeout_ms="${FUZZ_TIMEOUT_MS:-1000}"
niceness="${FUZZ_NICE:-19}"
run_nice=(nice -n "$niceness")

# cargo-afl, and the AFL++ it builds for this toolchain (run inside fuzz/ so rust-toolchain.toml applies).
cd "$fuzz_dir"
if ! cargo afl --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-afl" >&2
    "${run_nice[@]}" cargo install cargo-afl --locked
fi
if ! config_log="$("${run_nice[@]}" cargo afl config --build 2>&1)"; then
    if ! grep -q "already built" <<<"$config_log"; then
        echo "$config_log" >&2
        echo "fuzz.sh: building AFL++ failed (it needs a C compiler and make)" >&2
        exit 1
    fi
fi
echo "fuzz.sh: $(cargo afl --version)" >&2

if [[ "${FUZZ_SKIP_BUILD:-0}" != 1 ]]; then
    echo "fuzz.sh: building the instrumented targets into $CARGO_TARGET_DIR" >&2
    build_start=$SECONDS
    "${run_nice[@]}" cargo afl build --release
    echo "fuzz.sh: built in $((SECONDS - build_start)) s" >&2
fi

# No core-dump or CPU-frequency set-up is possible in a VM or container; AFL++ only warns about them here.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
# The image target decodes through rayon: one thread, so one afl-fuzz uses one core.
export RAYON_NUM_THREADS=1
if [[ -d /dev/shm ]]; then export AFL_TMPDIR=/dev/shm; fi

mkdir -p "$out_root"
declare -A wall
crashed=0
for target in "${targets[@]}"; do
    out="$out_root/$target"
    if [[ -d "$out" ]]; then
        if compgen -G "$out/default/crashes/id:*" >/dev/null; then
            kept="$out.$(date +%Y%m%d-%H%M%S)"
            echo "fuzz.sh: keeping the previous $target run (it has crashes) as $kept" >&2
            mv "$out" "$kept"
        else
            rm -rf "$out"
        fi
    fi
    args=(-i "$fuzz_dir/corpus/$target" -o "$out" -E "$execs" -t "$timeout_ms" -m none)
    if [[ -f "$fuzz_dir/dict/$target.dict" ]]; then args+=(-x "$fuzz_dir/dict/$target.dict"); fi
    if [[ -n "${FUZZ_MAX_SECONDS:-}" ]]; then args+=(-V "$FUZZ_MAX_SECONDS"); fi
    echo "fuzz.sh: fuzzing $target for $execs executions (log: $out.log)" >&2
    start=$SECONDS
    status=0
    "${run_nice[@]}" cargo afl fuzz "${args[@]}" -- "$CARGO_TARGET_DIR/release/$target" >"$out.log" 2>&1 || status=$?
    wall[$target]=$((SECONDS - start))
    if [[ $status -ne 0 ]]; then
        echo "fuzz.sh: afl-fuzz failed for $target (exit $status); the end of $out.log:" >&2
        tail -n 30 "$out.log" >&2
        crashed=1
    fi
    # The harnesses' scratch folders (the image and settings targets write each input to a file).
    rm -rf /dev/shm/convscope-fuzz-"$target"-* 2>/dev/null || true
done

stat_of() { sed -n "s/^$2 *: *//p" "$1" 2>/dev/null | head -n 1; }
printf '\n%-11s %12s %8s %6s %7s %9s %7s\n' target executions crashes hangs corpus exec/s wall_s
for target in "${targets[@]}"; do
    stats="$out_root/$target/default/fuzzer_stats"
    if [[ ! -f "$stats" ]]; then
        printf '%-11s %12s\n' "$target" "no fuzzer_stats (see $out_root/$target.log)"
        crashed=1
        continue
    fi
    execs_done="$(stat_of "$stats" execs_done)"
    crashes="$(stat_of "$stats" saved_crashes)"
    hangs="$(stat_of "$stats" saved_hangs)"
    corpus="$(stat_of "$stats" corpus_count)"
    runtime="$(stat_of "$stats" run_time)"
    speed="$(awk -v n="$execs_done" -v t="$runtime" 'BEGIN { if (t > 0) printf "%.0f", n / t; else print "-" }')"
    printf '%-11s %12s %8s %6s %7s %9s %7s\n' "$target" "$execs_done" "$crashes" "$hangs" "$corpus" "$speed" \
        "${wall[$target]:--}"
    if [[ "${crashes:-0}" != 0 ]]; then
        crashed=1
        echo "  crashing inputs: $out_root/$target/default/crashes/ (reproduce: cargo build --release --bin replay," \
            "then replay $target FILE)" >&2
    fi
done
exit "$crashed"
