#!/usr/bin/env bash
# Every GPU figure of benchmarks/README.md, on one GPU machine. The device tool limits one command to 10 minutes,
# so the parts were sent as separate calls (the lines below, in this order); on an ordinary GPU box this
# script runs them in one go. Then copy $OUT/*.json to benchmarks/results/ and run benchmarks/report.py.
# Sections 5-6 (2026-12-02): the decoder benchmark, then pretraining the small model and its TTT sweep
# (pretrain_gpu.sh continues models/arc-small as the repo holds it, so it repeats the recipe, not these weights;
# it leaves the checkpoint as $OUT/ckpt.tar.*: unpack it over models/arc-small before ttt_gain.sh).
set -euo pipefail
OUT=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1 BENCH_DISK=${BENCH_DISK:-/tmp}
python3 benchmarks/gpu_bench.py --sections overhead,throughput,dfs --model 7b --out "$OUT/engine.json"
python3 benchmarks/gpu_bench.py --sections profile --model 7b --out "$OUT/profile.json"
python3 benchmarks/gpu_bench.py --sections scheduled --model 1b --out "$OUT/scheduled.json"
python3 benchmarks/decode_bench.py --out "$OUT"
python3 benchmarks/decode_bench.py --sections equality --variants fused+compiled --equality-s 200 --out "$OUT/decode_equality.json"
bash benchmarks/pretrain_gpu.sh 500 --batch-tokens 65536 --loss-on outputs
bash benchmarks/ttt_gain.sh /tmp/ttt 3600
python3 benchmarks/report.py
