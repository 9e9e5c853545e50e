#!/usr/bin/env bash
# EWC-influence at a dataset's scale, end to end through the lethe binary: the diagonal Fisher over
# D, the anchored update on Fq and the scoring of D, for ResNet-18 (full width, CIFAR form) on a
# synthetic CIFAR-10 of 50,000 training images and for the MNIST CNN on all 60,000 MNIST training
# images. Prints one table: seconds per phase, the method's seconds, the command's wall time, peak
# memory and examples per second.
#
#   bash bench/dataset-scale.sh [--device cuda|cpu] [--mnist-n N] [--cifar-n N] [--tf32]
#                               [--models mnist-cnn,resnet18] [--lethe PATH] [--dir DIR]
#                               [--mnist-data DIR] [--train-n N] [--threads N] [-- IDENTIFY-FLAGS...]
#
# Inputs are made once and kept in --dir (default runs/dataset-scale):
#   - cifar10-synthetic-<N>/: `lethe --seed 0 make-data cifar10`, N = max(50,000, --cifar-n)
#     training images and 10,000 test images. Synthetic, because CIFAR-10 cannot be downloaded
#     here and the cost of a pass does not depend on the pixels: each image is noise with a class
#     bar, 10% have none (datasets/synthetic.h), so a trained model should fail on about 9% of T
#     and Fq (half the failures) hold about 450 images, as a real CIFAR-10 model's errors would.
#   - resnet18-n<T>-e1.safetensors: ResNet-18 trained one epoch (batch 128, no augmentation) on a
#     seeded T = --train-n (default min(10,000, --cifar-n)) of those images.
#   - mnist-cnn-label-n<T>-e5.safetensors: the MNIST CNN trained 5 epochs on T = --train-n (default
#     min(10,000, --mnist-n)) real MNIST images with lethe's label noise, the paper's setting;
#     where --train-n equals --mnist-n the model was trained on the D it scores, and the notes
#     below the table say how many of D's flipped labels ewc ranks first (recall@k, ROC AUC).
# The checkpoints are trained on --device; a checkpoint from either device serves both.
#
# Then for each model: `lethe --device DEV [--tf32] identify --method ewc --subset N --json`, which
# scores D = the seeded N of the training images (the checkpoint's own subset is only what it was
# trained on). Flags after `--` go to identify (e.g. `-- --max-steps 5` for a short run on a CPU).
# The JSON of each run and the table go to <dir>/results/, each command's stderr to <dir>/logs/.
#
# Columns: |Fq| and the update's steps (early stopping decides them, so they say what the update
# cost); setup (reading the checkpoint, D and T, evaluating T); fisher, update, score (the three
# phases, repair/ewc_influence.cpp); ewc (the method: the three phases together, the figure the
# targets compare); wall (the whole command, process start to exit); peak memory (on the GPU the
# caching allocator's peak in use, with its peak reserved beside it; on the CPU the process's
# peak resident set); examples/s (N over ewc's seconds).
#
# Targets on one H200 at the default sizes: ResNet-18 ewc < 60 s in FP32 (< 30 s with --tf32),
# the MNIST CNN < 3 s. The last lines say whether each run met its target; a missed target is a
# measurement, not a failure (the exit code is non-zero only when a command fails).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE=cuda
MNIST_N=60000
CIFAR_N=50000
TF32=0
MODELS="mnist-cnn,resnet18"
LETHE="${LETHE:-$ROOT/build/lethe}"
DIR="$ROOT/runs/dataset-scale"
MNIST_DATA="${LETHE_MNIST_DIR:-$ROOT/data/mnist}"
TRAIN_N=""
THREADS=0
EXTRA=()

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "dataset-scale: $*" >&2; exit 2; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) need_value "$@"; DEVICE="$2"; shift 2 ;;
    --mnist-n) need_value "$@"; MNIST_N="$2"; shift 2 ;;
    --cifar-n) need_value "$@"; CIFAR_N="$2"; shift 2 ;;
    --tf32) TF32=1; shift ;;
    --models) need_value "$@"; MODELS="$2"; shift 2 ;;
    --lethe) need_value "$@"; LETHE="$2"; shift 2 ;;
    --dir) need_value "$@"; DIR="$2"; shift 2 ;;
    --mnist-data) need_value "$@"; MNIST_DATA="$2"; shift 2 ;;
    --train-n) need_value "$@"; TRAIN_N="$2"; shift 2 ;;
    --threads) need_value "$@"; THREADS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$DEVICE" == cuda || "$DEVICE" == cpu ]] || die "--device '$DEVICE': cuda or cpu"
for flag_value in "--mnist-n=$MNIST_N" "--cifar-n=$CIFAR_N" "--threads=$THREADS" ${TRAIN_N:+"--train-n=$TRAIN_N"}; do
  [[ "${flag_value#*=}" =~ ^[0-9]+$ ]] || die "${flag_value%%=*} '${flag_value#*=}': not a whole number"
