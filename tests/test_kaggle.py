"The generated Kaggle notebook: not stale, and executed headless in a Python where arc_nb is not installed."
import json, os, subprocess, sys, sysconfig, textwrap, time
from pathlib import Path
import pytest
from conftest import ROOT
from arc_nb.kaggle import build_notebook, same_notebook, NOTEBOOK
from arc_nb.scoring import validate_submission
from test_scheduler import BY_SIZE, EV

RUNNER = textwrap.dedent('''
    import json, sys
    nb = json.load(open(sys.argv[1]))
    ns = {'__name__': '__main__'}
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] == 'code': exec(compile(''.join(c['source']), f'<cell {i}>', 'exec'), ns)
    print('SUMMARY', json.dumps(ns['summary']))
''')

def test_committed_notebook_is_current():
    committed = json.loads((ROOT / 'kaggle' / NOTEBOOK).read_text())
    assert same_notebook(committed, build_notebook()), "kaggle/ is stale: run `arc-nb kaggle build` and commit it"
    meta = json.loads((ROOT / 'kaggle' / 'kernel-metadata.json').read_text())
    assert meta['code_file'] == NOTEBOOK and meta['enable_internet'] is False

@pytest.fixture(scope='module')
def bare_python(tmp_path_factory):
    "A Python with the project's dependencies on its path but not arc_nb (the editable install's hook is not loaded)."
    d = tmp_path_factory.mktemp('bare') / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(d)], check=True)
    site = next((d / 'lib').glob('python3*/site-packages'))
    (site / 'deps.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    py = str(d / 'bin' / 'python')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}  # a PYTHONPATH to a checkout would bring arc_nb back
    r = subprocess.run([py, '-c', 'import torch, transformers, peft; import arc_nb'], capture_output=True, text=True, cwd=d, env=env)
    assert r.returncode != 0 and "No module named 'arc_nb'" in r.stderr, r.stderr  # the premise of the test
    return py

def run_notebook(py, tmp_path, config, env):
    nb = tmp_path / NOTEBOOK
    nb.write_text(json.dumps(build_notebook(config)))
    tasks = BY_SIZE[:3]
    data = tmp_path / 'input' / 'arc-agi_evaluation_challenges.json'
    data.parent.mkdir()
    data.write_text(json.dumps({t: EV[t].to_json() for t in tasks}))
    (tmp_path / 'input' / 'arc-agi_evaluation_solutions.json').write_text(json.dumps({t: EV[t].solutions() for t in tasks}))
    out = tmp_path / 'working'
    e = {k: v for k, v in os.environ.items() if not k.startswith('ARC_NB_') and k != 'PYTHONPATH'}
    e.update({'ARC_NB_DATA': str(data), 'ARC_NB_MODEL': 'tiny', 'ARC_NB_OUT': str(out), 'ARC_NB_GPUS': 'cpu', **env})
    (tmp_path / 'runner.py').write_text(RUNNER)
    t0 = time.time()
    r = subprocess.run([py, str(tmp_path / 'runner.py'), str(nb)], capture_output=True, text=True, cwd=tmp_path, env=e, timeout=900)
    return r, out, tasks, time.time() - t0

def test_notebook_runs_headless_without_arc_nb_installed(bare_python, tmp_path):
    cfg = {'epochs': 2, 'n': 2, 'min_prob': 0.1, 'max_seq_len': 2048, 'lora_rank': 8, 'cpu_threads': 1}
    r, out, tasks, _ = run_notebook(bare_python, tmp_path, cfg, {'KAGGLE_IS_COMPETITION_RERUN': '1'})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert str(tmp_path / 'working' / 'arc_nb_src') in r.stdout  # arc_nb came from the notebook's own copy
    sub = json.loads((out / 'submission.json').read_text())
    assert sorted(sub) == sorted(tasks) and validate_submission(sub, {t: EV[t] for t in tasks}) == []
    s = json.loads(r.stdout.split('SUMMARY ', 1)[1])
    assert s['predicted'] == 3 and s['trained'] == 3

def test_notebook_with_too_small_a_budget_leaves_a_valid_submission(bare_python, tmp_path):
    cfg = {'epochs': 300, 'n': 8, 'max_seq_len': 4096, 'lora_rank': 8}
    r, out, tasks, wall = run_notebook(bare_python, tmp_path, cfg, {'KAGGLE_IS_COMPETITION_RERUN': '1', 'ARC_NB_TIME_BUDGET': '15'})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert wall < 15 + 6, wall
    sub = json.loads((out / 'submission.json').read_text())
    assert sorted(sub) == sorted(tasks) and validate_submission(sub, {t: EV[t] for t in tasks}) == []
    assert json.loads(r.stdout.split('SUMMARY ', 1)[1])['deadline_cut'] is True
