"""benchmarks/results/holdout_cpu.json from the folder benchmarks/holdout_cpu.sh wrote: the small model's TTT settings
(lr x epochs, and no TTT) on the 24 held-out ARC-AGI-1 training tasks at 3 seeds, on the CPU; each setting's mean
score and its paired difference from no TTT and from the GPU's chosen default (lr 3e-4, 10 epochs), with a 95%
bootstrap interval over tasks. Also writes results/holdout_cpu_runs.tar.xz (each run's config, score and events).

    python benchmarks/holdout_cpu.py /tmp/hoc
"""

import json, sys
from pathlib import Path

from arc_nb.data import write_json
from arc_nb.experiments import finished, mean_ci, paired_diff
from sweeps_collect import run_record, tar_runs

ROOT = Path(__file__).resolve().parents[1]
SW = Path(sys.argv[1])


def num(v):
    v = float(v)
    return int(v) if v.is_integer() else v


runs, unfinished = [], []
for r in sorted(SW.glob('*/*/seed*')):
    st = {k: num(v) for k, v in (kv.split('=', 1) for kv in r.parent.name.split(','))}
    cfg = json.loads((r / 'config.json').read_text())
    key = dict(lr=num(cfg['lr']) if st.get('epochs') else None, epochs=st['epochs'], seed=cfg['seed'])
    if not finished(r):
        unfinished.append(key)
        continue
    runs.append({**key, **run_record(r, 'none: this 2-core CPU machine, two runs at once, one thread each')[1]})

gpu = json.loads((ROOT / 'benchmarks' / 'results' / 'sweeps.json').read_text())['model']['ttt_defaults']
chosen = (gpu['lr'], gpu['epochs'])
group = lambda lr, e: [r for r in runs if (r['lr'], r['epochs']) == (lr, e)]
none = [r for r in runs if r['epochs'] == 0]
table = []
for lr, e in sorted({(r['lr'], r['epochs']) for r in runs}, key=lambda x: (x[1], x[0] or 0)):
    g = group(lr, e)
    m, lo, hi = mean_ci([r['score'] for r in g])
    row = dict(lr=lr, epochs=e, seeds=len(g), score=m, score_ci=[lo, hi], solved_any=sorted(
        {t for r in g for t, v in r['per_task'].items() if v > 0}))  # fmt: skip
    if e and none:
        row['vs_no_ttt'] = paired_diff(none, g)
    if e and (lr, e) != chosen and group(*chosen):
        row['vs_chosen'] = paired_diff(group(*chosen), g)
    table.append(row)
best = max((r for r in table if r['epochs']), key=lambda r: r['score'], default=None)
out = {
    'info': {
        'date': '2026-12-04',
        'device': 'CPU',
        'what': __doc__.split('\n\n')[0],
        'command': 'PATH=.venv/bin:$PATH bash benchmarks/holdout_cpu.sh /tmp/hoc && python benchmarks/holdout_cpu.py /tmp/hoc',
        'tasks': 'the held-out ARC-AGI-1 training tasks no larger than the evaluation subset\'s largest (sweeps.json '
        'model.ttt_defaults.runs[0].tasks): never evaluation tasks',
        'gpu_choice': {'lr': gpu['lr'], 'epochs': gpu['epochs'], 'seeds': 1},
        'unfinished': unfinished,
    },
    'table': table,
    'best': {k: best[k] for k in ('lr', 'epochs', 'score', 'seeds')} if best else None,
    'runs': runs,
}
write_json(ROOT / 'benchmarks' / 'results' / 'holdout_cpu.json', out, indent=1)
tar_runs('holdout_cpu_runs.tar.xz', SW, '*/*/seed*/*')
for r in table:
    d = r.get('vs_no_ttt')
    c = r.get('vs_chosen')
    print(
        f"lr {r['lr'] if r['lr'] is not None else '-':>6} x {r['epochs']:>2} epochs: {r['score']:5.2f}% over {r['seeds']} seeds"
        + (f"; vs no TTT {d['diff']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]" if d else '')
        + (f"; vs lr {chosen[0]:g} x {chosen[1]} {c['diff']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]" if c else '')
    )
print(f"{len(runs)} runs, {len(unfinished)} unfinished -> benchmarks/results/holdout_cpu.json")