done
((MNIST_N >= 1 && MNIST_N <= 60000)) || die "--mnist-n $MNIST_N: MNIST has 1 to 60,000 training images"
((CIFAR_N >= 1)) || die "--cifar-n $CIFAR_N: must be >= 1"
[[ -z "$TRAIN_N" ]] || ((TRAIN_N >= 1)) || die "--train-n $TRAIN_N: must be >= 1"
[[ -x "$LETHE" ]] || die "no lethe binary at '$LETHE' (build it, or pass --lethe PATH or LETHE=PATH)"
IFS=, read -r -a MODEL_LIST <<<"$MODELS"
for m in "${MODEL_LIST[@]}"; do
  [[ "$m" == mnist-cnn || "$m" == resnet18 ]] || die "--models: unknown model '$m' (known: mnist-cnn, resnet18)"
done
PRECISION=fp32
GLOBAL=(--device "$DEVICE" --threads "$THREADS" --seed 0)
if ((TF32)); then
  [[ "$DEVICE" == cuda ]] || die "--tf32 applies to --device cuda only"
  PRECISION=tf32
  GLOBAL+=(--tf32)
fi
mkdir -p "$DIR/results" "$DIR/logs" "$DIR/scores"
LOGS="$DIR/logs"

now() { date +%s.%N; }
# field KEY FILE: the number after "KEY": in a JSON document lethe printed (one key per line).
field() { grep -m1 -oE "\"$1\": [-0-9.eE+]+" "$2" | sed 's/.*: //' || true; }
# run LOG COMMAND...: the command with its stderr in LOG; on failure, the end of LOG.
run() {
  local log="$1"
  shift
  if ! "$@" 2>"$log"; then
    echo "dataset-scale: failed: $*" >&2
    tail -20 "$log" >&2
    return 1
  fi
}

# ---- inputs -------------------------------------------------------------------------------------
# make_cifar: the synthetic CIFAR-10 folder, made once (make-data writes test_batch.bin last, so a
# folder holding it is complete; an incomplete one is this script's own and is made again).
make_cifar() {
  local n=$((CIFAR_N > 50000 ? CIFAR_N : 50000))
  CIFAR_DIR="$DIR/cifar10-synthetic-$n"
  [[ -f "$CIFAR_DIR/test_batch.bin" ]] && return 0
  rm -rf "$CIFAR_DIR"
  echo "making a synthetic CIFAR-10 of $n training images in $CIFAR_DIR" >&2
  local t0
  t0=$(now)
  run "$LOGS/make-data.log" "$LETHE" --seed 0 make-data cifar10 --data "$CIFAR_DIR" --train "$n" --test 10000 >/dev/null
  echo "  $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s" >&2
}

# train_checkpoint OUT ARGS...: `lethe train` once; the checkpoint is kept for later runs. It is
# trained under another name and renamed when the command succeeds, because `lethe train` keeps
# every finished epoch at --out and an interrupted run would otherwise pass for a finished one.
train_checkpoint() {
  local out="$1" base="${1%.safetensors}"
  shift
  [[ -f "$out" ]] && return 0
  echo "training $(basename "$out") on $DEVICE" >&2
  run "$LOGS/train-$(basename "$base").log" "$LETHE" --device "$DEVICE" --threads "$THREADS" --seed 0 \
    train "$@" --out "$base.partial.safetensors" --json >"$base.train.json"
  mv "$base.partial.safetensors" "$out"
  echo "  test accuracy $(field test_accuracy "$base.train.json"), $(field seconds "$base.train.json") s" >&2
}

