"Issue 25, helper C: done means verified, retryable errors, a damaged event log, a missing locks folder, Ray's resources, a soak of kills."
import json, os, random, signal, subprocess, sys, time
from collections import Counter
from pathlib import Path
import pytest
from conftest import arc_nb_cmd
from arc_nb.scheduler import RunConfig, RunDir, Worker, launch, open_run
from test_scheduler import BY_SIZE, FAST, per_task, check_complete

TASKS = BY_SIZE[:3]
CFG = dict(FAST, monitor_interval=0)


def trained_only(out, tasks=TASKS):
    "A run whose tasks are all trained (adapters on disk) and none predicted: its launcher died before any inference."
    L = open_run(RunConfig(out=str(out), tasks=tasks, **CFG))
    w = Worker(L.run, 'train', None, 'cpu', 0)
    w.load()
    w.run()
    assert all(L.run.trained(t) for t in tasks) and not any(L.run.predicted(t) for t in tasks)
    return L.run


def test_rc_truncated_adapter_is_retrained_on_resume(tmp_path):
    run = trained_only(tmp_path / 'r')
    bad = TASKS[1]
    f = run.adapter(bad) / 'adapter_model.safetensors'
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # the file exists, its data is cut short
    assert not run.trained(bad)
    s = launch(RunConfig(out=str(run.path)), resume=True, progress=False)
    check_complete(run, TASKS)
    assert per_task(run, 'train_end') == Counter({t: 1 + (t == bad) for t in TASKS})  # only the cut one again
    assert per_task(run, 'infer_end') == Counter({t: 1 for t in TASKS})
    assert s['trained'] == s['predicted'] == 3 and not any(run.failed(t, 'infer') for t in TASKS)


def test_rc_unloadable_adapter_goes_back_to_training_in_the_same_run(tmp_path):
    "An adapter whose header checks out but that does not load (wrong tensors) is sent back by the inference worker; this run trains and predicts it."
    from safetensors.numpy import save_file
    import numpy as np

    run = trained_only(tmp_path / 'r')
    bad = TASKS[0]
    save_file({'not_a_lora_weight': np.zeros(4, np.float32)}, run.adapter(bad) / 'adapter_model.safetensors')
    assert run.trained(bad)  # complete as a file: only loading it shows it is not this model's adapter
    launch(RunConfig(out=str(run.path)), resume=True, progress=False)
    check_complete(run, TASKS)
    evs = run.events()
    assert [e['task'] for e in evs if e['event'] == 'adapter_bad'] == [bad]
    # the train worker, if it had already ended, was started again (`retrain`); else it trained the task itself
    assert per_task(run, 'train_end') == Counter({t: 1 + (t == bad) for t in TASKS})
    assert per_task(run, 'infer_end') == Counter({t: 1 for t in TASKS})
    assert not run.failed(bad, 'infer')


@pytest.mark.parametrize('point', ['save_adapter', 'save_predictions'])
def test_rc_full_disk_is_retryable_and_resume_finishes(tmp_path, monkeypatch, point):
    "ENOSPC (the test hook ARC_NB_FAULT) while saving an adapter or a prediction: no final error; --resume trains and predicts every task."
    out = tmp_path / 'r'
    monkeypatch.setenv('ARC_NB_FAULT', f'{point}:ENOSPC')
    s = launch(RunConfig(out=str(out), tasks=TASKS, **CFG), progress=False)
    run = RunDir(out)
    (x,) = s['retryable']
    assert run.retry_file(x, 'train' if point == 'save_adapter' else 'infer').exists()
    assert not any(run.failed(t, p) for t in TASKS for p in ('train', 'infer'))
    assert any(e['event'] == 'task_error' and e.get('retryable') and 'No space left' in e['message'] for e in run.events())
    if point == 'save_adapter':
        assert run.train_json(x).exists() and not run.trained(x) and s['trained'] == 2  # train.json alone is not trained
    assert s['predicted'] == 2 and not run.predicted(x)
    monkeypatch.delenv('ARC_NB_FAULT')
    s2 = launch(RunConfig(out=str(out)), resume=True, progress=False)
    check_complete(run, TASKS)
    assert s2['retryable'] == [] and s2['trained'] == s2['predicted'] == 3
    again = point == 'save_adapter'  # its training is redone; a failed prediction only its pass
    assert per_task(run, 'train_end') == Counter({t: 1 + (again and t == x) for t in TASKS})
    assert per_task(run, 'infer_end') == Counter({t: 1 + (not again and t == x) for t in TASKS})


def test_rc_damaged_event_log_is_skipped_with_one_warning(tmp_path):
    "Undecodable bytes and a half line in events.jsonl before --resume: the run completes, one warning names the file and line."
    run = trained_only(tmp_path / 'r')
    n = run.events_file.read_bytes().count(b'\n')
    with open(run.events_file, 'ab') as f:
        f.write(b'\xff\xfe\x80 not utf-8 \x00\n12\n{"event": "claim", "task": "half')  # garbage, a number, a torn line
    r = subprocess.run(arc_nb_cmd() + ['run', '--resume', '--out', str(run.path), '--quiet'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    check_complete(run, TASKS)
    assert f"{run.events_file}: line {n + 1} and 2 more not a JSON record" in r.stderr, r.stderr
    assert r.stderr.count(f"warning: {run.events_file}") == 1 and 'Traceback' not in r.stderr
    assert [e['resume'] for e in run.events() if e['event'] == 'run_start'] == [False, True]  # not glued onto the half line
    assert per_task(run, 'infer_end') == Counter({t: 1 for t in TASKS})
