"The multitask benchmark (benchmarks/multitask.py, issue 22): its replay of train_many's slots, its parameter count, and a CPU smoke run."
import json, os, subprocess, sys
from pathlib import Path
import pytest
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'benchmarks'))

def test_replay_and_param_count():
    import multitask
    from transformers import LlamaConfig
    from gpu_bench import SHAPES
    # two slots, jobs of 3, 1 and 2 sequences: slot 0 takes job 0, slot 1 job 1 then job 2 (freed after one step)
    r = multitask.replay([[10, 10, 10], [8], [6, 6]], 2, cuda=True, threshold=15)
    assert r['batched_steps'] == 3 and r['replay_tokens'] == 50
    assert r['padding_frac'] == pytest.approx(1 - 50 / 60) and r['mean_rows'] == 2
    assert r['auto_checkpointed_steps_frac'] == 1.0
    assert multitask.replay([[10, 10, 10], [8], [6, 6]], 2, cuda=False)['auto_checkpointed_steps_frac'] == 0
    n7, n1 = (multitask.param_count(LlamaConfig(**SHAPES[s])) for s in ('7b', '1b'))
    assert round(n7 / 1e9, 2) == 7.24 and round(n1 / 1e9, 2) == 1.10

@pytest.mark.slow
def test_multitask_smoke(tmp_path):
    out = tmp_path/'m.json'
    env = {**os.environ, 'BENCH_DISK': str(tmp_path), 'PYTHONPATH': str(ROOT)}
    p = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'multitask.py'), '--smoke', '--out', str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(out.read_text())
    every = res['training']
    rows = [r for r in every if not r.get('variant')]  # today's code; variants: the earlier ways, measured beside it
    assert [(r['way'], r['K']) for r in rows][:4] == [('train_task', 1), ('train_many', 1), ('train_many', 2), ('train_many', 4)]
    many = [r for r in every if r['way'] == 'train_many']
    assert all(r['replay_matches'] and r['ref_adapter_max_abs_diff'] < 1e-5 for r in many)  # fp32 on the CPU: the same adapter
    assert len({r['tokens'] for r in every}) == 1
    assert {(r['way'], r['K'], r['variant']) for r in every if r.get('variant')} == {('train_task', 1, 'sync'), ('train_many', 2, 'pad_mask'), ('train_many', 2, 'sync'), ('train_many', 2, 'memq')}
    assert [m['fits'] for m in res['memory_limit']] == [True, True] and all(m['tasks_per_gpu_hour'] is None for m in res['memory_limit'])
    assert '| model | way | K |' in p.stdout
    assert [r.get('lora_compute') for r in rows if r['way'] == 'train_many'][-2:] == ['base', 'base']  # --smoke's mixed rows

@pytest.mark.slow
def test_train_profile_smoke(tmp_path):
    "benchmarks/train_profile.py on the CPU: every variant at K = 1, 2 trains the same rows (cut variants: the same tokens)."
    out = tmp_path/'p.json'
    env = {**os.environ, 'BENCH_DISK': str(tmp_path), 'PYTHONPATH': str(ROOT)}
    p = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'train_profile.py'), '--smoke', '--out', str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(out.read_text())['rows']
    assert {r['variant'] for r in rows} == {'floor', 'noshare', 'fp32', 'mixed', 'bf16', 'natural', 'natural_mixed'}
    assert all('tokens_per_s' in r for r in rows)
    cut = [r for r in rows if not r['variant'].startswith('natural')]
    assert {(r['K'], r['tokens']) for r in cut} == {(1, 2 * 200), (2, 2 * 2 * 200)}  # --smoke: 2 steps of 200-token rows
    assert all('profile' in r for r in rows if r['variant'] in ('floor', 'noshare', 'fp32', 'mixed'))
