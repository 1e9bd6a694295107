#!/usr/bin/env bash
# evq's one entry point for people and CI.
#   ./evq.sh demo   build and run the demo (the I/O models side by side)
#   ./evq.sh test   build and run every test: plain, ASan+UBSan and TSan builds
#   ./evq.sh bench  the benchmark suite (see docs/BENCHMARKS.md)
# Installs what is missing with apt-get (as root) and skips what is there.
set -euo pipefail
cd "$(dirname "$0")"
jobs=$(nproc 2>/dev/null || echo 2)

need_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "evq: installing ${missing[*]}" >&2
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

base_packages=(cmake g++ make pkg-config liburing-dev)
test_packages=(googletest libgtest-dev)
windows_packages=(g++-mingw-w64-x86-64-posix wine wine64 googletest)

build() {  # build <dir> [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

run_tests() {  # run_tests <dir> <label>
  echo "== tests: $2"
  ctest --test-dir "$1" -j"$jobs" --output-on-failure --timeout 600
}

# The IOCP backend: cross-compiled with MinGW-w64, the suite run under Wine.
# wineserver must run persistently, its output sent away, or ctest waits
# forever on the pipes Wine's services inherit; wineboot sets the prefix up
# before the first test for the same reason.
windows_tests() {
  need_packages "${windows_packages[@]}"
  cmake -S . -B build/windows -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw64.cmake \
    -DCMAKE_BUILD_TYPE=Release -DEVQ_BUILD_DEMO=OFF >/dev/null
  cmake --build build/windows -j"$jobs"
  export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" WINEPREFIX="$PWD/build/wineprefix"
  mkdir -p "$WINEPREFIX"  # wineserver -p fails on a prefix that does not exist yet
  wineserver -p >/dev/null 2>&1
  wine wineboot >/dev/null 2>&1 </dev/null || true
  local rc=0
  run_tests build/windows "IOCP (MinGW-w64, Wine)" || rc=$?
  wineserver -k || true
  return $rc
}

case "${1:-}" in
  demo)
    need_packages "${base_packages[@]}" "${test_packages[@]}"
    build build/release -DEVQ_BUILD_TESTS=OFF
    shift
    exec build/release/demo/evq_demo "$@"
    ;;
  test)
    need_packages "${base_packages[@]}" "${test_packages[@]}"
    # Each build runs the whole suite once per backend: epoll, poll(2),
    # io_uring and kqueue (through the test double in tests/support/kqueue).
    build build/release -DEVQ_WITH_KQUEUE=ON
    run_tests build/release "plain"
    # The benchmark suite in a tiny configuration (no timing assertions): every server and workload runs.
    echo "== bench smoke"
    bench/run.sh --smoke >build/bench-smoke.log 2>&1 || { tail -n 40 build/bench-smoke.log; exit 1; }
    build build/asan -DEVQ_WITH_KQUEUE=ON -DEVQ_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_tests build/asan "ASan+UBSan"
    build build/tsan -DEVQ_WITH_KQUEUE=ON -DEVQ_SANITIZE=thread
    TSAN_OPTIONS=halt_on_error=1 run_tests build/tsan "TSan"
    windows_tests
    echo "evq: every test passed (plain, ASan+UBSan, TSan on epoll, poll, io_uring, kqueue; IOCP under Wine)"
    ;;
  bench)
    shift
    exec bench/run.sh "$@"
    ;;
  *)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
