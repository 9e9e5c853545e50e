#!/usr/bin/env bash
# `lethe attribute` at query scale against its PyTorch peer (bench/peer_attribute.py), back to
# back on the same machine in one run, with the same checkpoint, data and queries:
#
#   1. Kronfluence's workload: ResNet-9 (models/resnet9.json) on a synthetic CIFAR-10 from
#      `lethe --seed 0 make-data cifar10`, EK-FAC pairwise scores of every training image for each
#      query, each phase timed (covariance, eigendecomposition, lambda, scores). Full size on a GPU
#      (50,000 training images, 2,000 queries; Kronfluence reports 106 s on an A100 in FP32); the
#      reduced size on a CPU is 500 images and 50 queries (--cifar-n, --cifar-queries): about one
#      minute for lethe and three for the peer on 2 quiet cores (docs/performance.md).
#   2. Issue 32's CPU acceptance case: the MNIST CNN, 1,000 queries x 10,000 MNIST training images,
#      tracin and ekfac, 2 threads (--mnist-n, --mnist-queries, --threads).
#   3. `flat` (not in the default cases): lethe alone on the same MNIST CNN and D, tracin and ekfac
#      at each of --flat-queries (default 200,2000,5000), for the peak memory as Q grows: each
#      run's peak resident set, blocks, seconds and the matrix's own size, and each peak against
#      the first Q's. Past what one block holds, more queries are more blocks, not more memory;
#      --memory sets the block's budget.
#
#   bash bench/attribute-scale.sh [--device cpu|cuda] [--cases resnet9,mnist,flat] [--threads N]
#        [--cifar-n N] [--cifar-queries Q] [--mnist-n N] [--mnist-queries Q] [--damping D]
#        [--epochs E] [--memory GB] [--lethe PATH] [--python PATH] [--dir DIR] [--mnist-data DIR]
#        [--flat-queries Q1,Q2,...] [--no-peer]
#
# --memory GB is lethe's query-block budget (attribute --memory; default: attribute's own on the
# CPU, 48 on the GPU). On 50,000 images a ResNet-9 query takes about 10 MB on the host (its
# 2.27 M parameters as float rows, 20 bytes per image for its scores), so attribute's own 0.5 GB
# would cut the GPU's 2,000 into 41 blocks, each a pass over the 50,000 images; 48 GB (the GPU
# machines have 128 GiB) makes one, whose 18 GB of rows go to the device once.
#
# Inputs, made once and kept in --dir (default runs/attribute-scale):
#   - cifar10-synthetic-<N>/: make-data with --train N --test 10000; D is all of it (--subset 0),
#     so the peer reads the same D in the same order (lethe's seeded subsets are lethe's own).
#   - mnist-first-<N>/: the first N training images of real MNIST (--mnist-data, or
#     $LETHE_MNIST_DIR, or data/mnist; `lethe fetch-data mnist` fetches it) and the whole test
#     split, written as IDX files, for the same reason.
#   - resnet9-n<N>-e<E>.safetensors, mnist-cnn-n<N>-e<E>.safetensors: trained E epochs (default 1)
#     with `lethe --seed 0 train --subset 0 --no-augment`. The scores' cost does not depend on how
#     well the model is trained.
# Each case runs `lethe --device DEV --threads T attribute --json ... --out X.safetensors`, then
# the peer on the same checkpoint and queries with --compare X.safetensors (the peer's scores
# against lethe's: max error relative to the matrix's largest magnitude, Spearman per query).
# EK-FAC runs with --damping D (absolute, default 1e-3) on both sides.
#
# The table: per case and method, each phase's seconds for lethe and the peer and their ratio
# (peer / lethe: above 1, lethe is faster), the totals, and the comparison. The JSON lines and the
# table go to <dir>/results/, stderr to <dir>/logs/. Without `lethe attribute` in the binary the
# script says so on its first line and times the peer alone (queries: a seeded sample).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE=cpu
CASES="resnet9,mnist"
THREADS=2
CIFAR_N=""
CIFAR_Q=""
MNIST_N=10000
MNIST_Q=1000
DAMPING=1e-3
EPOCHS=1
LETHE="${LETHE:-$ROOT/build/lethe}"
PYTHON="${PYTHON:-/usr/bin/python3}"
DIR="$ROOT/runs/attribute-scale"
MNIST_DATA="${LETHE_MNIST_DIR:-$ROOT/data/mnist}"
PEER=1
MEMORY=""
FLAT_QUERIES="200,2000,5000"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "attribute-scale: $*" >&2; exit 2; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) need_value "$@"; DEVICE="$2"; shift 2 ;;
    --cases) need_value "$@"; CASES="$2"; shift 2 ;;
    --threads) need_value "$@"; THREADS="$2"; shift 2 ;;
    --cifar-n) need_value "$@"; CIFAR_N="$2"; shift 2 ;;
    --cifar-queries) need_value "$@"; CIFAR_Q="$2"; shift 2 ;;
    --mnist-n) need_value "$@"; MNIST_N="$2"; shift 2 ;;
    --mnist-queries) need_value "$@"; MNIST_Q="$2"; shift 2 ;;
    --damping) need_value "$@"; DAMPING="$2"; shift 2 ;;
    --epochs) need_value "$@"; EPOCHS="$2"; shift 2 ;;
    --memory) need_value "$@"; MEMORY="$2"; shift 2 ;;
    --lethe) need_value "$@"; LETHE="$2"; shift 2 ;;
    --python) need_value "$@"; PYTHON="$2"; shift 2 ;;
    --dir) need_value "$@"; DIR="$2"; shift 2 ;;
    --mnist-data) need_value "$@"; MNIST_DATA="$2"; shift 2 ;;
    --flat-queries) need_value "$@"; FLAT_QUERIES="$2"; shift 2 ;;
    --no-peer) PEER=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (--help lists them)" ;;
  esac
