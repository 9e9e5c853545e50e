#!/usr/bin/env bash
# lethe against its PyTorch peers on one GPU, back to back in one run: per-example inner products
# with one query and the diagonal empirical Fisher, for the MNIST CNN (3,000 examples) and for
# ResNet-18 (CIFAR form, full width, 2,048 examples), then the ResNet-18 training step (batch
# 128) in full FP32 and with TF32 tensor cores. lethe_bench's figures first, then torch.func's
# (bench/peer_functorch.py: vmap(grad), and jvp for the one-query inner products) and torch's
# step (bench/peer_torch_resnet.py), then a table of PyTorch / lethe (above 1: lethe is faster)
# with lethe's share of the device's measured FP32 SGEMM peak. The per-example comparisons run
# in full FP32 on both sides; the peer first checks its quantities against a loop of
# single-example passes (--self-check). Each side's raw lines are kept in the log folder.
#
#   bash bench/compare-gpu.sh                  on a GPU machine, after tools/gpu-check.sh has built
#                                              build-gpu/ (and with its LD_LIBRARY_PATH)
#   bash bench/compare-gpu.sh --device cpu     the same comparison on the CPU at small sizes
#                                              (ResNet-18 on 16 examples, one repetition, one
#                                              chunk size), to check the script end to end
#
# On an H200 the whole run should take a few minutes, most of it the peers' search over chunk
# sizes; --quick about halves it (one lethe repetition, two peer repeats, two chunk sizes).
# Options: --device cuda|cpu (default cuda), --threads N (host threads; default all cores on the
# GPU, 2 on the CPU), --quick, --no-train-step (leave the ResNet-18 step out).
# Environment: LETHE_BUILD_DIR (default build-gpu, or build for --device cpu), PYTHON (default:
# the first of python3 and /usr/bin/python3 that has torch), LETHE_COMPARE_LOG (the folder for
# the logs, default a fresh temporary one, kept and named at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda threads="" train_step=1 quick=0
while (($#)); do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --no-train-step) train_step=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "compare-gpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$device" in
  cuda) dev=1 default_build=build-gpu threads=${threads:-$(nproc)} ;;
  cpu) dev=0 default_build=build threads=${threads:-2} ;;
  *) echo "compare-gpu.sh: --device must be cuda or cpu, not '$device'" >&2; exit 2 ;;
esac
build=${LETHE_BUILD_DIR:-$default_build}
bench=$build/lethe_bench
[[ -x "$bench" ]] || { echo "compare-gpu.sh: no $bench (build lethe_bench first, or set LETHE_BUILD_DIR)" >&2; exit 2; }
py=${PYTHON:-}
if [[ -z "$py" ]]; then
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import torch' 2>/dev/null; then py=$candidate; break; fi
  done
fi
[[ -n "$py" ]] || { echo "compare-gpu.sh: no python with torch (set PYTHON)" >&2; exit 2; }
if [[ "$device" == cuda ]] && ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "compare-gpu.sh: $py's torch sees no GPU" >&2
  exit 2
fi
export OMP_NUM_THREADS=$threads
log=${LETHE_COMPARE_LOG:-$(mktemp -d)}
mkdir -p "$log"

# The sizes both sides run: the GPU's, or small ones on the CPU. lethe_bench registers the same
# (BM_PerExampleResNet18*: n 16 and 64 on device:0, 2048 on device:1; the MNIST CNN's 3000).
if [[ "$device" == cuda ]] && ((quick)); then
  resnet_n=2048 reps=1 peer_reps=2 step_reps=10
  mnist_chunks=1000,3000 resnet_chunks=256,1024
elif [[ "$device" == cuda ]]; then
  resnet_n=2048 reps=3 peer_reps=3 step_reps=20
  mnist_chunks=500,1000,3000 resnet_chunks=128,256,512,1024
else
  resnet_n=16 reps=1 peer_reps=1 step_reps=1
  mnist_chunks=1000 resnet_chunks=16
fi

# What both sides ran on (neither is needed for the figures).
"$build/lethe" --threads "$threads" info || echo "(no $build/lethe to describe the machine)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
fi

echo "== lethe_bench (device:$dev) =="
filter="PerExample(InnerProducts|DiagonalFisher)/device:$dev/|PerExampleResNet18(InnerProducts|DiagonalFisher)/device:$dev/n:$resnet_n/"
((train_step)) && filter="$filter|ResNet18TrainStep/device:$dev/"
"$bench" --benchmark_filter="$filter" --benchmark_repetitions=$reps --benchmark_out="$log/lethe.json" \
  --benchmark_out_format=json 2>"$log/lethe.err" | tee "$log/lethe.txt" | grep -E '^BM_' | grep -v -E '_(mean|stddev|cv) ' ||
  echo "(lethe_bench: no figures or a failure; see $log/lethe.txt and lethe.err)"

echo "== PyTorch =="
# First the peer's own check against a loop of single-example passes (float64, 3 examples), so
# that its figures are known to be of the right quantities with this torch; ResNet-18's takes
# a minute on two CPU cores, so the CPU run checks the MNIST CNN only.
check_models="mnist resnet18"
[[ "$device" == cpu ]] && check_models=mnist
for model in $check_models; do
  "$py" bench/peer_functorch.py --device "$device" --model "$model" --self-check >"$log/self-check-$model.txt" 2>&1 ||
    echo "(the peer's self-check failed for $model: see $log/self-check-$model.txt)"
  grep -E '^self-check (passed|FAILED)' "$log/self-check-$model.txt" | sed "s/^/$model: /" || true
