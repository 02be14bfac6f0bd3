#!/usr/bin/env bash
# Runs the numpy reference (benches/numpy_step.py) and `vnn bench --json`
# in the same run, for each thread count, and prints the medians side by side.
#
# usage: benches/compare_numpy.sh [THREAD_COUNTS...]   (default: 1 2)
#
# The numpy side runs in its own virtualenv (target/bench-venv, created on
# the first run with pip: numpy and threadpoolctl), with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset for its command only (OpenBLAS picks its kernel for
# this CPU itself) and OPENBLAS_NUM_THREADS set to the thread count.
# vnn is built in release with the project's flags (.cargo/config.toml);
# set CARGO_TARGET_DIR and RUSTFLAGS= to compare the default build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
threads_list=("${@:-1}")
if [ $# -eq 0 ]; then threads_list=(1 2); fi

venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet numpy threadpoolctl
fi
py="$venv/bin/python"

cargo build --release --quiet --bin vnn
vnn="${CARGO_TARGET_DIR:-target}/release/vnn"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "vnn: $vnn, RUSTFLAGS=${RUSTFLAGS-<unset: .cargo/config.toml>}"
for t in "${threads_list[@]}"; do
  echo "--- threads $t"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$t" OMP_NUM_THREADS="$t" \
    "$py" benches/numpy_step.py --threads "$t" > "$out/numpy-$t.jsonl"
  "$vnn" bench --workload all --threads "$t" --json > "$out/vnn-$t.jsonl"
done

"$py" - "$out" "${threads_list[@]}" <<'PY'
import json, sys
out, threads = sys.argv[1], sys.argv[2:]

def load(path):
    with open(path) as f:
        return {r["workload"]: r for r in map(json.loads, f)}

def fmt(ns):
    if ns is None:
        return "-"
    for unit, scale in (("ns", 1), ("us", 1e3), ("ms", 1e6)):
        if ns < 1e3 * scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns / 1e9:.3g} s"

print(f"{'workload':<18} {'threads':>7} {'vnn':>10} {'numpy':>10} {'numpy/vnn':>9} {'vnn GFLOP/s':>11}")
for t in threads:
    vnn, npy = load(f"{out}/vnn-{t}.jsonl"), load(f"{out}/numpy-{t}.jsonl")
    for name, r in vnn.items():
        # The split predictor is compared with numpy's single-thread predict.
        ref = npy.get("infer-mnist" if name == "infer-mnist-split" else name)
        v = r["median_ns"]
        n = ref["median_ns"] if ref else None
        ratio = f"{n / v:.2f}x" if n else "-"
        g = f"{r['gflops']:.1f}" if "gflops" in r else "-"
        print(f"{name:<18} {r['threads']:>7} {fmt(v):>10} {fmt(n):>10} {ratio:>9} {g:>11}")
PY
