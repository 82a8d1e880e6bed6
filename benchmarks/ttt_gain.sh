#!/bin/bash
# What TTT buys models/arc-small on ARC-AGI-1 evaluation: the 100 tasks with the fewest grid cells, TTT epochs
# 0 (no TTT) and 10 (the default), 3 seeds each, everything else at its default (PARAM=epochs=0,3,10 adds a point). One sweep; finished runs are
# skipped, so a second call finishes what a time limit cut. Usage: benchmarks/ttt_gain.sh [SWEEP_DIR] [SECONDS]
# Writes SWEEP_DIR/results.csv and sweep_epochs.png; under $OUT (GPU machine) a tar of the sweep in 15 MiB parts.
set -o pipefail
SWEEP=${1:-/tmp/ttt}; LIMIT=${2:-540}; DECODE=${DECODE:-auto}; PARALLEL=${PARALLEL:-6}
mkdir -p $SWEEP
[ -f $SWEEP/results.csv ] || ls $SWEEP/epochs=* >/dev/null 2>&1 || { ls .carry/ttt.tar.* >/dev/null 2>&1 && cat .carry/ttt.tar.* | tar -xJ -C $SWEEP; }
echo "{\"decode\": \"$DECODE\"}" > $SWEEP/base.json
setsid python3 -c "import sys; from arc_nb.cli import main; sys.exit(main())" sweep --data arc-agi-1/evaluation \
  --tasks ${TASKS:-smallest:100} --model models/arc-small --param ${PARAM:-epochs=0,10} --seeds 3 --mode fused --train-slots ${SLOTS:-5} \
  --parallel $PARALLEL --config $SWEEP/base.json --out $SWEEP --quiet > $SWEEP/sweep.log 2>&1 &
pid=$!
for i in $(seq $LIMIT); do kill -0 $pid 2>/dev/null || break; sleep 1; done
if kill -0 $pid 2>/dev/null; then echo "time limit: stopping the sweep (a second call finishes it)"; kill -- -$pid; sleep 3; kill -9 -- -$pid 2>/dev/null; fi
grep -v Warning $SWEEP/sweep.log | tail -12
ls -d $SWEEP/epochs=*/seed* | while read r; do echo "$r $(cat $r/score.json 2>/dev/null | head -c 40)"; done
[ -f $SWEEP/results.csv ] && cat $SWEEP/results.csv | cut -d, -f1-8
if [ -n "$OUT" ]; then tar -C $SWEEP -cJf - . | split -b 15M - $OUT/ttt.tar.; fi
