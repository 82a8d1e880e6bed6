#!/bin/bash
# The evaluation subset (the 100 ARC-AGI-1 evaluation tasks with the fewest grid cells, sweeps.json's) at one more TTT
# setting, on this 2-core CPU machine (no GPU lent): the setting the held-out training tasks pick at 3 seeds
# (holdout_cpu.json: best mean score, then the shortest runtime, the rule of sweeps_collect.py --pick). SEEDS runs at
# once, one thread each (two fit the two cores: 12-15 minutes a run at lr 3e-3 x 5); the folders are a sweep's, so
# `arc-nb sweep` on SW/eval skips them once finished. Compared with the GPU's runs of the same tasks (sweeps.json) by eval_cpu.py.
# Usage: PATH=.venv/bin:$PATH bash benchmarks/eval_cpu.sh [SW] [LR] [EPOCHS] [SEEDS]   (default /tmp/evc 3e-3 5 "0 1")
SW=${1:-/tmp/evc}; LR=${2:-3e-3}; E=${3:-5}; SEEDS=${4:-0 1}; mkdir -p $SW/eval/epochs=$E
for s in $SEEDS; do
  python3 -c "import sys; from arc_nb.cli import main; sys.exit(main())" run --model models/arc-small --gpus cpu \
    --mode fused --train-slots 1 --cpu-threads 1 --data arc-agi-1/evaluation --tasks smallest:100 --lr $LR \
    --epochs $E --seed $s --out $SW/eval/epochs=$E/seed$s --quiet > $SW/seed$s.log 2>&1 &
done
wait; echo "done"