done
peer_quantities=inner_products,jvp_inner_products,diagonal_fisher
# A peer that fails leaves its rows "absent" in the table; the rest still runs.
"$py" bench/peer_functorch.py --device "$device" --threads "$threads" --model mnist --n 3000 \
  --chunks "$mnist_chunks" --repeats $peer_reps --quantities $peer_quantities 2>&1 |
  tee "$log/peer-mnist.txt" || echo "(peer_functorch.py --model mnist failed)"
"$py" bench/peer_functorch.py --device "$device" --threads "$threads" --model resnet18 --n $resnet_n \
  --chunks "$resnet_chunks" --repeats $peer_reps --quantities $peer_quantities 2>&1 |
  tee "$log/peer-resnet18.txt" || echo "(peer_functorch.py --model resnet18 failed)"
: >"$log/peer-step.txt"
if ((train_step)); then
  for tf32 in off on; do
    [[ "$device" == cpu && "$tf32" == on ]] && continue  # TF32 is a GPU mode
    "$py" bench/peer_torch_resnet.py --device "$device" --threads "$threads" --repeats $step_reps --tf32 $tf32 |
      tee -a "$log/peer-step.txt" || echo "(peer_torch_resnet.py --tf32 $tf32 failed)"
  done
fi

echo "== PyTorch / lethe (above 1: lethe is faster) =="
"$py" - "$log" "$dev" "$resnet_n" "$device" "$train_step" <<'PY'
import json, re, sys
log, dev, resnet_n, device, train_step = sys.argv[1:6]
unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
try:
    benchmarks = json.load(open(f"{log}/lethe.json"))["benchmarks"]
except (OSError, ValueError, KeyError) as err:  # lethe_bench failed: the table still shows PyTorch's
    print(f"no lethe figures ({log}/lethe.json: {err})")
    benchmarks = []

def lethe(prefix):
    """(median ms, counters) of the benchmark whose name starts with prefix; None when skipped."""
    runs = [b for b in benchmarks if b["name"].startswith(prefix) and not b.get("error_occurred")]
    med = [b for b in runs if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"]
    r = (med or runs or [None])[0]
    return None if r is None else (r["real_time"] * unit[r["time_unit"]], r)

def peer(file, pattern):
    """The median ms of the first line of file matching pattern; None when absent."""
    try:
        lines = open(f"{log}/{file}").read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        if re.search(pattern, line):
            seconds = re.search(r"median ([0-9.]+) s\b", line)  # peer_functorch.py
            if seconds:
                return float(seconds.group(1)) * 1e3
            ms = re.search(r"median ([0-9.]+) ms\b", line)  # peer_torch_resnet.py
            return float(ms.group(1)) if ms else None
    return None

rows = []
for model, file, lprefix in [("MNIST CNN, 3000", "peer-mnist.txt", "BM_PerExample{q}/device:{d}/"),
                             (f"ResNet-18, {resnet_n}", "peer-resnet18.txt", "BM_PerExampleResNet18{q}/device:{d}/n:{n}/")]:
    tag = "mnist" if "MNIST" in model else "resnet18"
    for what, q, pq in [("inner products, vmap(grad)", "InnerProducts", "inner_products"),
                        ("inner products, jvp", "InnerProducts", "jvp_inner_products"),
                        ("diagonal Fisher, vmap(grad)", "DiagonalFisher", "diagonal_fisher")]:
        rows.append((f"{model}: {what}", lethe(lprefix.format(q=q, d=dev, n=resnet_n)),
                     peer(file, rf"^functorch {pq} model={tag} .*median")))
for tf32, flag in [("off", 0), ("on", 1)]:
    if train_step == "0" or (device == "cpu" and tf32 == "on"):
        continue
    rows.append((f"ResNet-18 train step, batch 128, TF32 {tf32}", lethe(f"BM_ResNet18TrainStep/device:{dev}/tf32:{flag}"),
                 peer("peer-step.txt", rf"tf32={tf32} step median")))

print(f"{'quantity':58s} {'lethe ms':>10s} {'PyTorch ms':>11s} {'PyTorch/lethe':>14s} {'lethe GFLOP/s':>14s} {'of peak':>8s}")
for name, l, p in rows:
    lt = f"{l[0]:10.1f}" if l else f"{'skipped':>10s}"
    pt = f"{p:11.1f}" if p is not None else f"{'absent':>11s}"
    ratio = f"{p / l[0]:13.2f}x" if l and p is not None else f"{'-':>14s}"
    rate = l[1].get("GFLOP/s") if l else None
    peak = l[1].get("peak GFLOP/s") if l else None
    rate_s = f"{rate:14.0f}" if rate else f"{'':14s}"
    share = f"{100 * rate / peak:7.1f}%" if rate and peak else f"{'':8s}"
    print(f"{name:58s} {lt} {pt} {ratio} {rate_s} {share}")
PY
echo "logs: $log"
