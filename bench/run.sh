#!/usr/bin/env bash
# evq benchmark suite: installs what is missing, builds, runs, writes bench/results/<date>/.
#   bench/run.sh [--quick | --smoke]      (./evq.sh bench forwards its arguments here)
# Full mode takes about 15 minutes on 2 cores, --quick about 3, --smoke under a minute (after the build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${EVQ_BENCH_BUILD_DIR:-$root/build/bench}

packages=(cmake g++ make pkg-config python3 libuv1-dev libevent-dev libev-dev libasio-dev librust-mio-dev valgrind strace)
# cargo for the mio server: Debian's, unless one (rustup's, say) is there already.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then packages+=(cargo); fi
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

# The Rust mio server, when cargo is there (Debian's cargo or rustup's): built offline against
# librust-mio-dev's sources (bench/mio_server/.cargo/config.toml).
cargo=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
if [ -x "$cargo" ] && [ -d /usr/share/cargo/registry ]; then
  if (cd "$here/mio_server" && CARGO_TARGET_DIR="$build/mio-target" "$cargo" build --offline --release --quiet); then
    cp "$build/mio-target/release/srv_mio" "$build/bin/srv_mio"
  else
    echo "bench: the mio server did not build; its row is left out" >&2
  fi
else
  echo "bench: no cargo; the mio row is left out" >&2
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 "$here/run.py" --bin-dir "$build/bin" "$@"
