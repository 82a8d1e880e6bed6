"""benchmarks/results/eval_cpu.json from the folder benchmarks/eval_cpu.sh wrote: the evaluation subset (the 100
ARC-AGI-1 evaluation tasks with the fewest grid cells) at the TTT setting the held-out training tasks pick at 3 seeds
(holdout_cpu.json), on the CPU; its paired differences from the GPU's runs of no TTT and of the earlier default on the
same tasks (sweeps.json; per task the mean over each side's seeds), with a 95% bootstrap interval over tasks. Also
writes results/eval_cpu_runs.tar.xz (each run's config, score and events).

    python benchmarks/eval_cpu.py /tmp/evc
"""

import json, sys
from pathlib import Path

from arc_nb.data import write_json
from arc_nb.experiments import default_runs, finished, mean_ci, paired_diff
from sweeps_collect import run_record, tar_runs

ROOT = Path(__file__).resolve().parents[1]
SW = Path(sys.argv[1])
sw = json.loads((ROOT / 'benchmarks' / 'results' / 'sweeps.json').read_text())
ho = json.loads((ROOT / 'benchmarks' / 'results' / 'holdout_cpu.json').read_text())

runs, unfinished = [], []
for r in sorted(SW.glob('eval/*/seed*')):
    if not finished(r):
        unfinished.append(str(r))
        continue
    cfg, rec = run_record(r, 'none: this 2-core CPU machine, one thread a run (seeds 0 and 1 at once, then 2)')
    runs.append({
        'param': 'lr x epochs', 'value': f"{cfg['lr']:g} x {cfg['epochs']}", 'lr': cfg['lr'], 'epochs': cfg['epochs'], **rec,
        'settings': {k: cfg[k] for k in ('lr', 'epochs', 'lora_rank', 'min_prob', 'n', 'max_seq_len', 'tasks_per_worker')},
    })  # fmt: skip
assert runs and all(r['tasks'] == sw['baseline'][0]['tasks'] for r in runs), "not the GPU runs' evaluation subset"
base, dflt = sw['baseline'], default_runs(sw)
m, lo, hi = mean_ci([r['score'] for r in runs])
out = {
    'info': {
        'date': '2026-12-04',
        'device': 'CPU',
        'what': __doc__.split('\n\n')[0],
        'command': 'PATH=.venv/bin:$PATH bash benchmarks/eval_cpu.sh /tmp/evc 3e-3 5 "0 1" && '
        'PATH=.venv/bin:$PATH bash benchmarks/eval_cpu.sh /tmp/evc 3e-3 5 2 && python benchmarks/eval_cpu.py /tmp/evc',
        'picked_by': 'holdout_cpu.json: the best mean score over 3 seeds on the held-out training tasks, then the '
        'shortest runtime (the rule of sweeps_collect.py --pick)',
        'held_out_pick': ho['best'],
        'comparable': "the other side's runs are the GPU's (sweeps.json, an H200); on the held-out tasks the CPU "
        "reproduced the GPU's four finished seed-0 runs task for task",
        'unfinished': unfinished,
    },
    'runs': runs,
    'score': {'mean': m, 'ci95_over_seeds': [lo, hi]},
    'vs_no_ttt': paired_diff(base, runs),
    'vs_default': paired_diff(dflt, runs),
    'default_vs_no_ttt': paired_diff(base, dflt),
    'solved': sorted({t for r in runs for t, v in r['per_task'].items() if v > 0}),
}
write_json(ROOT / 'benchmarks' / 'results' / 'eval_cpu.json', out, indent=1)
tar_runs('eval_cpu_runs.tar.xz', SW, 'eval/*/seed*/*')
f = lambda d: f"{d['diff']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] over {d['tasks']} tasks"
print(f"lr {runs[0]['lr']:g} x {runs[0]['epochs']}: {[round(r['score'], 2) for r in runs]}, mean {m:.2f}")
print(f"against no TTT (GPU): {f(out['vs_no_ttt'])}; against the earlier default (GPU): {f(out['vs_default'])}")
print(f"the earlier default against no TTT: {f(out['default_vs_no_ttt'])}; solved: {out['solved']}")
