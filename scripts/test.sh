#!/usr/bin/env bash
# The whole test set-up on a fresh Debian machine with a Rust toolchain: installs the system packages the
# tests use (when run as root, or through sudo), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Packages the suite needs at run time: Xvfb and Mesa for the window test, lavapipe (mesa-vulkan-drivers) for
# the rendered snapshot. None are needed to build: eframe loads X11, GL and Vulkan at run time.
packages=(xvfb xauth libgl1-mesa-dri libegl-mesa0 libegl1 libgl1 libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 libx11-xcb1 mesa-vulkan-drivers libvulkan1)
if ((${#packages[@]})); then
    missing=()
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
fi

# Mesa warns without a private runtime folder; give it one.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
fi

# What the tests need is installed now: a test that finds it missing fails instead of skipping.
export CONVSCOPE_TESTS_MUST_RUN=1
# The kernels crate has tests of its own (the FMA peak, the statistics pass on every instruction set).
cargo test --locked --workspace "$@"
