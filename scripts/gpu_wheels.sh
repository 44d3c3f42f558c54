#!/usr/bin/env bash
# Wheels for `scripts/gpu_check.sh --wheels DIR` on a GPU machine that has Python and PyTorch but no registry.
#
#   scripts/gpu_wheels.sh DIR [PYTHON_VERSION]      # default 3.12; x86-64 manylinux wheels, no dependencies
#
# Downloads the packages the GPU paths need beyond a PyTorch image (MuJoCo, MuJoCo Warp, Warp, open_clip,
# rl-games and their small dependencies: ~170 MB, warp-lang ~150 MB of it) and splits every file over PART_MIB
# (default 36) MiB into NAME.partNN, which gpu_check.sh joins again. Where a call may carry at most 64 MiB with the
# ~24 MB work tree, the folder travels over several calls to a machine that keeps ignored files between calls
# (each call carrying some parts and copying them to one folder there), and the last call runs gpu_check.sh.
set -euo pipefail
DIR="${1:?usage: scripts/gpu_wheels.sh DIR [PYTHON_VERSION]}"
PYVER="${2:-3.12}"
PART_MIB="${PART_MIB:-36}"
# the versions the test suite runs with (mujoco-studio, the viewer, is left out: nothing here imports it)
PKGS="mujoco==4.0.0 mujoco-core==4.0.0 glfw pyopengl mujoco-warp==4.0.0 warp-lang==1.19.0 open_clip_torch==3.3.0
      ftfy wcwidth rl-games==1.6.5 gymnasium farama-notifications tensorboardX setproctitle watchdog"
mkdir -p "$DIR"
plat=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plat="$plat --platform $p"
done
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp $plat \
  -d "$DIR" $PKGS
for f in "$DIR"/*.whl; do
  if [ "$(stat -c %s "$f")" -gt $((PART_MIB * 1024 * 1024)) ]; then
    split -b "${PART_MIB}M" -d -a 2 "$f" "$f.part"
    rm "$f"
  fi
done
ls -la "$DIR"
