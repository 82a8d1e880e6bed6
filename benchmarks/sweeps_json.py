"""benchmarks/results/sweeps.json from the folders that sweeps_gpu.sh and pretrain_select.sh wrote on the GPU machine.
Usage: python benchmarks/sweeps_json.py SW[,SW2...] SCREEN_JSON [--tar]   (SW: the sweep folder, unpacked from
sw_*.tar.*; several, comma-separated, merge: a run finished in an earlier folder wins, and the first folder's
defaults.json and held-out runs are used; SCREEN_JSON: pretrain_select.sh's screen.json). --tar also writes results/sweeps_runs.tar.xz (each run's config,
score and events: what the JSON was read from)."""

import json, sys, tarfile
from pathlib import Path

from arc_nb.data import Example, Task, load_tasks, write_json
from arc_nb.experiments import finished, run_result
from arc_nb.pretrain import PretrainConfig, leakage, training_pairs, holdout_ids
from arc_nb.plots import model_figures

ROOT = Path(__file__).resolve().parents[1]
SWS, SCREEN = [Path(x) for x in sys.argv[1].split(',')], Path(sys.argv[2])
SW = SWS[0]
MODEL = ROOT / 'models' / 'arc-small'
SWEEPS = ('epochs', 'lr', 'lora_rank', 'min_prob', 'n', 'max_seq_len')


def num(v):
    v = float(v)
    return int(v) if v.is_integer() else v


def record(param, value, r):
    res, cfg = run_result(r), json.loads((r / 'config.json').read_text())
    sc = json.loads((r / 'score.json').read_text())
    starts = sum(1 for l in (r / 'events.jsonl').read_text().splitlines() if '"run_start"' in l)
    return {
        'param': param,
        'value': num(value),
        'seed': cfg['seed'],
        'tasks': sorted(sc['per_task']),
        'score': sc['score'],
        'per_task': sc['per_task'],
        'runtime_s': round(res['seconds'], 1),
        'gpu': 'NVIDIA H200 (one, shared with the other runs of its call)',
        'train_tokens': res['train_tokens'],
        'infer_tokens': res['infer_tokens'],
        'resumed': starts > 1,
        'settings': {
            k: cfg[k] for k in ('lr', 'epochs', 'lora_rank', 'min_prob', 'n', 'max_seq_len', 'tasks_per_worker')
        },
    }


def folder_runs(d):
    "(setting dict, run folder) of every run folder under sweep folder d, finished or not."
    return [(dict(kv.split('=', 1) for kv in r.parent.name.split(',')), r) for r in sorted(d.glob('*/seed*'))]


runs, baseline, unfinished, held, done = [], [], [], [], set()
for sw_dir in SWS:
    for name in ('eval', *SWEEPS):
        for st, r in folder_runs(sw_dir / name):
            ((p, v),) = st.items()
            key = (p, num(v), int(r.name[4:]))
            if key in done:
                continue
            if not finished(r):
                unfinished.append({'param': p, 'value': num(v), 'seed': key[2], 'sweep': name})
                continue
            done.add(key)
            (baseline if (p, num(v)) == ('epochs', 0) else runs).append(record(p, v, r))
unfinished = [u for u in unfinished if (u['param'], u['value'], u['seed']) not in done]
for name in ('holdout', 'holdout0'):
    for st, r in folder_runs(SW / name):
        if finished(r):
            rec = record('epochs', st['epochs'], r)
            rec.update({'lr': num(st.get('lr', rec['settings']['lr'])), 'epochs': rec['value'], 'finished': True})
            held.append(rec)
        else:
            held.append({**{k: num(v) for k, v in st.items()}, 'finished': False})

pt = json.loads((MODEL / 'pretrain.json').read_text())
pc = PretrainConfig(**pt['config'])
kept = training_pairs(pc)
ev = load_tasks(pc.exclude)
train_tasks = {k: Task(k, [Example(i, o) for i, o in ps], []) for k, ps in kept.items()}
lk = leakage(train_tasks, ev)
screen = json.loads(SCREEN.read_text())
defaults = json.loads((SW / 'defaults.json').read_text())
out = {
    'info': {
        'date': '2026-12-03',
        'gpu': 'NVIDIA H200 (one); every run shared it with the other runs of its call (up to 18 at once)',
        'eval_set': 'arc-agi-1/evaluation, smallest:100 (the 100 tasks with the fewest grid cells): a fixed subset; '
        'the 400 did not fit the 30 minutes of device time a session has',
        'commands': [
            'bash benchmarks/pretrain_select.sh 80 225',
            'MODEL=models/arc-small PAR=1 HOLD_LIMIT=190 bash benchmarks/sweeps_gpu.sh all 545',
            'MODEL=models/arc-small PAR=2 bash benchmarks/sweeps_gpu.sh sweeps 235  (the same folder: finishes runs)',
        ],
        'runtime_note': 'runtime_s is wall time on a GPU shared with other runs, in different company per run, and '
        'a resumed run counts only its last part: compare work (infer_tokens, train_tokens), not runtime_s',
        'unfinished': unfinished,
    },
    'model': {
        'path': 'models/arc-small',
        'params': model_figures(MODEL)['params'],
        'pretrain_tokens': pt['tokens'],
        'pretrain_seconds': round(pt['seconds'], 1),
        'pretrain_steps': pt['step'],
        'pretrain_config': pt['config'],
        'data_tasks': len(kept),
        'data_pairs': sum(map(len, kept.values())),
        'holdout_tasks': holdout_ids(pc),
        'leakage_pairs': lk['eval_pairs_in_train'],
        'leakage_grids': lk['eval_grids_in_train'],
        'size_screen': screen,
        'ttt_defaults': {
            'lr': defaults['lr'],
            'epochs': defaults['epochs'],
            'chosen_on': 'the held-out ARC-AGI-1 training tasks no larger than the largest evaluation-subset task '
            f'({len(held[0]["tasks"]) if held and "tasks" in held[0] else "?"} tasks), seed 0: the best score, then '
            'the shortest runtime; runs cut by the time limit are listed with finished: false',
            'runs': held,
        },
    },
    'defaults': {'from': {'param': 'epochs', 'value': defaults['epochs']}, **runs[0]['settings']} if runs else {},
    'runs': runs,
    'baseline': baseline,
}
write_json(ROOT / 'benchmarks' / 'results' / 'sweeps.json', out, indent=1)
print(
    f"sweeps.json: {len(runs)} runs, {len(baseline)} baseline, {len(unfinished)} unfinished; leakage {lk['eval_pairs_in_train']} pairs"
)
if '--tar' in sys.argv:
    with tarfile.open(ROOT / 'benchmarks' / 'results' / 'sweeps_runs.tar.xz', 'w:xz') as t:
        for i, d in enumerate(SWS):
            for f in sorted(d.glob('*/*/seed*/*')):
                if f.name in ('config.json', 'score.json', 'events.jsonl'):
                    t.add(f, arcname=(f'{i}/' if len(SWS) > 1 else '') + str(f.relative_to(d)))
        t.add(SW / 'defaults.json', arcname='defaults.json')
