#!/usr/bin/env bash
# Headless rendering needs an EGL provider (Mesa's software EGL on CPU machines, NVIDIA's on GPU machines).
# Installs the Debian/Ubuntu packages when they are missing and we are root; otherwise says what to install.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so\|libEGL_nvidia.so'; then
  exit 0
fi
pkgs="libegl1 libegl-mesa0 libgl1-mesa-dri"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing EGL for headless rendering: $pkgs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
else
  echo "warning: no EGL provider found; headless rendering will fail." >&2
  echo "  Debian/Ubuntu: sudo apt-get install $pkgs   (conda: see environment.yml)" >&2
fi
