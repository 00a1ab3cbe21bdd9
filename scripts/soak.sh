#!/usr/bin/env bash
# Soak: the window under Xvfb at full training pace for a long time (default an hour), logging every minute the
# process's resident memory (RSS) and the frame times of that minute, to see that nothing grows or slows.
# Usage: scripts/soak.sh [SECONDS] [OUT_DIR]   (needs the packages scripts/test.sh installs; outside CI)
# Writes OUT_DIR/soak.csv (minute, rss_mib, frames, cpu_ms_p95, thread_cpu_ms_p95, steps) and prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-3600}"
out="${2:-soak-out}"
binary="${CONVSCOPE_BIN:-target/release/convscope}"
[ -x "$binary" ] || cargo build --release --locked
mkdir -p "$out"
rm -f "$out/frames.jsonl" "$out/soak.csv"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
# Its own settings and runs folder, so a soak neither reads nor fills the user's.
export HOME="$out/home"
mkdir -p "$HOME"

xvfb-run -a -s "-screen 0 1280x800x24" \
    "$binary" --fresh --pace full --quit-after "$seconds" --frame-stats "$out/frames.json" \
    --frame-log "$out/frames.jsonl" &
launcher=$!
# xvfb-run starts the window as a child; find it (it re-executes itself once, keeping its pid).
pid=""
for _ in $(seq 100); do
    pid="$(pgrep -n -f -- "--frame-log $out/frames.jsonl" | grep -v "^$launcher$" || true)"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "convscope" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { echo "soak: the window did not start" >&2; exit 1; }

echo "minute,rss_mib,frames,cpu_ms_p95,thread_cpu_ms_p95,steps" >"$out/soak.csv"
minute=0
while kill -0 "$pid" 2>/dev/null; do
    sleep 60
    minute=$((minute + 1))
    rss_kib="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    # The window's own line for the minute just ended (or the latest one, if it is a moment late).
    line="$(tail -n 1 "$out/frames.jsonl" 2>/dev/null || true)"
    frames="$(echo "$line" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip() or "{}"); print(d.get("frames",""), d.get("cpu_ms_p95",""), d.get("thread_cpu_ms_p95",""), d.get("steps",""), sep=",")')"
    echo "$minute,$((rss_kib / 1024)),$frames" | tee -a "$out/soak.csv"
done
wait "$launcher"
python3 - "$out/soak.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["rss_mib"] not in ("", "0")]
if not rows:
    sys.exit("soak: no samples")
def at(minute):
    best = min(rows, key=lambda r: abs(int(r["minute"]) - minute))
    return f'{best["rss_mib"]} MiB (minute {best["minute"]})'
p95 = sorted(float(r["cpu_ms_p95"]) for r in rows if r["cpu_ms_p95"] not in ("", "nan"))
print(f"RSS at 1 min {at(1)}, at 30 min {at(30)}, at the end {at(int(rows[-1]['minute']))}")
if p95:
    print(f"frame p95 per minute: best {p95[0]:.1f} ms, median {p95[len(p95)//2]:.1f} ms, worst {p95[-1]:.1f} ms")
PY
