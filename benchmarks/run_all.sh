#!/usr/bin/env bash
# Every GPU figure of benchmarks/README.md, on one GPU machine. The device tool limits one command to 10 minutes,
# so the three parts were sent as three calls (the lines below, in this order); on an ordinary GPU box this
# script runs them in one go. Then copy $OUT/*.json to benchmarks/results/ and run benchmarks/report.py.
set -euo pipefail
OUT=${OUT:-benchmarks/results}
export PYTHONUNBUFFERED=1 BENCH_DISK=${BENCH_DISK:-/tmp}
python3 benchmarks/gpu_bench.py --sections overhead,throughput,dfs --model 7b --out "$OUT/engine.json"
python3 benchmarks/gpu_bench.py --sections profile --model 7b --out "$OUT/profile.json"
python3 benchmarks/gpu_bench.py --sections scheduled --model 1b --out "$OUT/scheduled.json"
python3 benchmarks/report.py
