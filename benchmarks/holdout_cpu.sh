#!/bin/bash
# The small model's TTT defaults on the held-out ARC-AGI-1 training tasks, at 3 seeds, on this 2-core CPU machine (no
# GPU): the GPU's choice (sweeps.json model.ttt_defaults) had one seed and cut the lr 1e-3 x 10 and 3e-3 runs. The same
# 24 tasks (the held-out ones no larger than the evaluation subset's largest), lr x epochs and no TTT; round by round
# (seed 0 of every setting, then 1, then 2), two runs at once with one thread each. A second start finishes what a
# first left. Usage: PATH=.venv/bin:$PATH bash benchmarks/holdout_cpu.sh [SW]   (default /tmp/hoc)
set -o pipefail
SW=${1:-/tmp/hoc}; T0=$(date +%s); mkdir -p $SW
TASKS=$(python3 -c "import json; print(','.join(json.load(open('benchmarks/results/sweeps.json'))['model']['ttt_defaults']['runs'][0]['tasks']))")
for s in 1 2 3; do
  for d in ttt none; do
    if [ $d = ttt ]; then P="--param lr=3e-4,1e-3,3e-3 --param epochs=5,10"; else P="--param epochs=0"; fi
    python3 -c "import sys; from arc_nb.cli import main; sys.exit(main())" sweep --model models/arc-small --gpus cpu \
      --mode fused --train-slots 1 --cpu-threads 1 --data arc-agi-1/training --tasks $TASKS --seeds $s --parallel 2 \
      --out $SW/$d --quiet $P >> $SW/$d.log 2>&1
    rc=$?; echo "$(( $(date +%s) - T0 )) s: $d, $s seed(s) done (exit $rc)"
  done
done
