#!/bin/bash
# Issue 26: does pretraining on generated tasks (arc_nb.synth) make a better small model? On one GPU, at once: the same
# size and schedule pretrained from scratch for SECONDS with a share of generated tasks (each of SYNTHS), then each model
# (and BASELINE, default models/arc-small) on the held-out ARC-AGI-1 training tasks: held-out loss (benchmarks/heldout.py)
# and a TTT score at epochs 0 and EPOCHS (lr LR, one seed; `arc-nb sweep`). Never the evaluation set.
#   Usage: benchmarks/pretrain_synth.sh SECONDS [SWEEP_SECONDS]
# Env: SIZE (layers:hidden:heads:intermediate, default 8:320:8:1280), SYNTHS (default "0 0.5"), WORKERS (sequence
# drawers per pretraining, default 7), INIT (a model folder every pretraining starts from instead of from scratch).
# Writes $OUT/synth.tar.xz (logs, held-out JSON, sweep records) and each model as $OUT/model_<synth>.tar.part*.
set -o pipefail
T=${1:-360}; SWT=${2:-170}; SIZE=${SIZE:-8:320:8:1280}; OUTD=${OUT:-/tmp/ps_out}; PT=${PT_DIR:-/tmp/ps}
LR=${LR:-3e-4}; EPOCHS=${EPOCHS:-10}; BASELINE=${BASELINE:-models/arc-small}
mkdir -p $PT $OUTD; T0=$(date +%s)
IFS=: read L H A I <<< "$SIZE"
arcnb() { python3 -c "import sys; from arc_nb.cli import main; sys.exit(main())" "$@"; }
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 10 > $PT/gpu.csv 2>/dev/null &
ARCH="--layers $L --hidden $H --heads $A --intermediate $I"; [ -n "$INIT" ] && ARCH="--init-from $INIT"
for s in ${SYNTHS:-0 0.5}; do
  arcnb pretrain --out $PT/pt_$s $ARCH --synthetic $s --workers ${WORKERS:-7} --time-limit $T --quiet \
    --export $PT/model_$s > $PT/pt_$s.log 2>&1 &
done
wait $(jobs -p | tail -n +2)
for s in ${SYNTHS:-0 0.5}; do tail -2 $PT/pt_$s.log; done
MODELS="$BASELINE $(for s in ${SYNTHS:-0 0.5}; do echo $PT/model_$s; done)"
python3 benchmarks/heldout.py $MODELS > $PT/heldout.json
HOLD=$(python3 -c "from arc_nb.pretrain import holdout_ids, PretrainConfig; print(','.join(holdout_ids(PretrainConfig())))")
echo '{"decode": "auto", "tasks_per_worker": 8}' > $PT/base.json
: > $PT/pids
for m in $MODELS; do
  n=$(basename $m)
  setsid python3 -c "import sys; from arc_nb.cli import main; sys.exit(main())" sweep --model $m --mode fused \
    --config $PT/base.json --out $PT/sw_$n --quiet --data arc-agi-1/training --tasks $HOLD --lr $LR \
    --param epochs=0,$EPOCHS --seeds 1 --parallel 2 > $PT/sw_$n.log 2>&1 &
  echo $! >> $PT/pids
done
END=$(( $(date +%s) + SWT ))
while [ $(date +%s) -lt $END ]; do
  alive=0; for p in $(cat $PT/pids); do kill -0 $p 2>/dev/null && alive=1; done; [ $alive = 0 ] && break; sleep 2
done
for p in $(cat $PT/pids); do kill -0 $p 2>/dev/null && { echo "time limit: stopping sweep $p"; kill -- -$p; }; done
sleep 2; for p in $(cat $PT/pids); do kill -9 -- -$p 2>/dev/null; done
for m in $MODELS; do echo "== $(basename $m)"; python3 benchmarks/sweeps_collect.py --table $PT/sw_$(basename $m) 2>&1 | sed 's/^/  /'; done
python3 -c "
import json; d = json.load(open('$PT/heldout.json'))
for m, r in d['models'].items(): print(f\"{m:28s} params {r['params']/1e6:5.1f}M  tokens {r.get('tokens', 0)/1e6:6.1f}M  held-out loss {r['mean_loss']:.4f}\")"
kill %1 2>/dev/null
tar -C $PT --exclude='*.safetensors' --exclude='*.bin' --exclude='pt_*/checkpoint*' --exclude='pt_*/init' -cJf $OUTD/synth.tar.xz .
for s in ${SYNTHS:-0 0.5}; do tar -C $PT -cf - model_$s | split -b 15M - $OUTD/model_$s.tar.part; done
echo "total: $(( $(date +%s) - T0 )) s"
