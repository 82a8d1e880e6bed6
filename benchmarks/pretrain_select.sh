#!/bin/bash
# Choose the small model's size by measurement, then train it: SIZES (layers:hidden:heads:intermediate, one per
# word) each pretrain from scratch for SCREEN seconds on the same data and schedule; the lowest mean training loss
# over the last three logged points (equal wall-clock time) continues for TRAIN seconds more. The exported model
# (fp16, a --model folder) goes to MODEL_DIR (default .carry/model, ignored by git: a chained call finds it there)
# and, with the screen's table and logs, under $OUT.  Usage: benchmarks/pretrain_select.sh [SCREEN] [TRAIN]
# INIT=MODEL_DIR skips the screen and trains MODEL_DIR's weights on for TRAIN seconds (a fresh optimizer): how a later
# call continues models/arc-small.
set -eo pipefail
SCREEN=${1:-80}; TRAIN=${2:-230}; MODEL_DIR=${MODEL_DIR:-.carry/model}; OUT=${OUT:-/tmp/pt_out}
SIZES=${SIZES:-"6:256:8:1024 8:320:8:1280 8:384:8:1536"}
PT=${PT_DIR:-/tmp/ps}; mkdir -p $PT $OUT
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 10 > $OUT/gpu.csv 2>/dev/null &
arcnb() { python3 -c "import sys; from arc_nb.cli import main; sys.exit(main())" "$@"; }
if [ -n "$INIT" ]; then
  arcnb pretrain --out $PT/cont --init-from $INIT --time-limit $TRAIN --quiet --export $MODEL_DIR ${PT_ARGS} 2>&1 | tail -3
  kill %1 2>/dev/null || true
  cp -r $MODEL_DIR $OUT/model; cp $PT/cont/checkpoint/state.json $OUT/state.json
  exit 0
fi
for s in $SIZES; do
  IFS=: read L H A I <<< "$s"
  arcnb pretrain --out $PT/$s --layers $L --hidden $H --heads $A --intermediate $I --time-limit $SCREEN \
    --quiet ${PT_ARGS} > $PT/$s.log 2>&1 || { tail -5 $PT/$s.log; exit 1; }
  tail -1 $PT/$s.log
done
BEST=$(python3 benchmarks/pretrain_pick.py $PT $SIZES | tee $OUT/screen.json | python3 -c "import json,sys; print(json.load(sys.stdin)['best'])")
echo "best: $BEST"; cat $OUT/screen.json
arcnb pretrain --out $PT/$BEST --time-limit $TRAIN --quiet --export $MODEL_DIR ${PT_ARGS} 2>&1 | tail -3
kill %1 2>/dev/null || true
cp -r $MODEL_DIR $OUT/model
cp $PT/$BEST/checkpoint/state.json $OUT/state.json
