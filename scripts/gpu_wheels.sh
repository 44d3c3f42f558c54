#!/usr/bin/env bash
# The install folder for a GPU machine that has Python and PyTorch but no registry
# (`scripts/gpu_train_llc.sh --stage DIR`, `scripts/gpu_check.sh --wheels DIR`).
#
#   scripts/gpu_wheels.sh DIR [PYTHON_VERSION]      # default 3.12; x86-64 manylinux wheels, no dependencies
#
# Downloads what the GPU paths need beyond a PyTorch image (MuJoCo, MuJoCo Warp, Warp, open_clip, rl-games and their
# small dependencies). Warp's wheel (149 MB) is the bulk, and a call to the device carries at most 64 MiB with the
# work tree: its package is kept without warp/bin/warp.so and warp-clang.so (Warp's CPU compiler, which a CUDA run
# does not need; Warp runs without its CPU device when it is missing) as warp_site.tar.xz, and warp.so (299 MB)
# travels xz-compressed (78 MB; ~4 min here) in PART_MIB (default 40) MiB pieces warp.so.xz.partNN with its sha256.
# With WARP_CACHE_ARCH set (e.g. 90), the Warp kernels of the humanoid's physics compiled ahead of time for that GPU
# are added as warp_cache_smNN.tar.xz (python -m anyskill.sim.warp_cache; ~4 min on 2 cores, 1.5 MB).
# Different calls can carry different pieces to a machine that keeps /tmp between calls.
set -euo pipefail
DIR="${1:?usage: scripts/gpu_wheels.sh DIR [PYTHON_VERSION]}"
PYVER="${2:-3.12}"
PART_MIB="${PART_MIB:-40}"
# the versions the test suite runs with (mujoco-studio, the viewer, is left out: nothing here imports it)
PKGS="mujoco==4.0.1 mujoco-core==4.0.1 glfw pyopengl mujoco-warp==4.0.0 warp-lang==1.19.0 open_clip_torch==3.3.0
      ftfy wcwidth rl-games==1.6.5 gymnasium farama-notifications tensorboardX setproctitle watchdog"
mkdir -p "$DIR"
plat=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plat="$plat --platform $p"
done
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp $plat \
  -d "$DIR" $PKGS
for wheel in "$DIR"/warp_lang-*.whl; do
  [ -e "$wheel" ] || continue
  tmp="$(mktemp -d)"
  python3 -m zipfile -e "$wheel" "$tmp"
  mv "$tmp/warp/bin/warp.so" "$DIR/warp.so"
  rm -f "$tmp/warp/bin/warp-clang.so"
  tar -C "$tmp" -cJf "$DIR/warp_site.tar.xz" .
  (cd "$DIR" && sha256sum warp.so > warp.so.sha256 && xz -9e -T1 warp.so &&
   split -b "${PART_MIB}M" -d -a 2 warp.so.xz warp.so.xz.part && rm warp.so.xz)
  rm -rf "$tmp" "$wheel"
done
if [ -n "${WARP_CACHE_ARCH:-}" ]; then
  PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
  "$PY" -m anyskill.sim.warp_cache "$DIR/warp_cache_sm${WARP_CACHE_ARCH}.tar.xz" --arch "$WARP_CACHE_ARCH"
fi
ls -la "$DIR"
