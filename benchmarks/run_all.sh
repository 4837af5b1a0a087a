#!/usr/bin/env bash
# Run every benchmark, one after another, and print each one's wall time.
#   bash benchmarks/run_all.sh                 # all of them (about 59 minutes on 2 cores)
#   bash benchmarks/run_all.sh speed suggest   # only these
set -u
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 RAY_AUTH_MODE=disabled
PYTHON=${PYTHON:-python}
declare -A ARGS=([generate_curves]="--report benchmarks/results/generate_curves.md"
                 [hpo_replay]="all" [replay_pruning]="all" [noisy_reports]="--horizons 15000,25000 --orders 5")
ALL=(convex_numbers mpl_split bands cross_lr generalisation transfer transfer_generated suggest
     generate_curves speed memory replay_pruning noisy_reports sampler_other_params hpo_replay)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
status=0
for name in "${names[@]}"; do
    cmd="benchmarks/$name.py ${ARGS[$name]:-}"
    start=$(date +%s)
    $PYTHON $cmd > "benchmarks/results/.$name.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] && status=1
    echo "python ${cmd% } : exit $rc, $(( $(date +%s) - start )) s (output: benchmarks/results/.$name.log)"
done
exit $status
