#!/usr/bin/env bash
# 1 rank x 2 threads against 2 ranks x 1 thread on this machine, for `lethe train` and
# `lethe identify --method ewc` on 3,000 label-noise MNIST examples (docs/scale-out.md).
#   bash bench/scale-out.sh [build dir] [MNIST folder]
# Prints each run's wall time and lethe's own seconds; the runs repeat `reps` times (default 3)
# and the figures are the median.
set -euo pipefail
build=${1:-build}
data=${2:-data/mnist}
reps=${REPS:-3}
lethe="$build/lethe"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpirun_flags=(--allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1)

wall() {  # prints the command's wall seconds, its stdout to $work/out
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$work/out"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { python3 -c "import json,sys; j=json.load(open('$work/out')); print($1)"; }

train=(--quiet train --data "$data" --subset 3000 --noise label --epochs 3 --batch 64 --json --out "$work/model.safetensors")
"$lethe" --threads 2 "${train[@]}" > /dev/null  # the model identify scores
identify=(--quiet identify --model-file "$work/model.safetensors" --data "$data" --method ewc --json --out "$work/s.csv")

for what in train identify; do
  for layout in "1x2" "2x1"; do
    walls=() inner=()
    for ((i = 0; i < reps; i++)); do
      if [ "$what" = train ]; then args=("${train[@]}"); args[-1]="$work/m-$layout.safetensors"; else args=("${identify[@]}"); fi
      if [ "$layout" = 1x2 ]; then
        w=$(OMP_NUM_THREADS=2 wall "$lethe" --threads 2 "${args[@]}")
      else
        w=$(wall mpirun "${mpirun_flags[@]}" "$lethe" --threads 1 "${args[@]}")
      fi
      walls+=("$w")
      if [ "$what" = train ]; then inner+=("$(field 'sum(j["epoch_seconds"])')"); else inner+=("$(field 'j["seconds"]')"); fi
    done
    printf '%-9s %s  wall %6.2f s   %s %6.2f s\n' "$what" "$layout" "$(printf '%s\n' "${walls[@]}" | median)" \
      "$([ "$what" = train ] && echo "epochs" || echo "method")" "$(printf '%s\n' "${inner[@]}" | median)"
    [ "$what" = identify ] && field '"          last run: Fisher %.2f s, update on Fq %.2f s, scoring %.2f s" % (j["stats"]["seconds_fisher"], j["stats"]["seconds_update"], j["stats"]["seconds_score"])'
  done
done
