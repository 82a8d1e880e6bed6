"""The committed GPU sweeps (benchmarks/results/sweeps.json), recomputed here from their per-task results without
arc_nb.experiments, against the numbers the analysis notebooks show in their committed outputs."""

import json, re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SW = json.loads((ROOT / 'benchmarks' / 'results' / 'sweeps.json').read_text())
PARAMS = ('epochs', 'lr', 'lora_rank', 'max_seq_len', 'min_prob', 'n')
RUN_KEYS = {'param', 'value', 'seed', 'tasks', 'score', 'per_task', 'runtime_s', 'gpu'}


def test_the_file_has_the_issue_keys_and_every_score_is_its_tasks_mean():
    m = SW['model']
    assert {'path', 'params', 'pretrain_tokens', 'data_tasks', 'leakage_pairs', 'ttt_defaults'} <= set(m)
    assert m['leakage_pairs'] == 0 and {'lr', 'epochs'} <= set(m['ttt_defaults'])
    assert SW['baseline'] and all(r['param'] == 'epochs' and r['value'] == 0 for r in SW['baseline'])
    ids = None
    for r in SW['runs'] + SW['baseline']:
        assert RUN_KEYS <= set(r), r.keys()
        assert r['tasks'] == sorted(r['per_task'])
        assert all(v in (0.0, 0.5, 1.0) or 0 <= v <= 1 for v in r['per_task'].values())
        assert abs(r['score'] - 100 * sum(r['per_task'].values()) / len(r['per_task'])) < 1e-9
        ids = ids or r['tasks']
        assert r['tasks'] == ids  # one fixed evaluation subset
    assert len(ids) == 100
    # the seeds of one (param, value) are distinct
    seen = [(r['param'], r['value'], r['seed']) for r in SW['runs'] + SW['baseline']]
    assert len(seen) == len(set(seen))


def test_the_model_is_the_committed_one():
    f = ROOT / 'models' / 'arc-small' / 'model.safetensors'
    with open(f, 'rb') as fh:
        n = int.from_bytes(fh.read(8), 'little')
        head = json.loads(fh.read(n))
    shapes = [v['shape'] for k, v in head.items() if k != '__metadata__' and 'embed_tokens' not in k]
    assert SW['model']['params'] == sum(int(np.prod(s)) for s in shapes)
    pt = json.loads((ROOT / 'models' / 'arc-small' / 'pretrain.json').read_text())
    assert SW['model']['pretrain_tokens'] == pt['tokens']


def _runs(param):
    "(value, record) of a question: the runs at the defaults as the default value, the param's own, no TTT as epochs 0."
    d = SW['defaults']
    base = [(d[param], r) for r in SW['runs'] if r['param'] == d['from']['param'] and r['value'] == d['from']['value']]
    own = [(r['value'], r) for r in SW['runs'] if r['param'] == param and r['value'] != d[param]]
    return base + own + ([(0, r) for r in SW['baseline']] if param == 'epochs' else [])


def _per_task_mean(runs, ids):
    return np.array([[r['per_task'][t] for r in runs] for t in ids]).mean(axis=1)


def _paired(a, b, ids):
    "b minus a in points on `ids`, per task the mean over each side's seeds; its 95% percentile bootstrap over tasks."
    d = (_per_task_mean(b, ids) - _per_task_mean(a, ids)) * 100
    boot = d[np.random.default_rng(0).integers(0, len(d), (10_000, len(d)))].mean(axis=1)
    return [d.mean(), *np.percentile(boot, [2.5, 97.5])]


def expected(param):
    "value -> (mean score, seeds, diff, low, high): the paired bootstrap over tasks, 10,000 draws, seed 0."
    rs, dv = _runs(param), SW['defaults'][param]
    ref = [r for v, r in rs if v == dv]
    out = {}
    for v in sorted({v for v, _ in rs}):
        g = [r for vv, r in rs if vv == v]
        row = [float(np.mean([r['score'] for r in g])), len(g)]
        if v != dv:
            row += _paired(ref, g, sorted(set(ref[0]['per_task']) & set(g[0]['per_task'])))
        out[float(v)] = row
    return out


def shown(nb_path, marker):
    "The text a committed notebook printed in the cell whose source holds `marker`."
    nb = json.loads(Path(nb_path).read_text())
    for c in nb['cells']:
        if c['cell_type'] == 'code' and marker in ''.join(c['source']):
            return ''.join(''.join(o.get('text', '')) for o in c.get('outputs', []) if o.get('output_type') == 'stream')
    raise AssertionError(f"{nb_path}: no cell with {marker!r}")


NUM = r'([+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)'