done
[[ "$DEVICE" == cpu || "$DEVICE" == cuda ]] || die "--device $DEVICE: cpu or cuda"
if [[ "$DEVICE" == cuda ]]; then CIFAR_N="${CIFAR_N:-50000}"; CIFAR_Q="${CIFAR_Q:-2000}"; MEMORY="${MEMORY:-48}"; else
  CIFAR_N="${CIFAR_N:-500}"; CIFAR_Q="${CIFAR_Q:-50}"; fi
[[ -x "$LETHE" ]] || die "no lethe binary at $LETHE (build it, or --lethe PATH)"
if [[ $PEER == 1 ]] && ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  die "$PYTHON has no torch (apt-get install python3-torch, or --python PATH, or --no-peer)"
fi
mkdir -p "$DIR/results" "$DIR/logs"
RESULTS="$DIR/results/attribute-scale-$DEVICE.jsonl"
: > "$RESULTS"

# A lethe without the command answers "unknown command 'attribute' (known: ...)" to a use of it
# (to `attribute --help` too it prints the general help, so the probe passes no flag).
PROBE="$("$LETHE" attribute 2>&1 || true)"
if [[ "$PROBE" != *"unknown command 'attribute'"* ]]; then
  HAVE_ATTRIBUTE=1
  echo "lethe attribute: present in $LETHE"
else
  HAVE_ATTRIBUTE=0
  echo "lethe attribute: NOT in this build ($LETHE has no attribute command); timing the peer alone"
fi
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; device $DEVICE, threads $THREADS"

# $1 label, $2 JSON file: the document's "seconds" and "phases" as "label key value" lines.
lethe_lines() {
  "$PYTHON" - "$1" "$2" <<'EOF'
import json, sys
label, path = sys.argv[1], sys.argv[2]
doc = json.load(open(path))
for k, v in (doc.get("phases") or {}).items():
    print(label, "lethe", k, v)
print(label, "lethe", "total", doc["seconds"])
EOF
}

# $1 label, $2 method, $3 the peer's JSON lines: its summary's phases and total, and the check.
peer_lines() {
  "$PYTHON" - "$1" "$2" "$3" <<'EOF'
import json, sys
label, method, path = sys.argv[1:4]
for line in open(path):
    doc = json.loads(line)
    if doc.get("method") != method:
        continue
    if doc.get("summary"):
        for k, v in doc["phases"].items():
            print(label, "peer", k, v)
        print(label, "peer", "total", doc["seconds"])
    if doc.get("compare"):
        print(label, "check", "max_rel_error", doc["max_rel_error"])
        print(label, "check", "spearman_min", doc["spearman_min"])
EOF
}

make_cifar() {
  local data="$DIR/cifar10-synthetic-$CIFAR_N"
  if [[ ! -f "$data/test_batch.bin" ]]; then
    "$LETHE" --seed 0 make-data cifar10 --data "$data" --train "$CIFAR_N" --test 10000 \
      > "$DIR/logs/make-data-$CIFAR_N.txt" 2>&1 || die "make-data failed (see $DIR/logs)"
  fi
  echo "$data"
}

