#!/usr/bin/env bash
# 1 rank x 2 threads against 2 ranks x 1 thread on this machine, for `lethe train` and
# `lethe identify --method ewc` on 3,000 label-noise MNIST examples, and for the subset models of
# `lethe benchmark` (8 models on halves of 1,000 examples, 3 epochs; one model a rank at a time
# across ranks) (docs/scale-out.md).
#   bash bench/scale-out.sh [build dir] [MNIST folder]
# Prints each run's wall time and lethe's own seconds; the runs repeat `reps` times (default 3)
# and the figures are the median. WHAT="benchmark" (say) runs only some of the three.
set -euo pipefail
build=${1:-build}
data=${2:-data/mnist}
reps=${REPS:-3}
what_list=${WHAT:-train identify benchmark}
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
[[ " $what_list " == *" identify "* ]] && "$lethe" --threads 2 "${train[@]}" > /dev/null  # the model identify scores
identify=(--quiet identify --model-file "$work/model.safetensors" --data "$data" --method ewc --json --out "$work/s.csv")
# The benchmark's base model is trained once, into a cache every run starts from, so that a run
# trains the subset models alone (and both layouts pick the same queries).
benchmark=(--quiet --seed 0 benchmark --data "$data" --subset 1000 --epochs 3 --methods loss --json)
if [[ " $what_list " == *" benchmark "* ]]; then
  "$lethe" --threads 2 "${benchmark[@]}" --subsets 2 --out-dir "$work/base" > /dev/null
  rm "$work"/base/models/subset-*
fi
fresh_cache() { rm -rf "$work/bench"; cp -r "$work/base" "$work/bench"; }

for what in $what_list; do
  for layout in "1x2" "2x1"; do
    walls=() inner=()
    for ((i = 0; i < reps; i++)); do
      case "$what" in
        train) args=("${train[@]}"); args[-1]="$work/m-$layout.safetensors" ;;
        identify) args=("${identify[@]}") ;;
        benchmark) args=("${benchmark[@]}" --subsets 8 --out-dir "$work/bench"); fresh_cache ;;
      esac
      if [ "$layout" = 1x2 ]; then
        w=$(OMP_NUM_THREADS=2 wall "$lethe" --threads 2 "${args[@]}")
      else
        w=$(wall mpirun "${mpirun_flags[@]}" "$lethe" --threads 1 "${args[@]}")
      fi
      walls+=("$w")
      case "$what" in
        train) inner+=("$(field 'sum(j["epoch_seconds"])')") ;;
        identify) inner+=("$(field 'j["seconds"]')") ;;
        benchmark) inner+=("$(field 'j["subset_models"]["seconds"]')") ;;
      esac
    done
    printf '%-9s %s  wall %6.2f s   %s %6.2f s\n' "$what" "$layout" "$(printf '%s\n' "${walls[@]}" | median)" \
      "$(case "$what" in train) echo "epochs" ;; identify) echo "method" ;; *) echo "subset models" ;; esac)" \
      "$(printf '%s\n' "${inner[@]}" | median)"
    [ "$what" = identify ] && field '"          last run: Fisher %.2f s, update on Fq %.2f s, scoring %.2f s" % (j["stats"]["seconds_fisher"], j["stats"]["seconds_update"], j["stats"]["seconds_score"])'
  done
done
