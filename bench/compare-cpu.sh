#!/usr/bin/env bash
# lethe against its PyTorch peers on this CPU, back to back in one run, at one thread count:
# a training epoch (3,000 MNIST-shaped examples, batch 64), inner products of 3,000 per-example
# gradients with one query (against functorch's vmap(grad) and its forward-mode jvp), and their
# diagonal Fisher; then EWC-influence end to end on real
# MNIST when LETHE_MNIST_DIR is set. Prints lethe info's summary first, each side's raw lines,
# and the ratios.
#   bash bench/compare-cpu.sh [threads]        (default 2; needs build/ and python3-torch)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
bench=${LETHE_BUILD_DIR:-build}/lethe_bench
py=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=$threads
"${LETHE_BUILD_DIR:-build}/lethe" --threads "$threads" info
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
ms() {  # the median time (ms) of benchmark $1 in Google Benchmark's JSON $2
  "$py" -c 'import json,sys
u={"ns":1e-6,"us":1e-3,"ms":1.0,"s":1e3}
runs=[b for b in json.load(open(sys.argv[2]))["benchmarks"] if b["name"].startswith(sys.argv[1])]
r=[b for b in runs if b.get("run_type")=="aggregate" and b.get("aggregate_name")=="median"] or runs
print(r[0]["real_time"]*u[r[0]["time_unit"]] if r else "nan")' "$1" "$2"
}
filter='MnistCnnEpoch/device:0|PerExample(InnerProducts|DiagonalFisher)/device:0|SgemmPeak'
[[ -n "${LETHE_MNIST_DIR:-}" ]] && filter="$filter|IdentifyEwc"
"$bench" --benchmark_filter="$filter" --benchmark_repetitions=3 --benchmark_out="$log/lethe.json" \
  --benchmark_out_format=json 2>/dev/null | grep -E '_median|SgemmPeak' || true
"$py" bench/peer_torch_train.py --threads "$threads" --repeats 5 | tee "$log/train.txt"
"$py" bench/peer_functorch.py --threads "$threads" --repeats 3 \
  --quantities inner_products,jvp_inner_products,diagonal_fisher | tee "$log/functorch.txt"
peer() { grep -E "$1" "$2" | head -1 | sed -E 's/.*median ([0-9.]+) ?s.*/\1/'; }
epoch=$(ms BM_MnistCnnEpoch/device:0 "$log/lethe.json")
dots=$(ms BM_PerExampleInnerProducts/device:0 "$log/lethe.json")
fisher=$(ms BM_PerExampleDiagonalFisher/device:0 "$log/lethe.json")
t_epoch=$(peer "epoch median" "$log/train.txt")
t_dots=$(peer "^functorch inner_products .*median" "$log/functorch.txt")
t_jvp=$(peer "^functorch jvp_inner_products .*median" "$log/functorch.txt")
t_fisher=$(peer "^functorch diagonal_fisher .*median" "$log/functorch.txt")
"$py" - "$epoch" "$t_epoch" "$dots" "$t_dots" "$t_jvp" "$fisher" "$t_fisher" <<'PY'
import sys
e, te, d, td, tj, f, tf = (float(x) for x in sys.argv[1:])
print(f"{'quantity':38s} {'lethe s':>9s} {'PyTorch s':>10s} {'PyTorch / lethe':>16s}")
for name, l, p in [("training epoch (vs torch)", e / 1e3, te), ("inner products (vs functorch)", d / 1e3, td),
                   ("inner products (vs functorch jvp)", d / 1e3, tj),
                   ("diagonal Fisher (vs functorch)", f / 1e3, tf)]:
    print(f"{name:38s} {l:9.3f} {p:10.3f} {p / l:15.2f}x")
PY
if [[ -n "${LETHE_MNIST_DIR:-}" ]]; then echo "EWC-influence end to end: $(ms BM_IdentifyEwc "$log/lethe.json") ms"; fi
