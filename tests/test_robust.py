"Issue 25, helper C: done means verified, retryable errors, a damaged event log, a missing locks folder, Ray's resources, a soak of kills."
import re, json, math, os, random, signal, subprocess, sys, time
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
    assert s['undone']['retryable'] == [x] and s['exit_code'] == 5 and s['failed'] == {}  # not final: exit 5, resume retries
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
    # the half line is a complete (bad) line only once the resume's first event is appended after it: whether the first
    # read sees it depends on timing, so 1 or 2 more
    assert re.search(re.escape(f"{run.events_file}: line {n + 1} and ") + "[12] more not a JSON record", r.stderr), r.stderr
    assert r.stderr.count(f"warning: {run.events_file}") == 1 and 'Traceback' not in r.stderr
    assert [e['resume'] for e in run.events() if e['event'] == 'run_start'] == [False, True]  # not glued onto the half line
    assert per_task(run, 'infer_end') == Counter({t: 1 for t in TASKS})


def _overlaps(evs, phase):
    "Tasks that two live workers held at once in `phase` (claim to task_end, or to the worker's death)."
    spans, open_ = [], {}

    def close(pids, t):
        for k in [k for k in open_ if k[0] in pids]:
            spans.append((k[1], open_.pop(k), t, k[0]))

    for e in evs:
        if e['event'] == 'run_start':  # a new launcher: the workers of the last one are dead
            close({k[0] for k in open_}, e['time'])
        if e['event'] == 'worker_restart':
            close({e.get('dead_pid')}, e['time'])
        if e.get('phase') != phase or e['event'] not in ('claim', 'task_end'):
            continue
        if e['event'] == 'claim':
            open_[(e['pid'], e['task'])] = e['time']
        elif (e['pid'], e['task']) in open_:
            spans.append((e['task'], open_.pop((e['pid'], e['task'])), e['time'], e['pid']))
    close({k[0] for k in open_}, math.inf)
    return {a[0] for a in spans for b in spans if a[0] == b[0] and a[3] != b[3] and a[1] < b[2] and b[1] < a[2]}


