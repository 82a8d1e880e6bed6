"arc-nb plot on a finished run (with a killed worker) and on runs stopped early, the task timeline; arc-nb sweep: completes, then a second call redoes nothing."
import json, os, signal, subprocess, time
from pathlib import Path
import pandas as pd
import pytest
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
    for f in ('slots.png', 'resources.png', 'losses.png', 'summary.csv', 'summary.md'):
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
    r2 = subprocess.run(arc_nb_cmd() + args + ['--detect', '5'], capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0 and time.time() - t0 < 30
    # one task and two seeds cannot see 5 points: said before the (finished) runs, with the size that would
    assert 'warning: this sweep (1 task x 2 seeds per setting) detects differences of about' in r2.stderr, r2.stderr
    assert 'use about' in r2.stderr
    assert {d: len(RunDir(d).events()) for d in n_events} == n_events  # nothing redone
    assert [x['score'] for x in json.loads(r2.stdout)] == [x['score'] for x in rows]


def _fake_run(tmp_path, evs, name='run'):
    d = tmp_path / name
    d.mkdir()
    (d / 'events.jsonl').write_text(''.join(json.dumps(e) + '\n' for e in evs))
    return d


_L = dict(worker='launcher', pid=1)
_TW = dict(worker='train-0-0', pid=2, phase='train', gpu=0, slot=0)
_IW = dict(worker='infer-0-0', pid=3, phase='infer', gpu=0, slot=0)
_START = [dict(time=0.0, event='run_start', **_L)]
_LOADED = _START + [dict(time=1.0, event='worker_start', **_TW), dict(time=1.5, event='worker_start', **_IW),
                    dict(time=3.0, event='model_load', seconds=2.0, **_TW)]
_KILLED = _LOADED + [dict(time=3.1, event='claim', task='abcdef12', **_TW),
                     dict(time=5.0, event='worker_restart', dead_pid=2, **_L)]


def test_tasks_plot_cli_on_runs_stopped_early(tmp_path):
    "arc-nb plot on a run with no events, only run_start, workers started but no claim (the old crash), a killed worker."
    for i, (evs, rows) in enumerate([([], 0), (_START, 0), (_LOADED, 2), (_KILLED, 2)]):
        run = _fake_run(tmp_path, evs, f'run{i}')
        r = subprocess.run(arc_nb_cmd() + ['plot', str(run)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        for f in ('slots.png', 'resources.png', 'losses.png', 'summary.csv', 'summary.md'):
            assert (run / 'plots' / f).stat().st_size > 0, (i, f)
        assert len(summary(run)) == rows
    assert summary(run).set_index('worker').loc['train-0-0', 'busy_pct'] == pytest.approx(100 * 1.9 / 4.0)


def test_tasks_timeline_ids_outcomes_and_shared_axis(tmp_path):
    "Task ids on their spans, outcomes from score.json, a legend of what occurs, one x axis for both plots, losses."
    import matplotlib
    matplotlib.use('Agg')
    from arc_nb.plots import plot_slots, plot_resources, plot_losses, outcomes, time_axis
    evs = _START + [dict(time=1.0, event='worker_start', **_IW), dict(time=2.0, event='model_load', seconds=1.0, **_IW)]
    for i, k in enumerate(['aaaa1111', 'bbbb2222']):
        t = 2.0 + 3 * i
        evs += [dict(time=t, event='claim', task=k, **_IW), dict(time=t + 2.5, event='infer_end', task=k, seconds=2.4, **_IW),
                dict(time=t + 2.6, event='task_end', task=k, seconds=2.6, **_IW)]
    run = _fake_run(tmp_path, evs + [dict(time=9.0, event='worker_exit', **_IW), dict(time=9.5, event='run_end', **_L)])
    (run / 'solutions.json').write_text(json.dumps({'aaaa1111': [[[1]]], 'bbbb2222': [[[1]]]}))
    (run / 'score.json').write_text(json.dumps({'per_task': {'aaaa1111': 1.0, 'bbbb2222': 0.0}}))
    for k, fb in [('aaaa1111', 0), ('bbbb2222', 2)]:
        (run / 'tasks' / k).mkdir(parents=True)
        (run / 'tasks' / k / 'predictions.json').write_text(json.dumps({'tests': [{'from_fallback': fb}]}))
        (run / 'tasks' / k / 'train.json').write_text(json.dumps({'losses': [2.0, 1.5, 1.0]}))
    (run / 'resources.csv').write_text('time,gpu,gpu_util,vram_used,vram_total,cpu,ram\n'
                                       '1,0,10,1024,8192,5,2000\n5,0,90,4096,8192,50,2100\n9,0,80,4096,8192,40,2100\n')
    assert outcomes(run) == {'aaaa1111': 'solved', 'bbbb2222': 'fallback only'}
    ax = plot_slots(run)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ['load', 'predict', 'task overhead', 'solved', 'fallback only']
    assert sorted(t.get_text() for t in ax.texts) == ['aaaa1111', 'bbbb2222']
    assert time_axis(run) == (0.0, 9.5) and ax.get_xlim() == plot_resources(run).get_xlim() == (0.0, 9.5)
    ra = plot_resources(run)
    assert [t.get_text() for t in ra.get_legend().get_texts()] == ['GPU 0 util %', 'GPU 0 mean 60.0%', 'GPU 0 memory']
    assert len(plot_losses(run).lines) == 2
