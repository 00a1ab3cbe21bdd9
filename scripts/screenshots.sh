#!/usr/bin/env bash
# Takes real screenshots of the running app under Xvfb (1280×800, Mesa llvmpipe) after some seconds of
# training, into screenshots/. Needs: xvfb libgl1-mesa-dri libegl-mesa0 libxkbcommon-x11-0 (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-12}"
cargo build --release --locked
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
mkdir -p screenshots
xvfb-run -a -s "-screen 0 1280x800x24" \
    target/release/convscope --fresh --screenshot screenshots/window.png --screenshot-after "$seconds"
echo "saved screenshots/window.png"
