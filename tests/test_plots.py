"arc-nb plot on a finished run (with a killed worker), and arc-nb sweep: completes, then a second call redoes nothing."
import json, os, signal, subprocess, time
from pathlib import Path
import pandas as pd
from conftest import arc_nb_cmd
from test_scheduler import BY_SIZE, _wait_for
from arc_nb.scheduler import RunDir
from arc_nb.plots import summary

def test_plot_accounts_for_every_worker_including_a_killed_one(tmp_path):
    out = tmp_path / 'run'
    tasks = BY_SIZE[3:9]
    p = subprocess.Popen(arc_nb_cmd() + ['run', '--out', str(out), '--tasks', ','.join(tasks), '--gpus', 'cpu', '--quiet', '--epochs', '30',
                                         '--n', '2', '--min-prob', '0.1', '--max-seq-len', '2048', '--lora-rank', '8', '--cpu-threads', '1'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run = RunDir(out)
    while not run.events_file.exists(): time.sleep(0.05)
    e = _wait_for(run, lambda e: e['event'] == 'claim' and e['phase'] == 'train')
    os.kill(e['pid'], signal.SIGKILL)
    assert p.wait(timeout=600) == 0
    r = subprocess.run(arc_nb_cmd() + ['plot', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in ('slots.png', 'resources.png', 'summary.csv', 'summary.md'):
        assert (out / 'plots' / f).stat().st_size > 0
    sm = summary(out)
    assert sm.killed.sum() == 1 and len(sm) == 3  # the killed process, its restart, the inference worker
    parts = sm[['load_s', 'overhead_s', 'train_s', 'predict_s', 'idle_s']].sum(axis=1)
    assert ((parts - sm.lifetime_s).abs() <= 0.02 * sm.lifetime_s).all()
    assert (sm.idle_s >= -0.01).all() and (sm.overhead_s >= -0.01).all()
    assert sm.tasks.sum() == 2 * len(tasks)  # task_end once per task and phase; the killed worker's claim never ended
    k = sm[sm.killed].iloc[0]
    assert k.tasks == 0 and k.lifetime_s > 0 and k.busy_pct > 0  # its unfinished task still shows as work until it died
    res = pd.read_csv(out / 'resources.csv')
    assert list(res.columns) == ['time', 'gpu', 'gpu_util', 'vram_used', 'vram_total', 'cpu', 'ram'] and len(res) >= 2

def test_sweep_cli_completes_and_resumes(tmp_path):
    "Two runs at a time (--parallel 2); a second call finds every run finished."
    args = ['sweep', '--param', 'lr=1e-4,1e-3', '--seeds', '2', '--out', str(tmp_path / 'sw'), '--tasks', BY_SIZE[0], '--gpus', 'cpu',
            '--mode', 'fused', '--epochs', '1', '--n', '1', '--max-seq-len', '2048', '--lora-rank', '4', '--quiet', '--parallel', '2']
    r = subprocess.run(arc_nb_cmd() + args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert sorted((x['lr'], x['seed']) for x in rows) == [(1e-4, 0), (1e-4, 1), (1e-3, 0), (1e-3, 1)]
    assert (tmp_path / 'sw' / 'sweep_lr.png').stat().st_size > 0 and (tmp_path / 'sw' / 'results.csv').exists()
    n_events = {d: len(RunDir(d).events()) for d in (tmp_path / 'sw').glob('*/seed*')}
    assert len(n_events) == 4
    t0 = time.time()
    r2 = subprocess.run(arc_nb_cmd() + args, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0 and time.time() - t0 < 30
    assert {d: len(RunDir(d).events()) for d in n_events} == n_events  # nothing redone
    assert [x['score'] for x in json.loads(r2.stdout)] == [x['score'] for x in rows]
