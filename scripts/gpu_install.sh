#!/usr/bin/env bash
# Offline install from a folder made by scripts/gpu_wheels.sh into a private site folder; sourced by the GPU scripts.
#
#   source scripts/gpu_install.sh DIR PYTHON     # exports PYTHONPATH (and WARP_CACHE_PATH when DIR has a cache)
#
# Every *.whl (--no-deps), warp_site.tar.xz + warp.so.xz.partNN (checked against warp.so.sha256), and
# warp_cache_*.tar.xz (Warp kernels compiled ahead of time, python -m anyskill.sim.warp_cache) when present.
gpu_install() {
  local stage="$1" py="$2" site="${ANYSKILL_SITE:-/tmp/anyskill_site}" t
  t=$(date +%s.%N)
  mkdir -p "$site/warp/bin"
  "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$stage"/*.whl || return 3
  if [ -f "$stage/warp_site.tar.xz" ]; then
    tar -xJf "$stage/warp_site.tar.xz" -C "$site" || return 3
    cat "$stage"/warp.so.xz.part[0-9][0-9] | xz -d -T0 > "$site/warp/bin/warp.so" || return 3
    if [ -f "$stage/warp.so.sha256" ]; then
      (cd "$site/warp/bin" && sha256sum -c --quiet "$stage/warp.so.sha256") || return 3
    fi
  fi
  for c in "$stage"/warp_cache_*.tar.xz; do
    [ -e "$c" ] || continue
    export WARP_CACHE_PATH="${WARP_CACHE_PATH:-/tmp/anyskill_warp_cache}"
    mkdir -p "$WARP_CACHE_PATH" && tar -xJf "$c" -C "$WARP_CACHE_PATH" || return 3
  done
  export PYTHONPATH="$site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_install: $stage installed into $site in $(awk "BEGIN{print $(date +%s.%N) - $t}") s" >&2
}
gpu_install "$@"
