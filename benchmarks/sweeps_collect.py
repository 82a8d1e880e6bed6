"""Read `arc-nb sweep` folders made by sweeps_gpu.sh.
--holdout TASKS SW  : the held-out training task ids no larger than the evaluation subset's largest (comma-separated)
--pick DIR          : the best (lr, epochs) of a held-out sweep as JSON (score, then shortest runtime), with its table
--table SW          : a short table of every finished run under SW
--progress SW       : one line: finished runs, and tasks done by the unfinished ones (to see a stall early)
"""

import json, sys
from pathlib import Path

from arc_nb.experiments import run_result, finished

RESULTS = Path(__file__).resolve().parent / 'results'


def run_record(r, gpu: str) -> tuple[dict, dict]:
    "A finished run folder's config.json, and its seed, tasks, score, per-task scores, runtime and tokens as a record."
    cfg, sc = (json.loads((Path(r) / f).read_text()) for f in ('config.json', 'score.json'))
    res = run_result(r)
    rec = dict(seed=cfg['seed'], tasks=sorted(sc['per_task']), score=sc['score'], per_task=sc['per_task'],
               runtime_s=round(res['seconds'], 1), gpu=gpu, train_tokens=res['train_tokens'],
               infer_tokens=res['infer_tokens'])
    return cfg, rec


def tar_runs(name, sw, pattern):
    "Each run's config, score and events (what a results JSON was read from) under folder `sw` into results/NAME."
    import tarfile

    with tarfile.open(RESULTS / name, 'w:xz') as t:
        for f in sorted(Path(sw).glob(pattern)):
            if f.name in ('config.json', 'score.json', 'events.jsonl'):
                t.add(f, arcname=str(f.relative_to(sw)))


def runs(d):
    "(setting dict, seed, run_result) of every finished run under sweep folder d (d/<k=v,...>/seed<N>)."
    out = []
    for r in sorted(Path(d).glob('*/seed*')):
        if not finished(r):
            continue
        st = dict(kv.split('=', 1) for kv in r.parent.name.split(','))
        out.append((st, int(r.name[4:]), run_result(r)))
    return out


def holdout(tasks):
    from arc_nb.pretrain import PretrainConfig, holdout_ids
    from arc_nb.scheduler import read_source, select_tasks, task_cells

    ch, _, _ = read_source('arc-agi-1/evaluation')
    top = max(task_cells(ch[k]) for k in select_tasks(list(ch), tasks, ch))
    tr, _, _ = read_source('arc-agi-1/training')
    return [k for k in holdout_ids(PretrainConfig()) if task_cells(tr[k]) <= top]


if __name__ == '__main__':
    if sys.argv[1] == '--holdout':
        print(','.join(holdout(sys.argv[2])))
    elif sys.argv[1] == '--pick':
        rs = runs(sys.argv[2])
        if not rs:
            sys.exit(f"{sys.argv[2]}: no finished run to choose from")
        table = [
            {**{k: float(v) for k, v in st.items()}, 'score': r['score'], 'seconds': r['seconds']} for st, _, r in rs
        ]
        best = max(table, key=lambda t: (t['score'], -t['seconds']))
        print(json.dumps({'lr': best['lr'], 'epochs': int(best['epochs']), 'runs': table}))
    elif sys.argv[1] == '--progress':
        done, total, tasks = 0, 0, 0
        for r in sorted(Path(sys.argv[2]).glob('*/*/seed*')):
            total += 1
            if finished(r):
                done += 1
            elif (r / 'events.jsonl').exists():
                tasks += sum('"task_end"' in line for line in open(r / 'events.jsonl', errors='replace'))
        print(f"{done}/{total} runs finished; the others have {tasks} tasks done")
    elif sys.argv[1] == '--table':
        for d in sorted(p for p in Path(sys.argv[2]).iterdir() if p.is_dir()):
            for st, seed, r in runs(d):
                print(
                    f"{d.name:12s} {','.join(f'{k}={v}' for k, v in st.items()):28s} seed{seed} "
                    f"score {r['score']:5.1f}  {r['seconds']:6.0f} s  tasks {r['tasks']}"
                )
