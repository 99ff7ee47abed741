#!/usr/bin/env bash
# Orchard end-to-end benchmark against nginx (`make bench`).
#
#   bench/e2e/run.sh            full run (3 runs per scenario, medians)
#   bench/e2e/run.sh --quick    one run each, short wrk, 100k-object index (development)
#
# Environment: ORCHARD_BENCH_QUICK=1, ORCHARD_BENCH_RUNS, ORCHARD_BENCH_INDEX_N,
# ORCHARD_BENCH_SCENARIOS=1,2,..., BUILD_DIR (default build). See bench/README.md.
# Everything listens on 127.0.0.1 only; every process started here is
# stopped on exit, failure or Ctrl-C.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
export BUILD_DIR="$build"

for arg in "$@"; do
  case "$arg" in
    --quick) export ORCHARD_BENCH_QUICK=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

# ---- what the benchmark needs from Debian
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; then
    # nginx-light is gone from newer releases: fall back to nginx.
    need=("${need[@]/nginx-light/nginx}")
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
fi
# Debian's nginx package starts a system nginx on port 80; we do not need it,
# and we never touch it: our instances run from their own prefix and config.

# ---- build products (make bench builds first; a direct call builds if needed)
if [ ! -x "$build/orchardd" ] || [ ! -x "$build/bench/orchard_micro_bench" ] || [ ! -x "$build/bench/orchard_bench_populate" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
  cmake --build "$build" -j"$(nproc)" --target orchardd orchard_micro_bench orchard_bench_populate
fi

mkdir -p "$root/bench/results"
pidfile="$(mktemp "$root/bench/results/pids.XXXXXX")"
export ORCHARD_BENCH_PIDFILE="$pidfile"
bench_pid=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  # Whatever the orchestrator started and did not stop (each in its own process group).
  if [ -s "$pidfile" ]; then
    while read -r pid; do
      [ -n "$pid" ] || continue
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done <"$pidfile"
    sleep 1
    while read -r pid; do
      [ -n "$pid" ] || continue
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done <"$pidfile"
  fi
  rm -f "$pidfile"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run in the background so the traps fire at once on Ctrl-C / SIGTERM.
python3 "$here/bench.py" &
bench_pid=$!
wait "$bench_pid"
