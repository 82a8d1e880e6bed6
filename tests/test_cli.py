"The arc-nb console script end to end, and the package's independence from nbdev."
import json, subprocess, sys
import pytest
from arc_nb.data import load_tasks
from conftest import ROOT

def run(cmd, **kw): return subprocess.run(cmd, capture_output=True, text=True, **kw)

def test_help(arc_nb):
    r = run(arc_nb + ['--help'])
    assert r.returncode == 0
    for c in ('score', 'validate', 'baseline'): assert c in r.stdout

def test_baseline_validate_score(tmp_path, arc_nb):
    sub = tmp_path / 'sub.json'
    assert run(arc_nb + ['baseline', '--data', 'arc-agi-2/evaluation', '--out', str(sub)]).returncode == 0
    assert run(arc_nb + ['validate', str(sub), '--challenges', 'arc-agi-2/evaluation']).returncode == 0
    r = run(arc_nb + ['score', str(sub), '--solutions', 'arc-agi-2/evaluation'])
    out = json.loads(r.stdout)
    assert set(out) == {'score', 'tasks', 'per_task'} and out['tasks'] == 120 and len(out['per_task']) == 120

def test_score_exact_rule_via_files(tmp_path, arc_nb):
    "A submission built from the solutions scores 100; halving one two-input task and dropping another changes it as the rule says."
    tasks = load_tasks('arc-agi-2/evaluation')
    sub = {k: [{'attempt_1': [[0]], 'attempt_2': g} for g in t.solutions()] for k, t in tasks.items()}
    two = [k for k, t in tasks.items() if len(t.test) == 2][:1][0]
    sub[two][0]['attempt_2'] = [[0]]
    gone = next(k for k in tasks if k != two); del sub[gone]
    f = tmp_path / 'sub.json'; f.write_text(json.dumps(sub))
    out = json.loads(run(arc_nb + ['score', str(f), '--solutions', 'arc-agi-2/evaluation']).stdout)
    assert out['per_task'][two] == 0.5 and out['per_task'][gone] == 0
    assert abs(out['score'] - 100 * (118 + 0.5) / 120) < 1e-9
    # Kaggle-format solutions file works the same
    sols = tmp_path / 'x_solutions.json'; sols.write_text(json.dumps({k: t.solutions() for k, t in tasks.items()}))
    out2 = json.loads(run(arc_nb + ['score', str(f), '--solutions', str(sols)]).stdout)
    assert out2 == out

def test_validate_names_each_problem(tmp_path, arc_nb):
    tasks = load_tasks('arc-agi-2/evaluation')
    sub = tmp_path / 'sub.json'
    run(arc_nb + ['baseline', '--data', 'arc-agi-2/evaluation', '--out', str(sub)])
    d = json.loads(sub.read_text()); ks = list(d)
    del d[ks[0]]; d[ks[1]] = d[ks[1]] * 2; d[ks[2]][0]['attempt_1'] = [[1, 2], [3]]; d[ks[3]][0].pop('attempt_2')
    sub.write_text(json.dumps(d))
    r = run(arc_nb + ['validate', str(sub), '--challenges', 'arc-agi-2/evaluation'])
    assert r.returncode == 1
    assert f'task {ks[0]}: missing' in r.stdout
    assert f'task {ks[1]}: {2 * len(tasks[ks[1]].test)} test entries, expected {len(tasks[ks[1]].test)}' in r.stdout
    assert f'task {ks[2]}: test 0: attempt_1: grid is not rectangular' in r.stdout
    assert f'task {ks[3]}: test 0: attempt_2 missing' in r.stdout

def test_package_does_not_import_nbdev():
    code = ("import sys, arc_nb, arc_nb.data, arc_nb.scoring, arc_nb.augment, arc_nb.encoding, arc_nb.cli;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('nbdev', 'fastcore', 'execnb')]; print(bad); sys.exit(bool(bad))")
    r = run([sys.executable, '-c', code])
    assert r.returncode == 0, r.stdout + r.stderr

def test_readme_is_generated_from_index():
    r = run([sys.executable, str(ROOT / 'tools' / 'make_readme.py'), '--check'])
    assert r.returncode == 0, r.stdout + r.stderr

def test_pretrain_resume_and_model_folder(tmp_path, arc_nb):
    "arc-nb pretrain: a few CPU steps, a resume with a new lr, a clear refusal of another architecture, and the checkpoint as --model."
    d = tmp_path / 'pt'
    small = ['--layers', '1', '--hidden', '32', '--heads', '2', '--intermediate', '64', '--max-seq-len', '512', '--batch-tokens', '1024', '--quiet']
    r = run(arc_nb + ['pretrain', '--out', str(d), '--max-steps', '2'] + small)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])['step'] == 2
    r = run(arc_nb + ['pretrain', '--out', str(d), '--max-steps', '3', '--lr', '5e-4', '--quiet'])
    assert r.returncode == 0, r.stderr
    st = json.loads((d / 'checkpoint' / 'state.json').read_text())
    assert st['step'] == 3 and st['config']['lr'] == 5e-4 and st['config']['hidden'] == 32
    r = run(arc_nb + ['pretrain', '--out', str(d), '--max-steps', '4', '--hidden', '64'])
    assert r.returncode == 2 and 'hidden=32' in r.stderr and 'cannot resume with hidden=64' in r.stderr and 'Traceback' not in r.stderr
    r = run(arc_nb + ['run', '--data', 'arc-agi-1/evaluation', '--tasks', 'smallest:1', '--model', str(d / 'checkpoint'), '--gpus', 'cpu',
                      '--epochs', '1', '--n', '1', '--lora-rank', '4', '--out', str(tmp_path / 'run'), '--quiet'])
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / 'run' / 'score.json').read_text())['tasks'] == 1
