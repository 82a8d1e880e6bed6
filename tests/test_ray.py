"The Ray backend on a local Ray cluster (CPU slots), started by these tests: same submission as the local backend, a killed actor, a sweep."
import json, os, signal, subprocess, threading, time
from collections import Counter
from pathlib import Path
import pytest
ray = pytest.importorskip('ray', reason="Ray is an optional extra (pip install -e '.[ray]')")
from arc_nb.scheduler import RunConfig, RunDir, launch
from arc_nb.cluster import launch_ray, sweep_ray, connect
from test_scheduler import BY_SIZE, FAST, per_task, check_complete, _wait_for

@pytest.fixture(scope='module', autouse=True)
def cluster():
    connect(None, num_cpus=4)
    yield
    ray.shutdown()

def test_ray_run_equals_local_run(tmp_path):
    tasks = BY_SIZE[:6]
    cfg = RunConfig(tasks=tasks, train_slots=2, infer_slots=2, monitor_interval=0, **FAST)
    launch(replace_out(cfg, tmp_path / 'local'), progress=False)
    s = launch_ray(replace_out(cfg, tmp_path / 'ray'), progress=False)
    local, rr = RunDir(tmp_path / 'local'), RunDir(tmp_path / 'ray')
    check_complete(rr, tasks)
    assert json.loads(rr.submission_file.read_text()) == json.loads(local.submission_file.read_text())
    assert per_task(rr, 'train_end') == Counter({t: 1 for t in tasks}) and per_task(rr, 'infer_end') == Counter({t: 1 for t in tasks})
    assert {e['worker'] for e in rr.events() if e['event'] == 'model_load'} == {'train-cpu-0', 'train-cpu-1', 'infer-cpu-0', 'infer-cpu-1'}
    assert s['predicted'] == 6

def replace_out(cfg, out):
    from dataclasses import replace
    return replace(cfg, out=str(out))

def test_killed_actor_is_restarted_and_its_task_claimed_again(tmp_path):
    tasks = BY_SIZE[8:13]
    out = tmp_path / 'kill'
    cfg = RunConfig(out=str(out), tasks=tasks, train_slots=1, infer_slots=1, monitor_interval=0, **{**FAST, 'epochs': 40})
    res = {}
    th = threading.Thread(target=lambda: res.setdefault('s', launch_ray(cfg, progress=False))); th.start()
    run = RunDir(out)
    while not run.events_file.exists(): time.sleep(0.05)
    e = _wait_for(run, lambda e: e['event'] == 'claim' and e['phase'] == 'train' and not any(
        x['event'] == 'train_end' and x['task'] == e['task'] and x['pid'] == e['pid'] for x in run.events()))
    os.kill(e['pid'], signal.SIGKILL)
    th.join(timeout=600)
    assert res['s']['predicted'] == len(tasks)
    check_complete(run, tasks)
    evs = run.events()
    assert not any(x['event'] == 'train_end' and x['task'] == e['task'] and x['pid'] == e['pid'] for x in evs)
    assert per_task(run, 'train_end') == Counter({t: 1 for t in tasks})  # every task once, the killed one included
    assert len({x['pid'] for x in evs if x['event'] == 'model_load' and x['worker'] == e['worker']}) == 2  # Ray restarted the actor

def test_sweep_on_ray_then_nothing_new(tmp_path):
    base = RunConfig(tasks=[BY_SIZE[0]], mode='fused', train_slots=1, monitor_interval=0, **{**FAST, 'epochs': 1, 'n': 1})
    res = sweep_ray(base, {'lr': [1e-4, 1e-3]}, 2, tmp_path / 'sw')
    assert sorted(zip(res.lr, res.seed)) == [(1e-4, 0), (1e-4, 1), (1e-3, 0), (1e-3, 1)] and (res.predicted == 1).all()
    counts = {d: len(RunDir(d).events()) for d in (tmp_path / 'sw').glob('*/seed*')}
    assert len(counts) == 4
    t0 = time.time(); res2 = sweep_ray(base, {'lr': [1e-4, 1e-3]}, 2, tmp_path / 'sw')
    assert time.time() - t0 < 10 and {d: len(RunDir(d).events()) for d in counts} == counts
    assert list(res2.score) == list(res.score)