def test_rc_locks_folder_deleted_mid_run(tmp_path):
    "RUN/locks/ removed mid-run: workers stop claiming, the launcher says why in one line; --resume finishes; no task held twice at once."
    import shutil

    out, tasks = tmp_path / 'r', BY_SIZE[:5]
    args = ['--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(tasks), '--quiet', '--gpus', 'cpu', '--epochs', '20',
            '--n', '2', '--min-prob', '0.1', '--max-seq-len', '2048', '--lora-rank', '8', '--cpu-threads', '1', '--train-slots', '2',
            '--monitor-interval', '0']
    p = subprocess.Popen(arc_nb_cmd() + ['run'] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = RunDir(out, make=False)
    t0 = time.time()
    while not any(e['event'] == 'adapter_save' for e in run.events()):
        assert time.time() - t0 < 300 and p.poll() is None
        time.sleep(0.05)
    shutil.rmtree(run.locks)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 5, stderr  # work undone: --resume finishes it
    lines = [l for l in stderr.splitlines() if 'disappeared mid-run' in l]
    assert len(lines) == 1 and str(run.locks) in lines[0] and '--resume' in lines[0], stderr
    assert json.loads(stdout.splitlines()[-1])['locks_missing'] is True and not run.locks.exists()  # nobody made it again
    assert not all(run.predicted(t) for t in tasks)
    r = subprocess.run(arc_nb_cmd() + ['run', '--resume', '--out', str(out), '--quiet'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    check_complete(run, tasks)
    evs = run.events()
    assert not _overlaps(evs, 'train') and not _overlaps(evs, 'infer')
    assert json.loads(r.stdout.splitlines()[-1])['locks_missing'] is False


def test_rc_ray_places_2_plus_2_slots_on_2_cpus(tmp_path):
    "A plain local Ray cluster of 2 CPUs runs 2 train + 2 inference slots (each actor asks half a CPU); a busy cluster is refused at once."
    ray = pytest.importorskip('ray', reason="Ray is an optional extra (pip install -e '.[ray]')")
    from arc_nb.cluster import launch_ray, connect
    from arc_nb.scheduler import RunError

    if ray.is_initialized():
        ray.shutdown()
    connect(None, num_cpus=2)
    try:
        tasks = TASKS[:2]
        s = launch_ray(RunConfig(out=str(tmp_path / 'r'), tasks=tasks, train_slots=2, infer_slots=2, **CFG), progress=False)
        assert s['predicted'] == 2
        assert {e['worker'] for e in RunDir(tmp_path / 'r').events() if e['event'] == 'model_load'} == {'train-cpu-0', 'train-cpu-1', 'infer-cpu-0', 'infer-cpu-1'}

        @ray.remote(num_cpus=2)
        class Busy:
            def ping(self):
                return 1

        b = Busy.remote()
        ray.get(b.ping.remote())  # the cluster's two CPUs are held by something else
        t0 = time.time()
        with pytest.raises(RunError, match='cannot place the 4 slot actors'):
            launch_ray(RunConfig(out=str(tmp_path / 'busy'), tasks=tasks, train_slots=2, infer_slots=2, **CFG), progress=False)
        assert time.time() - t0 < 60
        ray.kill(b)
    finally:
        ray.shutdown()


def _alive(pid):
    try:
        return 'zombie' not in Path(f'/proc/{pid}/status').read_text().lower()
    except FileNotFoundError:
        return False


def test_rc_soak_random_kills_then_resume(tmp_path):
    """Workers and the launcher SIGKILLed at seeded random moments, `--resume` after each launcher kill: every task trained
    and predicted; no output on disk at a kill is ever redone; adapters and predictions identical to an uninterrupted run."""
    rng = random.Random(25)
    tasks, cfg = BY_SIZE[:5], dict(CFG, epochs=10)
    ref = RunDir(tmp_path / 'ref')
    launch(RunConfig(out=str(ref.path), tasks=tasks, **cfg), progress=False)
    out = tmp_path / 'soak'
    args = ['--data', 'arc-agi-2/evaluation', '--tasks', ','.join(tasks), '--quiet', '--gpus', 'cpu', '--epochs', str(cfg['epochs']),
            '--n', str(cfg['n']), '--min-prob', str(cfg['min_prob']), '--max-seq-len', '2048', '--lora-rank', str(cfg['lora_rank']),
            '--cpu-threads', '1', '--monitor-interval', '0']
    run, kills = RunDir(out, make=False), []
    while len(kills) < 6:
        n0 = len(run.events())
        resume = (out / 'config.json').exists()
        p = subprocess.Popen(arc_nb_cmd() + ['run', '--out', str(out)] + (['--resume'] if resume else args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        while p.poll() is None and not any(e['event'] == 'model_load' for e in run.events()[n0:]):
            time.sleep(0.05)  # setup is done (a launcher killed in setup is the launcher's atomic setup, tested there)
        while p.poll() is None and len(kills) < 6:  # kill workers until the launcher is killed or the run ends
            time.sleep(rng.uniform(0.5, 3.0))
            alive = sorted({e['pid'] for e in run.events()[n0:] if e['event'] == 'worker_start' and _alive(e['pid'])})
            if p.poll() is not None:
                break
            target = 'launcher' if not alive or rng.random() < 0.4 else rng.choice(alive)
            os.kill(p.pid if target == 'launcher' else target, signal.SIGKILL)
            kills.append((target, len(run.events()), {t for t in tasks if run.trained(t)}, {t for t in tasks if run.done(t, 'infer')}))
            if target == 'launcher':
                p.wait()
                time.sleep(0.5)  # its workers die with it (PR_SET_PDEATHSIG)
                assert not [e['pid'] for e in run.events() if e['event'] == 'worker_start' and _alive(e['pid'])]
        p.communicate(timeout=600)
        if p.returncode == 0:
            break
    r = subprocess.run(arc_nb_cmd() + ['run', '--resume', '--out', str(out), '--quiet'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    check_complete(run, tasks)
    assert sum(k[0] == 'launcher' for k in kills) >= 1 and sum(k[0] != 'launcher' for k in kills) >= 1, kills
    evs = run.events()
    for target, n, trained, predicted in kills:  # an output on disk at a kill is never redone
        assert not {e['task'] for e in evs[n:] if e['event'] == 'train_end'} & trained, target
        assert not {e['task'] for e in evs[n:] if e['event'] == 'infer_end'} & predicted, target
    assert json.loads(run.submission_file.read_text()) == json.loads(ref.submission_file.read_text())
    for t in tasks:
        assert (run.adapter(t) / 'adapter_model.safetensors').read_bytes() == (ref.adapter(t) / 'adapter_model.safetensors').read_bytes()
        a, b = (json.loads(x.predictions(t).read_text())['tests'] for x in (run, ref))
        assert [x['candidates'] for x in a] == [x['candidates'] for x in b]


def test_moved_run_folder_resumes_where_it_is(tmp_path):
    "A cut run folder moved (or copied to another machine, as sweeps are between GPU calls) resumes in its new place."
    import shutil

    run = trained_only(tmp_path / 'a')
    new = tmp_path / 'b'
    shutil.move(str(run.path), str(new))  # its config.json still names tmp_path/a
    s = launch(RunConfig(out=str(new)), resume=True, progress=False)
    check_complete(RunDir(new), TASKS)
    assert not (tmp_path / 'a').exists() and s['predicted'] == 3
    assert per_task(RunDir(new), 'train_end') == Counter({t: 1 for t in TASKS})  # the adapters it had were used