# The first $MNIST_N training images of real MNIST as IDX files, with the whole test split.
make_mnist() {
  local data="$DIR/mnist-first-$MNIST_N"
  if [[ ! -f "$data/train-labels-idx1-ubyte" ]]; then
    [[ -d "$MNIST_DATA" ]] || die "no MNIST at $MNIST_DATA (lethe fetch-data mnist --data DIR; --mnist-data DIR)"
    mkdir -p "$data"
    "$PYTHON" - "$MNIST_DATA" "$data" "$MNIST_N" <<'EOF'
import gzip, os, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def read(stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(src, name)
        if os.path.exists(p):
            return (gzip.open if p.endswith(".gz") else open)(p, "rb").read()
    sys.exit(f"attribute-scale: no {stem}[.gz] in {src}")
for stem, keep in (("train-images-idx3-ubyte", n), ("train-labels-idx1-ubyte", n),
                   ("t10k-images-idx3-ubyte", None), ("t10k-labels-idx1-ubyte", None)):
    blob = read(stem)
    ndim = blob[3]
    dims = list(struct.unpack(">" + "I" * ndim, blob[4:4 + 4 * ndim]))
    if keep is not None:
        if keep > dims[0]:
            sys.exit(f"attribute-scale: --mnist-n {keep} passes the {dims[0]} training images")
        dims[0] = keep
    size = 1
    for d in dims:
        size *= d
    body = blob[4 + 4 * ndim: 4 + 4 * ndim + size]
    with open(os.path.join(dst, stem), "wb") as f:
        f.write(blob[:4] + struct.pack(">" + "I" * ndim, *dims) + body)
EOF
  fi
  echo "$data"
}

# $1 model (spec file or name), $2 dataset, $3 data dir, $4 N, $5 checkpoint
train() {
  if [[ ! -f "$5" ]]; then
    "$LETHE" --seed 0 --device "$DEVICE" --threads "$THREADS" train --model "$1" --dataset "$2" --data "$3" \
      --subset 0 --no-augment --epochs "$EPOCHS" --out "$5" > "$DIR/logs/train-$(basename "$5").txt" 2>&1 \
      || die "training $1 failed (see $DIR/logs/train-$(basename "$5").txt)"
  fi
}

TABLE="$DIR/results/attribute-scale-$DEVICE.txt"
: > "$TABLE.lines"

# The flags that name method $1 to both sides: --method, and --damping for ekfac.
set_method_flags() {
  METHOD_FLAGS=(--method "$1")
  [[ "$1" == ekfac ]] && METHOD_FLAGS+=(--damping "$DAMPING")
  return 0
}

# $1 checkpoint, $2 data dir, $3 method, $4 queries, $5 matrix out, $6 JSON out, $7 log: one
# `lethe attribute` run (--memory when given), its JSON added to the results.
run_lethe() {
  local lethe_flags=()
  set_method_flags "$3"
  [[ -n "$MEMORY" ]] && lethe_flags+=(--memory "$MEMORY")
  rm -f "$5"
  "$LETHE" --device "$DEVICE" --threads "$THREADS" attribute --json --model-file "$1" --data "$2" \
    "${METHOD_FLAGS[@]}" "${lethe_flags[@]}" --queries "$4" --out "$5" > "$6" 2> "$7" \
    || die "lethe attribute failed (see $7)"
  cat "$6" >> "$RESULTS"
}

# $1 label, $2 peer model, $3 checkpoint, $4 data dir, $5 method, $6 queries
run_case() {
  local label="$1" model="$2" ckpt="$3" data="$4" method="$5" queries="$6"
  local out="$DIR/results/$label.safetensors" json="$DIR/results/$label-lethe.json"
  local compare=()
  if [[ $HAVE_ATTRIBUTE == 1 ]]; then
    run_lethe "$ckpt" "$data" "$method" "$queries" "$out" "$json" "$DIR/logs/$label-lethe.txt"
    lethe_lines "$label" "$json" >> "$TABLE.lines"
    compare=(--compare "$out")
  fi
  if [[ $PEER == 1 ]]; then
    local peer_json="$DIR/results/$label-peer.jsonl"
    set_method_flags "$method"
    (cd "$ROOT/bench" && "$PYTHON" peer_attribute.py --model "$model" --model-file "$ckpt" --data "$data" \
      --device "$DEVICE" --threads "$THREADS" "${METHOD_FLAGS[@]}" --queries "$queries" "${compare[@]}") \
      > "$peer_json" 2> "$DIR/logs/$label-peer.txt" || echo "note: the peer exited non-zero for $label (see logs)"
    peer_lines "$label" "$method" "$peer_json" >> "$TABLE.lines"
    cat "$peer_json" >> "$RESULTS"
  fi
}

# Peak memory against Q: lethe alone, each of --flat-queries for tracin and ekfac, one line each.
run_flat() {
  local ckpt="$1" data="$2" flat="$DIR/results/attribute-flat-$DEVICE.txt" lines=()
  local q m json out="$DIR/results/flat.safetensors"
  IFS=',' read -r -a FLAT_LIST <<< "$FLAT_QUERIES"
  for m in tracin ekfac; do
    for q in "${FLAT_LIST[@]}"; do
      json="$DIR/results/flat-n$MNIST_N-q$q-$m-lethe.json"
      run_lethe "$ckpt" "$data" "$m" "$q" "$out" "$json" "$DIR/logs/flat-q$q-$m-lethe.txt"
      lines+=("$m" "$json")
    done
  done
  rm -f "$out"
  "$PYTHON" - "${MEMORY:-default}" "${lines[@]}" <<'EOF' | tee "$flat"
import json, sys
budget, args = sys.argv[1], sys.argv[2:]
print(f"peak memory against Q (--memory {budget}; GB = 10^9 bytes; ratio: the peak against the first Q's)")
print(f"{'method':8} {'Q':>6} {'blocks':>7} {'block':>6} {'seconds':>9} {'peak GB':>8} {'matrix GB':>10} {'ratio':>7}")
first = {}
for m, path in zip(args[0::2], args[1::2]):
    d = json.load(open(path))
    peak, q = d["host_peak_rss_bytes"] / 1e9, d["n_queries"]
    first.setdefault(m, peak)
    matrix = q * d["n_train"] * 4 / 1e9
    print(f"{m:8} {q:>6} {d['blocks']:>7} {d['block']:>6} {d['seconds']:>9.2f} {peak:>8.3f} {matrix:>10.3f} {peak / first[m]:>7.2f}")
EOF
}

IFS=',' read -r -a CASE_LIST <<< "$CASES"
for c in "${CASE_LIST[@]}"; do
  case "$c" in
    resnet9)
      data="$(make_cifar)"
      ckpt="$DIR/resnet9-n$CIFAR_N-e$EPOCHS.safetensors"
      train "$ROOT/models/resnet9.json" cifar10 "$data" "$CIFAR_N" "$ckpt"
      run_case "resnet9-n$CIFAR_N-q$CIFAR_Q-ekfac" resnet9 "$ckpt" "$data" ekfac "$CIFAR_Q" ;;
    mnist)
      data="$(make_mnist)"
      ckpt="$DIR/mnist-cnn-n$MNIST_N-e$EPOCHS.safetensors"
      train mnist-cnn mnist "$data" "$MNIST_N" "$ckpt"
      for m in tracin ekfac; do run_case "mnist-n$MNIST_N-q$MNIST_Q-$m" mnist "$ckpt" "$data" "$m" "$MNIST_Q"; done ;;
    flat)
      [[ $HAVE_ATTRIBUTE == 1 ]] || die "--cases flat needs lethe attribute"
      data="$(make_mnist)"
      ckpt="$DIR/mnist-cnn-n$MNIST_N-e$EPOCHS.safetensors"
      train mnist-cnn mnist "$data" "$MNIST_N" "$ckpt"
      run_flat "$ckpt" "$data" ;;
    *) die "--cases: resnet9, mnist and/or flat, not '$c'" ;;
  esac
done

# One row per case and phase: lethe's seconds, the peer's, peer / lethe; then the checks.
"$PYTHON" - "$TABLE.lines" <<'EOF' | tee "$TABLE"
import collections, sys
rows = collections.OrderedDict()
checks = collections.OrderedDict()
for line in open(sys.argv[1]):
    label, side, key, value = line.split()
    if side == "check":
        checks.setdefault(label, {})[key] = float(value)
    else:
        rows.setdefault((label, key), {})[side] = float(value)
print(f"{'case':36} {'phase':20} {'lethe s':>10} {'peer s':>10} {'peer/lethe':>10}")
for (label, key), v in rows.items():
    l, p = v.get("lethe"), v.get("peer")
    ratio = f"{p / l:10.2f}" if l and p else f"{'-':>10}"
    print(f"{label:36} {key:20} {l if l is not None else '-':>10} {p if p is not None else '-':>10} {ratio}")
for label, c in checks.items():
    print(f"{label}: peer against lethe: max relative error {c.get('max_rel_error', float('nan')):.2e}, "
          f"smallest per-query Spearman {c.get('spearman_min', float('nan')):.6f}")
EOF
echo "results: $RESULTS, $TABLE"
