"The workload benchmark (benchmarks/workload.py): its answer bias decodes the same in every decode path, and a CPU smoke run gives every figure."
import json, subprocess, sys
from pathlib import Path
import pytest
import torch
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'benchmarks'))

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from arc_nb.model import make_tiny_model, load_base, attach_lora
    from arc_nb.encoding import check_tokenizer
    from arc_nb.data import load_tasks
    m, tok = load_base(make_tiny_model(tmp_path_factory.mktemp('m')/'tiny', layers=2, hidden=64), device='cpu', dtype='float32')
    ev = load_tasks('arc-agi-2/evaluation')
    return attach_lora(m, rank=4), check_tokenizer(tok), {k: ev[k] for k in ('e8686506', '4c7dc4dd')}  # one and two test inputs

@pytest.mark.parametrize('regime', ['greedy', 'dfs'])
def test_bias_decodes_the_answers_in_every_path(setup, regime):
    import workload_bias
    from arc_nb.search import dfs_sample, dfs_recursive
    from arc_nb.inference import InferConfig, task_views, test_prompts
    from arc_nb.fastdecode import FastDecoder
    from arc_nb.encoding import grid_ids
    model, v, tasks = setup
    icfg = InferConfig(n=3, min_prob=None if regime == 'greedy' else 0.17)
    table = workload_bias.answers(v, tasks, icfg, regime)
    b = workload_bias.AnswerBias(model, table)
    fd = FastDecoder(model)  # the static cache on the CPU: the bias's decode-step path (no graphs here)
    model.__dict__.setdefault('_arc_decoders', {})['test'] = fd
    try:
        for t in tasks.values():
            views = task_views(t, icfg)
            for e, prompts in zip(t.test, test_prompts(v, t, icfg, views)):
                for tr, p in zip(views, prompts):
                    ans = list(grid_ids(v, tr.grid(e.output))) + [v.eos]
                    kw = dict(min_prob=icfg.min_prob, max_new_tokens=len(ans) + 5, eos_token_id=v.eos)
                    b.use([p])  # what install's wrapper of FastDecoder.dfs_batch does in a worker
                    eager, static = dfs_sample(model, p, **kw), fd.dfs(p, **kw)
                    assert [s for s, _ in eager] == [s for s, _ in static]
                    if regime == 'greedy': assert [s for s, _ in eager] == [ans]
                    else:
                        assert len(eager) == 4 and ans in [s for s, _ in eager] and all(len(s) == len(ans) for s, _ in eager)
                        assert [s for s, _ in dfs_recursive(model, p, **kw)] == [s for s, _ in eager]
            for e, prompts in zip(t.test, test_prompts(v, t, icfg, views)):  # all views as one batch: each row its own answer
                kw = dict(min_prob=icfg.min_prob, max_new_tokens=[len(x) + 40 for x in prompts], eos_token_id=v.eos)
                b.use(prompts)
                got = fd.dfs_batch(prompts, **kw)
                for tr, p, g in zip(views, prompts, got):
                    ans = list(grid_ids(v, tr.grid(e.output))) + [v.eos]
                    assert ans in [s for s, _ in g] and len(g) == (1 if regime == 'greedy' else 4)
        assert b.misses == 0 and b.hits > 0
    finally:
        b.remove(); model.__dict__['_arc_decoders'].pop('test')

def test_workload_smoke(tmp_path):
    "Three ways on two tasks: every figure of the issue's record, one model load per task and phase for the reload way, same decode tokens."
    out = tmp_path/'w.json'
    p = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'workload.py'), '--smoke', '--tasks', '2', '--ways', 'reload:greedy,arc_nb:greedy,arc_nb_batched:greedy',
                        '--budget', '200', '--out', str(out)], capture_output=True, text=True, env={**__import__('os').environ, 'BENCH_DISK': str(tmp_path)})
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    keys = {'way', 'regime', 'tasks', 'tasks_done', 'wall_s', 'tasks_per_gpu_hour', 'decode_tokens', 'train_tokens', 'model_loads',
            'nvml_util_pct', 'useful_util_pct', 'peak_mem_gb', 'per_task', 'gpu'}
    assert {w['way'] for w in r['ways']} == {'reload', 'arc_nb', 'arc_nb_batched'} and all(keys <= set(w) for w in r['ways'])
    rl, an = (next(w for w in r['ways'] if w['way'] == k) for k in ('reload', 'arc_nb'))
    assert rl['tasks_done'] == an['tasks_done'] == 2 and rl['model_loads'] == 2 * 2 and an['model_loads'] == 5  # 2 + 3 slots, once each
    assert r['tokens_check']['all_same'] and rl['decode_tokens'] == an['decode_tokens'] > 0 and an['useful_util_pct'] > 0
    # issue 21's way: views batched, quick passes on (a budget); its runs recorded as `scheduled` beside the output
    bt = next(w for w in r['ways'] if w['way'] == 'arc_nb_batched')
    assert bt['tasks_done'] == 2 and bt['tests_full'] == bt['tests'] and bt['tests_at_fallback_with_adapter'] == 0
    sch = json.loads((tmp_path/'batched_inference.json').read_text())['scheduled']
    assert [x['way'] for x in sch] == ['arc_nb_batched'] and {'budget_s', 'used_s', 'tests_at_fallback_with_adapter'} <= set(sch[0])
    assert len(rl['per_task']) == 2 and all(t['done'] for t in rl['per_task'])
    assert rl['claims_per_process'] == dict(max=1, loads_max=1)  # the reference's way: a process, and a model load, per task and phase
