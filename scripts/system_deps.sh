#!/usr/bin/env bash
# Headless rendering needs an EGL provider (Mesa's software EGL on CPU machines, NVIDIA's on GPU machines); the
# playground's browser test (tests/test_playground_browser.py) drives Debian's chromium through chromium-driver.
# Installs the Debian/Ubuntu packages when they are missing and we are root; otherwise says what to install.
# ANYSKILL_BROWSER_DEPS=0 leaves the browser out (machines that only render, e.g. scripts/gpu_check.sh).
set -euo pipefail
pkgs=""
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so\|libEGL_nvidia.so'; then
  pkgs="libegl1 libegl-mesa0 libgl1-mesa-dri"
fi
if [ "${ANYSKILL_BROWSER_DEPS:-1}" != "0" ] && { ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; }; then
  pkgs="$pkgs chromium chromium-driver"
fi
pkgs="${pkgs# }"
if [ -z "$pkgs" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing system packages (headless rendering, browser test): $pkgs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
else
  case "$pkgs" in *libegl*) echo "warning: no EGL provider found; headless rendering will fail." >&2 ;; esac
  case "$pkgs" in *chromium*) echo "warning: chromium/chromedriver not found; the browser test is skipped." >&2 ;; esac
  echo "  Debian/Ubuntu: sudo apt-get install $pkgs   (conda: see environment.yml)" >&2
fi
