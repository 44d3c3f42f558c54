#!/usr/bin/env bash
# One-shot training of the tracking route on a GPU machine (issue 26): install, train tracker + student within a wall
# budget, evaluate, write <= 8 files of <= 16 MiB into OUT (anyskill/llc/tracking/oneshot.py says which).
#
#   scripts/gpu_train_llc.sh OUT [--stage DIR] [--budget S] [--resume DIR] [--dry-run] [--eval-timeout S]
#
# --stage DIR   offline install from a folder made by scripts/gpu_wheels.sh (a machine without a registry;
#               scripts/gpu_install.sh says what it holds), Warp's ahead-of-time kernel cache included.
#               Without --stage: whatever Python sees (pip install -e ".[gpu]" beforehand).
# --dry-run     the CPU rehearsal (Warp's CPU device, smoke sizes; the test suite runs it).
# Everything else goes to python -m anyskill.llc.tracking.oneshot. Set ANYSKILL_COMMIT to the commit you sent when the
# machine's copy of the tree has no (or stale) git metadata: the summary's provenance records it.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
if [ $# -lt 1 ]; then sed -n '2,14p' "$0"; exit 2; fi
export ANYSKILL_T0="${ANYSKILL_T0:-$(date +%s.%N)}" PYTHONUNBUFFERED=1 MUJOCO_GL="${MUJOCO_GL:-egl}"
OUT="$1"; shift
STAGE=""; PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) STAGE="$2"; shift 2 ;;
    *) PASS+=("$1"); shift ;;
  esac
done
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
if [ -n "$STAGE" ]; then
  # shellcheck source=scripts/gpu_install.sh
  source scripts/gpu_install.sh "$STAGE" "$PY" || { echo "gpu_train_llc: install from $STAGE failed" >&2; exit 3; }
else
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -m anyskill.llc.tracking.oneshot "$OUT" ${PASS[@]+"${PASS[@]}"} 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
