#!/usr/bin/env bash
# evq benchmark suite: installs what is missing, builds, runs, writes bench/results/<date>/.
#   bench/run.sh [--quick | --smoke]      (./evq.sh bench forwards its arguments here)
# --quick takes about 3 minutes on 2 cores; the full run about 15.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${EVQ_BENCH_BUILD_DIR:-$root/build/bench}

packages=(cmake g++ make pkg-config python3 libuv1-dev libevent-dev libev-dev libasio-dev valgrind strace)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}" >/dev/null \
    || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}" >/dev/null; }
fi

# Standalone build of bench/ (it add_subdirectory()s the repository root for evq).
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 "$here/run.py" --bin-dir "$build/bin" "$@"
