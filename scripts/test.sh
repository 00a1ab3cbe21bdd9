#!/usr/bin/env bash
# The whole test set-up on a fresh Debian machine with a Rust toolchain: installs the system packages the
# tests use (when run as root, or through sudo), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Packages the suite needs at run time (none are needed to build: eframe loads X11/GL at run time).
packages=()
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

cargo test --locked "$@"
