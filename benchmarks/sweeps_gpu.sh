#!/bin/bash
# The small model's TTT evidence on one GPU, in phases that fit 10-minute calls (a second call of a phase finishes
# what a time limit cut: finished runs are skipped).
#   defaults LIMIT : TTT's lr x epochs (and no TTT) on the held-out training tasks (holdout_ids, the ones no larger
#                    than the evaluation subset's largest task), seed 0; the best score (then the shortest runtime)
#                    becomes SW/defaults.json; then the evaluation subset at those defaults and at epochs 0, 3 seeds
#   sweeps LIMIT   : every other sweep around the defaults on the evaluation subset, 3 seeds each
#   all LIMIT      : defaults, then the evaluation and the sweeps at once (one call; the sweeps get what is left)
# Env: MODEL (default .carry/model), SW (sweep folder, default /tmp/sw), TASKS (default smallest:100), K (tasks per
# worker, default 8), PAR (runs at once per sweep). Writes SW/<sweep>/... and, under $OUT, a tar of SW (no weights).
set -o pipefail
PHASE=$1; LIMIT=${2:-480}; T0=$(date +%s)
MODEL=${MODEL:-.carry/model}; SW=${SW:-/tmp/sw}; TASKS=${TASKS:-smallest:100}; K=${K:-8}
mkdir -p $SW; echo "{\"decode\": \"auto\", \"tasks_per_worker\": $K}" > $SW/base.json
: > $SW/pids
sweep() {  # sweep DIR ARGS...: one `arc-nb sweep` in the background, in its own process group
  local d=$1; shift
  setsid python3 -c "import sys; from arc_nb.cli import main; sys.exit(main())" sweep --model $MODEL --mode fused \
    --config $SW/base.json --out $SW/$d --quiet "$@" > $SW/$d.log 2>&1 &
  echo $! >> $SW/pids
}
wait_until() {  # wait_until EPOCH: until every sweep ends or the time comes; then stop what still runs
  while [ $(date +%s) -lt $1 ]; do
    alive=0; for p in $(cat $SW/pids); do kill -0 $p 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 2
    if [ $(date +%s) -ge ${NEXT:=$(( $(date +%s) + 60 ))} ]; then  # a line a minute: a stall shows early
      echo "$(( $(date +%s) - T0 )) s: $(python3 benchmarks/sweeps_collect.py --progress $SW)"; NEXT=$(( $(date +%s) + 60 ))
    fi
  done
  for p in $(cat $SW/pids); do kill -0 $p 2>/dev/null && { echo "time limit: stopping sweep $p"; kill -- -$p; }; done
  sleep 3; for p in $(cat $SW/pids); do kill -9 -- -$p 2>/dev/null; done; : > $SW/pids
}
finish() {
  python3 benchmarks/sweeps_collect.py --table $SW
  [ -n "$OUT" ] && tar -C $SW --exclude='*.safetensors' --exclude='*.bin' -cJf - . | split -b 15M - $OUT/sw_$PHASE.tar.
  echo "phase $PHASE: $(( $(date +%s) - T0 )) s"
}
sweeps_around() {  # the other sweeps around lr $1, epochs $2, PAR runs at once each
  common="--data arc-agi-1/evaluation --tasks $TASKS --lr $1 --epochs $2 --seeds 3 --parallel ${PAR:-2}"
  sweep epochs $common --param epochs=$(python3 -c "print(','.join(str(max(1, round($2 * f))) for f in (0.5, 2)))")
  sweep lr $common --param lr=$(python3 -c "print(f'{$1 / 3:.3g},{$1 * 3:.3g}')")
  sweep lora_rank $common --param lora_rank=${RANKS:-8,64}
  sweep min_prob $common --param min_prob=${MIN_PROBS:-0.05,0.3}
  sweep n $common --param n=${NS:-1,4}
  sweep max_seq_len $common --param max_seq_len=${MSLS:-384,640}
}
if [ "$PHASE" = defaults ] || [ "$PHASE" = all ]; then
  HOLD=$(python3 benchmarks/sweeps_collect.py --holdout $TASKS) || exit 1
  echo "held-out tasks: $(echo $HOLD | tr ',' '\n' | wc -l)"
  sweep holdout --data arc-agi-1/training --tasks $HOLD --param lr=${LRS:-3e-4,1e-3,3e-3} --param epochs=${EPS:-5,10} \
    --seeds 1 --parallel ${PAR:-9}
  sweep holdout0 --data arc-agi-1/training --tasks $HOLD --param epochs=0 --seeds 1
  wait_until $(( T0 + ${HOLD_LIMIT:-200} ))
  python3 benchmarks/sweeps_collect.py --pick $SW/holdout > $SW/defaults.json \
    || echo '{"lr": 0.001, "epochs": 10, "runs": [], "fallback": "no held-out run finished in time"}' > $SW/defaults.json
  cat $SW/defaults.json
  LR=$(python3 -c "import json; print(json.load(open('$SW/defaults.json'))['lr'])")
  E=$(python3 -c "import json; print(json.load(open('$SW/defaults.json'))['epochs'])")
  sweep eval --data arc-agi-1/evaluation --tasks $TASKS --lr $LR --param epochs=0,$E --seeds 3 --parallel 6
  [ "$PHASE" = all ] && sweeps_around $LR $E  # at once, behind the evaluation: what the time limit leaves
  wait_until $(( T0 + LIMIT ))
  finish
elif [ "$PHASE" = sweeps ]; then
  LR=${LR:-$(python3 -c "import json; print(json.load(open('$SW/defaults.json'))['lr'])")}
  E=${EPOCHS:-$(python3 -c "import json; print(json.load(open('$SW/defaults.json'))['epochs'])")}
  sweeps_around $LR $E
  wait_until $(( T0 + LIMIT ))
  finish
else
  echo "usage: $0 defaults|sweeps [SECONDS]"; exit 2
fi
