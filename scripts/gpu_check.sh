#!/usr/bin/env bash
# One-shot GPU verification (issue 21): install what is missing, then run `anyskill gpu-check` (anyskill/gpu/check.py).
#
#   scripts/gpu_check.sh OUT_DIR [--dry-run] [--wheels DIR] [--gl-debs DIR] [gpu-check options]
#
# Python: .venv/bin/python when it exists, else a new .venv that sees the system's packages (a GPU image's torch).
# Install (only when anyskill, mujoco_warp, open_clip or rl_games cannot be imported):
#   default        pip install -e ".[gpu]" from the package registries;
#   --wheels DIR   offline, from the folder scripts/gpu_wheels.sh makes (the one scripts/gpu_train_llc.sh --stage
#                  takes): source scripts/gpu_install.sh DIR (wheels, Warp, its kernel cache; PYTHONPATH).
# Headless rendering: --gl-debs DIR unpacks the EGL/GL .deb files of DIR into / when no EGL library is found (a
# machine without a registry); else scripts/system_deps.sh (apt). NVIDIA's EGL vendor file is used where present.
# --work DIR: where runs, checkpoints and logs go (default: a new folder under $TMPDIR). Everything else after
# OUT_DIR goes to anyskill gpu-check (--dry-run, --only, --timeout STEP=S, --train-seconds STEP=S, --total, ...).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
if [ $# -lt 1 ]; then
  sed -n '2,14p' "$0"
  exit 2
fi
OUT="$1"; shift
WHEELS=""; GLDEBS=""; WORK=""; PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS="$2"; shift 2 ;;
    --gl-debs) GLDEBS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
mkdir -p "$OUT"
if [ -n "$WORK" ]; then mkdir -p "$WORK"; else WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_XXXXXX")"; fi
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYTHONUNBUFFERED=1

# --- headless rendering
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL'; then
  if [ -n "$GLDEBS" ]; then
    for f in "$GLDEBS"/*.deb; do dpkg -x "$f" / ; done
    ldconfig
  else
    ANYSKILL_BROWSER_DEPS=0 bash scripts/system_deps.sh || echo "gpu_check: no EGL installed; rendering steps will fail" >&2
  fi
fi
NV_EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -f "$NV_EGL" ] && [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ]; then
  export __EGL_VENDOR_LIBRARY_FILENAMES="$NV_EGL"
fi

# --- Python environment
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  python3 -m venv --system-site-packages .venv || { echo "gpu_check: cannot create .venv" >&2; exit 2; }
  PY=.venv/bin/python
fi
t0=$(date +%s.%N)
status=present; method=none
if ! "$PY" -c "import anyskill, mujoco_warp, open_clip, rl_games" >/dev/null 2>&1; then
  if [ -n "$WHEELS" ]; then
    method=wheels
    # shellcheck source=scripts/gpu_install.sh
    { source scripts/gpu_install.sh "$WHEELS" "$PY"; } >"$WORK/install.log" 2>&1
  else
    method=registry
    "$PY" -m pip install -q -e ".[gpu]" >"$WORK/install.log" 2>&1
  fi
  if [ $? -eq 0 ]; then status=installed; else status=failed; fi
fi
"$PY" - "$WORK/install.json" "$status" "$method" "$t0" "$WORK/install.log" <<'EOF'
import json, pathlib, sys, time
path, status, method, t0, log = sys.argv[1:]
text = pathlib.Path(log).read_text(errors="replace") if pathlib.Path(log).is_file() else ""
json.dump({"status": status, "method": method, "wall_s": round(time.time() - float(t0), 1), "log_tail": text[-2000:]},
          open(path, "w"), indent=1)
EOF
if [ "$status" = failed ]; then
  echo "gpu_check: install failed (log: $WORK/install.log)" >&2
  tail -20 "$WORK/install.log" >&2
fi
exec "$PY" -m anyskill.cli gpu-check "$OUT" --work "$WORK" --install-record "$WORK/install.json" ${PASS[@]+"${PASS[@]}"}