@pytest.mark.parametrize('param', PARAMS)
def test_each_analysis_notebook_shows_the_json(param):
    text = shown(ROOT / 'nbs' / 'analysis' / f'{param}.ipynb', f"print(answer_lines(sw, '{param}'))")
    want = expected(param)
    got = {}
    for line in text.splitlines():
        m = re.match(
            rf"{param}={NUM}( \(default\))?: score {NUM} over (\d+) seeds;(?: diff {NUM} \[{NUM}, {NUM}\])?", line
        )
        if m:
            v, _, score, seeds, *d = m.groups()
            got[float(v)] = [float(score), int(seeds)] + [float(x) for x in d if x is not None]
    assert sorted(got) == sorted(want), (got, want)
    for v in want:
        assert got[v][1] == want[v][1]
        np.testing.assert_allclose(
            got[v][:1] + got[v][2:], want[v][:1] + want[v][2:], atol=0.006, err_msg=f"{param}={v}"
        )
    assert 'no difference detectable' in text or 'than the default' in text  # the sentence of conclusion is there


def test_the_seeds_notebook_shows_the_gain():
    text = shown(ROOT / 'nbs' / 'analysis' / 'seeds.ipynb', "g = paired_diff(sw['baseline'], dflt)")
    m = re.search(rf"paired over (\d+) tasks: {NUM} points, 95% bootstrap interval \[{NUM}, {NUM}\]", text)
    assert m, text
    want = expected('epochs')[0.0]  # no TTT against the defaults: the gain is minus that difference
    np.testing.assert_allclose([float(x) for x in m.groups()[1:]], [-want[2], -want[4], -want[3]], atol=0.006)


def test_the_gpu_usage_notebook_shows_the_workload_json():
    ways = json.loads((ROOT / 'benchmarks' / 'results' / 'workload.json').read_text())['ways']
    text = shown(ROOT / 'nbs' / 'analysis' / 'gpu_usage.ipynb', "wl = benchmark_results('workload')")
    nv, us = [w['nvml_util_pct'] for w in ways], [w['useful_util_pct'] for w in ways]
    m = re.search(
        rf"NVML read (\d+)-(\d+)% busy .* useful work was (\d+)-(\d+)% \(correlation {NUM} over (\d+) runs\)", text
    )
    assert m, text
    want = [round(min(nv)), round(max(nv)), round(min(us)), round(max(us))]
    assert [int(x) for x in m.groups()[:4]] == want
    assert abs(float(m.group(5)) - np.corrcoef(nv, us)[0, 1]) < 0.006 and int(m.group(6)) == len(ways)
    best = max(ways, key=lambda w: w['useful_util_pct'])
    k, t = best['tasks_done'], best['wall_s']
    # the exact Poisson interval, by SciPy-free bisection on the tail sums (independently of experiments.rate_ci)
    from math import exp, factorial

    tail = lambda n, mu: sum(exp(-mu) * mu**i / factorial(i) for i in range(n + 1))
    lo_mu = next(mu / 1000 for mu in range(1, 100_000) if 1 - tail(k - 1, mu / 1000) >= 0.025)
    hi_mu = next(mu / 1000 for mu in range(1, 100_000) if tail(k, mu / 1000) <= 0.025)
    m2 = re.search(r"tasks/GPU-h, 95% interval (\d+)-(\d+)\)", text)
    assert m2 and abs(int(m2.group(1)) - lo_mu * 3600 / t) <= 1 and abs(int(m2.group(2)) - hi_mu * 3600 / t) <= 1


def test_pretrain_synth_numbers_recompute_from_the_per_task_losses():
    "benchmarks/results/pretrain_synth.json: each mean and the generated-task effect with its interval, recomputed."
    ps = json.loads((ROOT / 'benchmarks' / 'results' / 'pretrain_synth.json').read_text())
    for r in ps['models'].values():
        assert set(r['heldout_loss_per_task']) == set(ps['heldout_tasks'])
        assert abs(np.mean(list(r['heldout_loss_per_task'].values())) - r['heldout_loss']) < 1e-9
    a, b = (ps['models'][k]['heldout_loss_per_task'] for k in ('13m_synth0.5', '13m_synth0'))
    d = np.array([a[k] - b[k] for k in sorted(a)])
    rng = np.random.default_rng(0)
    boot = [d[rng.integers(len(d), size=len(d))].mean() for _ in range(10_000)]
    e = ps['synthetic_effect']
    assert abs(d.mean() - e['mean']) < 1e-12 and e['tasks'] == len(d) == 48
    assert np.allclose(np.percentile(boot, [2.5, 97.5]), e['ci95'])
    assert e['tasks_lower_with_synthetic'] == int((d < 0).sum())


