#!/usr/bin/env bash
# Builds libevq (Release) and bench/timers_vs_peers.cpp, runs it pinned to
# CPU 1 with 3 repetitions, and prints: library | start ns | cancel ns | fire ns
# (median of the repetitions of the ns_per_op counter).
#
# Needs: g++, cmake, libbenchmark-dev, libev-dev, libuv1-dev, libasio-dev,
# liburing-dev (the static libevq links liburing), python3.
# Environment: BUILD_DIR (default /tmp/build-tpeer), CPU (default 1),
# REPS (default 3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-/tmp/build-tpeer}"
CPU="${CPU:-1}"
REPS="${REPS:-3}"
BIN="$BUILD_DIR/timers_vs_peers"
JSON="$BUILD_DIR/timers_vs_peers.json"

for pkg in libbenchmark-dev libev-dev libuv1-dev libasio-dev liburing-dev; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    echo "missing $pkg: apt-get install -y $pkg" >&2
    exit 1
  fi
done

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DEVQ_BUILD_TESTS=OFF -DEVQ_BUILD_DEMO=OFF -DEVQ_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$BUILD_DIR" --target evq >/dev/null

LIBEVQ="$(find "$BUILD_DIR" -name 'libevq.a' -print -quit)"
if [[ -z "$LIBEVQ" ]]; then
  echo "libevq.a not found under $BUILD_DIR" >&2
  exit 1
fi

g++ -std=c++20 -O2 -DNDEBUG -I"$ROOT/include" \
  "$ROOT/bench/timers_vs_peers.cpp" "$LIBEVQ" \
  -lev -luv -luring -lbenchmark -pthread -o "$BIN"

echo "running (pinned to CPU $CPU, $REPS repetitions; load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
taskset -c "$CPU" "$BIN" \
  --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
  --benchmark_out="$JSON" --benchmark_out_format=json >&2

python3 - "$JSON" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
rows = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].split("/")[0]          # BM_<lib>_<op>
    _, lib, op = name.split("_", 2)
    rows.setdefault(lib, {})[op] = b["ns_per_op"]   # already ns per timer
print(f"{'library':<8} | {'start ns':>9} | {'cancel ns':>9} | {'fire ns':>9}")
print(f"{'-'*8}-+-{'-'*9}-+-{'-'*9}-+-{'-'*9}")
for lib in ("evq", "libev", "libuv", "asio"):
    r = rows.get(lib, {})
    cell = lambda op: f"{r[op]:9.1f}" if op in r else f"{'-':>9}"
    print(f"{lib:<8} | {cell('start')} | {cell('cancel')} | {cell('fire')}")
print("(median of repetitions, ns per timer, 1,000,000 timers)")
EOF
