"""A fixed-seed run gives the event log and submission recorded in tests/data/same_run.json: refactors (issue 20) must not change behaviour.

Regenerate the record only for an intended change of behaviour: `python tests/test_same_run.py --record`."""
import json, math, sys
from pathlib import Path
DATA = Path(__file__).parent/'data'/'same_run.json'
KEEP = ('event', 'task', 'phase', 'worker', 'steps', 'tokens', 'tokens_sq', 'loss', 'candidates', 'tests', 'n_dropped')

def the_run(out):
    "One fused CPU worker (a deterministic order) over the 3 smallest ARC-AGI-2 evaluation tasks, the small ARC model, seed 0."
    from arc_nb.scheduler import launch, RunConfig
    launch(RunConfig(out=str(out), tasks='smallest:3', model=str(Path(__file__).resolve().parents[1]/'models'/'arc-small'), gpus='cpu', mode='fused', train_slots=1, epochs=2, n=2,
                     min_prob=0.1, cpu_threads=1, monitor_interval=0, seed=0), progress=False)
    ev = [json.loads(l) for l in (out/'events.jsonl').read_text().splitlines()]
    worker = [{k: e[k] for k in KEEP if k in e} for e in ev if str(e.get('worker', '')).startswith('fused-')]
    preds = {p.parent.name: json.loads(p.read_text())['tests'] for p in sorted((out/'tasks').glob('*/predictions.json'))}
    cands = {t: [[(c['grid'], round(c['score'], 4)) for c in x['candidates']] for x in tests] for t, tests in preds.items()}
    return dict(events=worker, submission=json.loads((out/'submission.json').read_text()), candidates=cands)

def close(a, b):
    if isinstance(a, float) or isinstance(b, float): return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4)
    if isinstance(a, dict): return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b

def test_same_run(tmp_path):
    got, want = json.loads(json.dumps(the_run(tmp_path/'run'))), json.loads(DATA.read_text())
    assert got['submission'] == want['submission']
    assert [e['event'] for e in got['events']] == [e['event'] for e in want['events']]
    for g, w in zip(got['events'], want['events']): assert close(g, w), (g, w)
    assert close(got['candidates'], want['candidates'])

if __name__ == '__main__' and '--record' in sys.argv:
    import tempfile
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps(the_run(Path(tempfile.mkdtemp())/'run'), indent=0))
    print('recorded', DATA)