def test_the_measured_noise_is_found_from_outside_the_checkout(tmp_path, monkeypatch):
    "`arc-nb sweep --detect` run from another folder: the editable install's own results (it raised before)."
    from arc_nb.experiments import benchmark_results

    monkeypatch.chdir(tmp_path)
    assert benchmark_results('sweeps') == SW


def test_the_held_out_defaults_recompute_and_the_lr_notebook_shows_them():
    """benchmarks/results/holdout_cpu.json (the TTT settings on held-out training tasks, 3 seeds, CPU): every mean and
    paired difference recomputed from the per-task results, against the lines the lr notebook printed."""
    ho = json.loads((ROOT / 'benchmarks' / 'results' / 'holdout_cpu.json').read_text())
    held = SW['model']['ttt_defaults']['runs'][0]['tasks']
    runs = ho['runs']
    for r in runs:
        assert r['tasks'] == sorted(held)  # the held-out training tasks, never evaluation ones
        assert abs(r['score'] - 100 * sum(r['per_task'].values()) / len(r['per_task'])) < 1e-9
    key = lambda r: (r['lr'], r['epochs'])
    groups = {}
    for r in runs:
        groups.setdefault(key(r), []).append(r)
    assert not ho['info']['unfinished'] and all(len(g) == 3 for g in groups.values()) and len(groups) == 7
    diff = lambda a, b: _paired(a, b, sorted(a[0]['per_task']))

    none, chosen = groups[(None, 0)], groups[(0.0003, 10)]
    want = {}
    for (lr, e), g in groups.items():
        row = [float(np.mean([r['score'] for r in g])), len(g)]
        row += diff(none, g) if e else []
        row += diff(chosen, g) if e and (lr, e) != (0.0003, 10) else []
        want[(lr, e)] = row
    text = shown(ROOT / 'nbs' / 'analysis' / 'lr.ipynb', "ho = benchmark_results('holdout_cpu')")
    got = {}
    for line in text.splitlines():
        m = re.match(
            rf"(?:lr {NUM} x (\d+) epochs|no TTT): score {NUM} over (\d+) seeds"
            rf"(?:; vs no TTT {NUM} \[{NUM}, {NUM}\])?(?:; vs lr 3e-4 x 10 {NUM} \[{NUM}, {NUM}\])?$",
            line,
        )
        if m:
            lr, e, score, seeds, *d = m.groups()
            k = (float(lr), int(e)) if lr else (None, 0)
            got[k] = [float(score), int(seeds)] + [float(x) for x in d if x is not None]
    assert sorted(got, key=str) == sorted(want, key=str), (got, want)
    for k in want:
        assert got[k][1] == want[k][1]
        np.testing.assert_allclose(got[k][:1] + got[k][2:], want[k][:1] + want[k][2:], atol=0.006, err_msg=str(k))


def test_the_held_out_pick_on_the_evaluation_subset_recomputes_and_the_lr_notebook_shows_it():
    """benchmarks/results/eval_cpu.json (the held-out pick, lr 3e-3 x 5, on the 100 evaluation tasks, CPU): its gains
    over the GPU's no-TTT and default runs recomputed from the per-task results, against what the lr notebook printed."""
    ev = json.loads((ROOT / 'benchmarks' / 'results' / 'eval_cpu.json').read_text())
    ho = json.loads((ROOT / 'benchmarks' / 'results' / 'holdout_cpu.json').read_text())
    runs = ev['runs']
    assert (ho['best']['lr'], ho['best']['epochs']) == (0.003, 5)  # picked on the held-out training tasks
    assert all((r['lr'], r['epochs']) == (0.003, 5) for r in runs) and sorted(r['seed'] for r in runs) == [0, 1, 2]
    ids = SW['baseline'][0]['tasks']
    for r in runs:
        assert r['tasks'] == ids
        assert abs(r['score'] - 100 * sum(r['per_task'].values()) / len(ids)) < 1e-9
    dflt = [r for v, r in _runs('epochs') if v == SW['defaults']['epochs']]
    diff = lambda a, b: _paired(a, b, ids)

    want = {'against no TTT': diff(SW['baseline'], runs), 'against lr 3e-4 x 10': diff(dflt, runs),
            'lr 3e-4 x 10 against no TTT': diff(SW['baseline'], dflt)}  # fmt: skip
    text = shown(ROOT / 'nbs' / 'analysis' / 'lr.ipynb', "ev = benchmark_results('eval_cpu')")
    for what, w in want.items():
        m = re.search(rf"^{what}: {NUM} \[{NUM}, {NUM}\] over 100 tasks$", text, re.M)
        assert m, (what, text)
        np.testing.assert_allclose([float(x) for x in m.groups()], w, atol=0.006, err_msg=what)
    m = re.search(rf"mean {NUM}", text)
    assert m and abs(float(m.group(1)) - np.mean([r['score'] for r in runs])) < 0.006