# ---- one measured run ---------------------------------------------------------------------------
ROWS=()
NOTES=()
VERDICTS=()
gib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1073741824 }'; }
measure() {  # MODEL N TRAIN-N CHECKPOINT DATA-FLAGS...
  local model="$1" n="$2" train_n="$3" checkpoint="$4"
  shift 4
  local tag="$model-n$n-$DEVICE-$PRECISION"
  local json="$DIR/results/$tag.json" t0 t1
  echo "identify --method ewc: $model on $n examples ($DEVICE, $PRECISION)" >&2
  t0=$(now)
  run "$LOGS/identify-$tag.log" "$LETHE" "${GLOBAL[@]}" identify --model-file "$checkpoint" "$@" --subset "$n" \
    --method ewc --out "$DIR/scores/$tag.csv" --json "${EXTRA[@]}" >"$json"
  t1=$(now)
  local seconds setup fisher update score steps fq memory wall
  seconds=$(field seconds "$json")
  setup=$(field seconds_setup "$json")
  fisher=$(field seconds_fisher "$json")
  update=$(field seconds_update "$json")
  score=$(field seconds_score "$json")
  steps=$(field update_steps "$json")
  fq=$(field n_fq "$json")
  [[ -n "$seconds" && -n "$fisher" && -n "$update" && -n "$score" && -n "$steps" ]] ||
    { echo "dataset-scale: $json lacks the method's seconds or its phases" >&2; exit 1; }
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  if [[ "$DEVICE" == cuda ]]; then
    memory="$(gib "$(field device_peak_bytes "$json")") GiB device ($(gib "$(field device_peak_reserved_bytes "$json")") reserved)"
  else
    memory="$(gib "$(field host_peak_rss_bytes "$json")") GiB host RSS"
  fi
  ROWS+=("$(printf '| %s | %s | %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %.2f | **%.2f** | %s | %s | %.0f |' \
    "$model" "$n" "$DEVICE" "$PRECISION" "$fq" "$steps" "$setup" "$fisher" "$update" "$score" "$seconds" "$wall" \
    "$memory" "$(awk -v n="$n" -v s="$seconds" 'BEGIN { print n / s }')")")
  local note auc
  note="$model, n $n: the model's test accuracy $(field test_accuracy "$json")"
  auc=$(field roc_auc "$json")
  # Detection means something only where the model was trained on the D it scores: the same
  # seeded subset, so the same flipped labels.
  [[ -n "$auc" && "$train_n" == "$n" ]] && note+="; of its $(field n_corrupted "$json") flipped labels, recall@k $(awk -v r="$(field recall_at_k "$json")" 'BEGIN { printf "%.3f", r }'), ROC AUC $(awk -v a="$auc" 'BEGIN { printf "%.3f", a }')"
  NOTES+=("$note")
  # The targets hold for one H200 at the acceptance sizes.
  local target=""
  if [[ "$DEVICE" == cuda && "$model" == resnet18 && "$n" == 50000 ]]; then
    target=$([[ "$PRECISION" == tf32 ]] && echo 30 || echo 60)
  elif [[ "$DEVICE" == cuda && "$model" == mnist-cnn && "$n" == 60000 ]]; then
    target=3
  fi
  if [[ -n "$target" ]]; then
    VERDICTS+=("$(awk -v s="$seconds" -v t="$target" -v m="$model" -v p="$PRECISION" \
      'BEGIN { printf "%s %s: ewc %.2f s against < %s s: %s", m, p, s, t, (s < t ? "met" : "MISSED") }')")
  fi
}

# ---- the runs -----------------------------------------------------------------------------------
echo "lethe: $("$LETHE" --version 2>/dev/null || echo "?") ($LETHE)" >&2
for model in "${MODEL_LIST[@]}"; do
  case "$model" in
    resnet18)
      make_cifar
      train_n="${TRAIN_N:-$((CIFAR_N < 10000 ? CIFAR_N : 10000))}"
      ckpt="$DIR/resnet18-n$train_n-e1.safetensors"
      train_checkpoint "$ckpt" --dataset cifar10 --data "$CIFAR_DIR" --model resnet18 --subset "$train_n" \
        --epochs 1 --batch 128 --no-augment
      measure resnet18 "$CIFAR_N" "$train_n" "$ckpt" --dataset cifar10 --data "$CIFAR_DIR"
      ;;
    mnist-cnn)
      [[ -f "$MNIST_DATA/train-images-idx3-ubyte" ]] ||
        die "no MNIST in '$MNIST_DATA' (lethe fetch-data mnist --data DIR, then --mnist-data DIR or LETHE_MNIST_DIR)"
      train_n="${TRAIN_N:-$((MNIST_N < 10000 ? MNIST_N : 10000))}"
      ckpt="$DIR/mnist-cnn-label-n$train_n-e5.safetensors"
      train_checkpoint "$ckpt" --data "$MNIST_DATA" --subset "$train_n" --noise label --epochs 5
      measure mnist-cnn "$MNIST_N" "$train_n" "$ckpt" --data "$MNIST_DATA"
      ;;
  esac
done

machine="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
[[ "$DEVICE" == cpu || -z "$machine" ]] &&
  machine="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores"
table="$DIR/results/table-$DEVICE-$PRECISION.md"
{
  echo "EWC-influence at dataset scale, $(date -u +%Y-%m-%dT%H:%MZ), $machine"
  echo
  echo "| model | n | device | precision | \|Fq\| | update steps | setup s | fisher s | update s | score s | ewc s | wall s | peak memory | examples/s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  printf '%s\n' "${NOTES[@]}"
  # (if, not &&: a false test as the group's last command would fail the pipeline under pipefail)
  if ((${#VERDICTS[@]})); then echo; printf '%s\n' "${VERDICTS[@]}"; fi
  if ((${#EXTRA[@]})); then echo; echo "identify flags added: ${EXTRA[*]}"; fi
} | tee "$table"
echo "(the JSON of each run and this table: $DIR/results/)" >&2
