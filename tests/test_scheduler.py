"The lock scheduler with real processes on CPU: every task once, fused == split, SIGKILL of workers and of the launcher, deadline, bad input."
import json, math, os, signal, subprocess, sys, time
from collections import Counter
from pathlib import Path
import pytest
from conftest import arc_nb_cmd
from arc_nb.data import load_tasks
from arc_nb.encoding import task_tokens
from arc_nb.scheduler import RunDir, RunConfig, launch, COUNT_VOCAB, RunError
from arc_nb.scoring import validate_submission

EV = load_tasks('arc-agi-2/evaluation')
BY_SIZE = sorted(EV, key=lambda k: task_tokens(COUNT_VOCAB, EV[k]))
FAST = dict(gpus='cpu', epochs=2, n=2, min_prob=0.1, max_seq_len=2048, lora_rank=8, cpu_threads=1)

def per_task(run, event):
    return Counter(e['task'] for e in run.events() if e['event'] == event)

def check_complete(run, tasks):
    "Every task trained and predicted, a valid submission covering all of them."
    assert all(run.trained(t) for t in tasks) and all(run.predicted(t) for t in tasks)
    sub = json.loads(run.submission_file.read_text())
    assert validate_submission(sub, run.tasks()) == []
    return sub

@pytest.fixture(scope='module')
def split_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('runs') / 'split'
    tasks = BY_SIZE[:8]
    s = launch(RunConfig(out=str(out), tasks=tasks, train_slots=2, infer_slots=2, **FAST), progress=False)
    return out, tasks, s

def test_split_2x2_every_task_once(split_run):
    out, tasks, s = split_run
    run = RunDir(out)
    check_complete(run, tasks)
    assert per_task(run, 'train_end') == Counter({t: 1 for t in tasks})
    assert per_task(run, 'infer_end') == Counter({t: 1 for t in tasks})
    assert sum(e['event'] == 'model_load' for e in run.events()) == 4
    assert {e['worker'] for e in run.events() if e['event'] == 'model_load'} == {'train-cpu-0', 'train-cpu-1', 'infer-cpu-0', 'infer-cpu-1'}
    sc = json.loads(run.score_file.read_text())
    assert sc['tasks'] == 8 and set(sc['per_task']) == set(tasks) and s['score'] == sc['score']
    for e in run.events():  # the contract's fields
        assert {'time', 'event', 'worker', 'pid', 'phase', 'gpu', 'slot'} <= set(e)

def test_fused_equals_split(split_run, tmp_path):
    out, tasks, _ = split_run
    launch(RunConfig(out=str(tmp_path / 'fused'), tasks=tasks, mode='fused', train_slots=2, **FAST), progress=False)
    fused = RunDir(tmp_path / 'fused')
    assert json.loads(fused.submission_file.read_text()) == json.loads(RunDir(out).submission_file.read_text())
    assert per_task(fused, 'train_end') == Counter({t: 1 for t in tasks})
    assert not any(e['event'] in ('adapter_save', 'adapter_load') for e in fused.events())  # adapter stays in memory
    # the predictions (every candidate and score), not just the attempts, agree
    for t in tasks:
        a = json.loads(fused.predictions(t).read_text()); b = json.loads(RunDir(out).predictions(t).read_text())
        assert [x['candidates'] for x in a['tests']] == [x['candidates'] for x in b['tests']]

def test_fused_k_tasks_equal_one_at_a_time(split_run, tmp_path):
    "A fused worker training 3 tasks at once and searching them as one batch predicts what one task at a time does."
    out, tasks, _ = split_run
    launch(RunConfig(out=str(tmp_path / 'fk'), tasks=tasks, mode='fused', train_slots=1, tasks_per_worker=3, **FAST), progress=False)
    fk = RunDir(tmp_path / 'fk')
    assert json.loads(fk.submission_file.read_text()) == json.loads(RunDir(out).submission_file.read_text())
    assert per_task(fk, 'train_end') == Counter({t: 1 for t in tasks}) and per_task(fk, 'infer_end') == Counter({t: 1 for t in tasks})
    assert max(e.get('batch', 1) for e in fk.events() if e['event'] == 'infer_end') == 3
    for t in tasks:  # every candidate, not just the attempts
        a = json.loads(fk.predictions(t).read_text()); b = json.loads(RunDir(out).predictions(t).read_text())
        assert [[c['grid'] for c in x['candidates']] for x in a['tests']] == [[c['grid'] for c in x['candidates']] for x in b['tests']]

def test_mixed_precision_k_tasks_run(tmp_path):
    "A bf16 model with lora_compute 'base': the slots multiply in bf16 from fp32 weights; every task trained and predicted once."
    tasks = BY_SIZE[:3]
    launch(RunConfig(out=str(tmp_path / 'mx'), tasks=tasks, mode='fused', train_slots=1, tasks_per_worker=2, dtype='bfloat16',
                     lora_compute='base', **FAST), progress=False)
    run = RunDir(tmp_path / 'mx')  # fused: the adapters stay in memory (train.json and the predictions are on disk)
    assert all(run.train_json(t).exists() and run.predicted(t) for t in tasks)
    assert validate_submission(json.loads(run.submission_file.read_text()), run.tasks()) == []
    assert per_task(run, 'train_end') == Counter({t: 1 for t in tasks})
    assert json.loads(run.config_file.read_text())['lora_compute'] == 'base'

def _wait_for(run, pred, timeout=240):
    t = time.time()
    while time.time() - t < timeout:
        for e in run.events():
            if pred(e): return e
        time.sleep(0.005)
    raise AssertionError('event never came')

def start_cli_run(out, tasks, cfg):
    "`arc-nb run` (1 train + 1 inference slot) in its own process, once its event log exists: (process, RunDir)."
    p = subprocess.Popen(arc_nb_cmd() + ['run', '--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(tasks), '--quiet',
                                         '--train-slots', '1', '--infer-slots', '1'] + sum([[f'--{k.replace("_", "-")}', str(v)] for k, v in cfg.items()], []),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = RunDir(out)
    while not run.events_file.exists(): time.sleep(0.05)
    return p, run

def test_sigkill_train_and_infer_workers_mid_task(tmp_path):
    out = tmp_path / 'kill'
    tasks = BY_SIZE[8:14]
    cfg = dict(FAST, epochs=40, n=4, min_prob=0.05)
    p, run = start_cli_run(out, tasks, cfg)
    killed = {}
    for phase in ('train', 'infer'):
        e = _wait_for(run, lambda e: e['event'] == 'claim' and e['phase'] == phase and not any(
            x['event'] in ('train_end', 'infer_end') and x['task'] == e['task'] and x['pid'] == e['pid'] for x in run.events()))
        os.kill(e['pid'], signal.SIGKILL)
        killed[phase] = e
    stdout, stderr = p.communicate(timeout=600)
    assert p.returncode == 0, stderr
    check_complete(run, tasks)
    evs = run.events()
    for phase, e in killed.items():
        end = 'train_end' if phase == 'train' else 'infer_end'
        # the killed worker did not finish its task; another process claimed it again and finished it, exactly once
        assert not any(x['event'] == end and x['task'] == e['task'] and x['pid'] == e['pid'] for x in evs)
        assert sum(x['event'] == end and x['task'] == e['task'] for x in evs) == 1
    assert per_task(run, 'train_end') == Counter({t: 1 for t in tasks}) and per_task(run, 'infer_end') == Counter({t: 1 for t in tasks})
    assert sum(e['event'] == 'worker_restart' for e in evs) == 2

def test_sigkill_launcher_then_resume(tmp_path):
    out = tmp_path / 'resume'
    tasks = BY_SIZE[:10]
    args = ['--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(tasks), '--quiet', '--gpus', 'cpu', '--epochs', '20',
            '--n', '2', '--min-prob', '0.1', '--max-seq-len', '2048', '--lora-rank', '8', '--cpu-threads', '1']
    p = subprocess.Popen(arc_nb_cmd() + ['run'] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run = RunDir(out)
    while not run.events_file.exists(): time.sleep(0.05)
    _wait_for(run, lambda e: e['event'] == 'infer_end')
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL); p.wait()
    time.sleep(1.0)
    pids = {e['pid'] for e in run.events() if e['event'] == 'worker_start'}
    alive = [pid for pid in pids if os.path.exists(f'/proc/{pid}') and 'zombie' not in open(f'/proc/{pid}/status').read().lower()]
    assert not alive, f"workers outlived their launcher: {alive}"
    n_before = len(run.events())
    trained_before = {t for t in tasks if run.trained(t)}; predicted_before = {t for t in tasks if run.predicted(t)}
    assert predicted_before and len(predicted_before) < len(tasks)
    r = subprocess.run(arc_nb_cmd() + ['run', '--resume', '--out', str(out), '--quiet'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    check_complete(run, tasks)
    after = run.events()[n_before:]
    assert not {e['task'] for e in after if e['event'] == 'train_end'} & trained_before   # no finished training redone
    assert not {e['task'] for e in after if e['event'] == 'infer_end'} & predicted_before  # no finished prediction redone
    assert per_task(run, 'infer_end') == Counter({t: 1 for t in tasks})

def test_time_budget_far_too_small(tmp_path):
    out = tmp_path / 'budget'
    tasks = BY_SIZE[20:30]
    budget = 12.0
    t0 = time.time()
    r = subprocess.run(arc_nb_cmd() + ['run', '--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(tasks), '--quiet',
                                       '--gpus', 'cpu', '--epochs', '200', '--n', '8', '--max-seq-len', '4096', '--lora-rank', '8',
                                       '--time-budget', str(budget)], capture_output=True, text=True, timeout=120)
    wall = time.time() - t0
    assert r.returncode == 5, r.stderr  # work left undone: the budget cut it
    assert wall < budget + 4, wall  # a few seconds of grace for interpreter start and process exit
    run = RunDir(out)
    sub = json.loads(run.submission_file.read_text())
    assert sorted(sub) == sorted(tasks) and validate_submission(sub, run.tasks()) == []
    assert any(e['event'] == 'deadline' for e in run.events())
    assert json.loads(r.stdout)['deadline_cut'] is True

def test_moderate_budget_quick_passes_first(tmp_path):
    """A budget shorter than the work (issue 21): every adapter gets its quick pass before the inference worker spends
    time on a full search; full searches replace quick passes test input by test input; the cut keeps a valid submission."""
    out, tasks, budget = tmp_path / 'anytime', BY_SIZE[:10], 80.0
    t0 = time.time()
    s = launch(RunConfig(out=str(out), tasks=tasks, time_budget=budget, **{**FAST, 'epochs': 1, 'n': 8, 'min_prob': 0.05},
                         max_new_tokens=100), progress=False)
    assert time.time() - t0 < budget + 4
    run = RunDir(out)
    sub = json.loads(run.submission_file.read_text())
    assert sorted(sub) == sorted(tasks) and validate_submission(sub, run.tasks()) == []
    ev = run.events()
    ends = [e for e in ev if e['event'] == 'infer_end']
    assert {e['pass'] for e in ends} == {'quick', 'full'}, [(e['task'], e['pass']) for e in ends]
    saved = {e['task']: e['time'] for e in ev if e['event'] == 'adapter_save'}
    quick = {e['task']: e['time'] for e in ends if e['pass'] == 'quick'}
    for e in ends:
        if e['pass'] == 'full':  # one inference worker: nothing waited for its quick pass when a full search began
            start = e['time'] - e['seconds']
            waiting = [t for t, at in saved.items() if at < start - 2 and not quick.get(t, math.inf) <= start]
            assert not waiting, (e['task'], waiting)
            assert quick[e['task']] <= start  # a task's full search comes after its quick pass
    for t in tasks:  # a task at the full pass has every test input there; one at the quick pass has them all predicted
        if run.predicted(t):
            passes = {x['pass'] for x in json.loads(run.predictions(t).read_text())['tests']}
            assert passes == {'full'} if run.done(t, 'infer') else 'quick' in passes
    assert s['predicted'] >= 1 and s['predicted'] == sum(run.predicted(t) for t in tasks)
    assert s['at_quick'] == sum(run.partial(t).exists() for t in tasks)

def test_malformed_task_is_recorded_and_the_rest_scored(tmp_path):
    good = BY_SIZE[:3]
    ch = {t: EV[t].to_json() for t in good}
    ch['badbadba'] = {'train': [{'input': [[1, 2], [3]], 'output': [[1]]}], 'test': [{'input': [[1]]}, {'input': [[2]]}]}
    (tmp_path / 'mine_challenges.json').write_text(json.dumps(ch))
    (tmp_path / 'mine_solutions.json').write_text(json.dumps({t: EV[t].solutions() for t in good}))
    s = launch(RunConfig(data=str(tmp_path / 'mine_challenges.json'), out=str(tmp_path / 'run'), **FAST), progress=False)
    run = RunDir(tmp_path / 'run')
    errs = [e for e in run.events() if e['event'] == 'task_error']
    assert [e['task'] for e in errs] == ['badbadba'] and 'not rectangular' in errs[0]['message'] and 'mine_challenges.json' in errs[0]['message']
    sub = json.loads(run.submission_file.read_text())
    assert len(sub['badbadba']) == 2 and all(sub['badbadba'][i]['attempt_1'] == [[0]] for i in range(2))
    assert all(run.predicted(t) for t in good)
    sc = json.loads(run.score_file.read_text())
    assert sc['tasks'] == 4 and sc['per_task']['badbadba'] == 0 and s['bad_tasks'] == ['badbadba']

def test_bad_model_stops_the_launcher(tmp_path):
    r = subprocess.run(arc_nb_cmd() + ['run', '--out', str(tmp_path / 'r1'), '--tasks', '2', '--gpus', 'cpu', '--model', str(tmp_path / 'nope')],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'does not exist' in r.stderr and 'Traceback' not in r.stderr
    (tmp_path / 'broken').mkdir(); (tmp_path / 'broken' / 'config.json').write_text('{"model_type": "llama"}')
    r = subprocess.run(arc_nb_cmd() + ['run', '--out', str(tmp_path / 'r2'), '--tasks', '2', '--gpus', 'cpu', '--model', str(tmp_path / 'broken')],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'has no weights' in r.stderr and not (tmp_path / 'r2').exists(), r.stderr  # refused up front
    # a folder that passes the launcher's checks (weights, tokenizer) but no worker can load: the workers' failure stops it
    from arc_nb.model import make_tiny_model
    make_tiny_model(tmp_path / 'broken')
    c = json.loads((tmp_path / 'broken' / 'config.json').read_text())  # weights whose shapes the config contradicts
    (tmp_path / 'broken' / 'config.json').write_text(json.dumps(dict(c, intermediate_size=2 * c['intermediate_size'])))
    t0 = time.time()
    r = subprocess.run(arc_nb_cmd() + ['run', '--out', str(tmp_path / 'r2'), '--tasks', '2', '--gpus', 'cpu', '--model', str(tmp_path / 'broken')],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'failed on start' in r.stderr and 'could not be loaded' in r.stderr, r.stderr
    assert time.time() - t0 < 60  # stopped, not hung
    assert json.loads((tmp_path / 'r2' / 'submission.json').read_text())  # and still left a valid fallback submission

def test_config_file_and_resume_refusal(tmp_path):
    cfgf = tmp_path / 'c.json'; cfgf.write_text(json.dumps({'epochs': 1, 'lora_rank': 4, 'n': 1, 'gpus': 'cpu', 'max_seq_len': 2048}))
    out = tmp_path / 'r'
    r = subprocess.run(arc_nb_cmd() + ['run', '--config', str(cfgf), '--out', str(out), '--tasks', BY_SIZE[0], '--quiet', '--min-prob', 'none'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    c = json.loads((out / 'config.json').read_text())
    assert (c['epochs'], c['lora_rank'], c['n'], c['min_prob'], c['tasks']) == (1, 4, 1, None, [BY_SIZE[0]])
    r = subprocess.run(arc_nb_cmd() + ['run', '--out', str(out), '--tasks', '1'], capture_output=True, text=True)
    assert r.returncode == 2 and 'already holds a run' in r.stderr
    cfgf.write_text(json.dumps({'epoch': 1}))
    r = subprocess.run(arc_nb_cmd() + ['run', '--config', str(cfgf), '--out', str(tmp_path / 'x')], capture_output=True, text=True)
    assert r.returncode == 2 and 'unknown setting(s) epoch' in r.stderr

def test_two_logical_devices_share_the_work_and_survive_a_kill(tmp_path):
    "The multi-GPU logic on a CPU: --gpus cpu:2 makes two device groups of slots (slot locks, names, plots per device)."
    from arc_nb.plots import summary, plot_slots
    out = tmp_path / 'two'
    tasks = BY_SIZE[14:22]
    p = subprocess.Popen(arc_nb_cmd() + ['run', '--out', str(out), '--tasks', ','.join(tasks), '--gpus', 'cpu:2', '--quiet', '--epochs', '20',
                                         '--n', '2', '--min-prob', '0.1', '--max-seq-len', '2048', '--lora-rank', '8', '--cpu-threads', '1'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = RunDir(out)
    while not run.events_file.exists(): time.sleep(0.05)
    e = _wait_for(run, lambda e: e['event'] == 'claim' and e['worker'] == 'train-cpu1-0')
    os.kill(e['pid'], signal.SIGKILL)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    check_complete(run, tasks)
    evs = run.events()
    assert {x['worker'] for x in evs if x['event'] == 'model_load'} == {'train-cpu0-0', 'infer-cpu0-0', 'train-cpu1-0', 'infer-cpu1-0'}
    assert per_task(run, 'train_end') == Counter({t: 1 for t in tasks}) and per_task(run, 'infer_end') == Counter({t: 1 for t in tasks})
    by_dev = Counter(x['gpu'] for x in evs if x['event'] == 'train_end')
    assert set(by_dev) == {'cpu0', 'cpu1'}  # both device groups trained tasks
    assert set(summary(out).gpu) == {'cpu0', 'cpu1'}
    plot_slots(out)

def test_sigkill_k_task_worker_mid_step(tmp_path):
    "A worker training 3 tasks at once is killed mid-step: all its claims come free, every task is trained and predicted once."
    out = tmp_path / 'killk'
    tasks = BY_SIZE[14:20]
    cfg = dict(FAST, epochs=30, n=2, tasks_per_worker=3)
    p, run = start_cli_run(out, tasks, cfg)

    def open_claims(pid):
        evs = [x for x in run.events() if x['pid'] == pid]
        return {x['task'] for x in evs if x['event'] == 'claim'} - {x['task'] for x in evs if x['event'] == 'train_end'}

    e = _wait_for(run, lambda e: e['event'] == 'claim' and e['phase'] == 'train' and len(open_claims(e['pid'])) >= 2)
    held = open_claims(e['pid'])
    os.kill(e['pid'], signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=600)
    assert p.returncode == 0, stderr
    check_complete(run, tasks)
    evs = run.events()
    for t in held:  # each claim of the killed worker was trained again by its restarted process, once
        assert not any(x['event'] == 'train_end' and x['task'] == t and x['pid'] == e['pid'] for x in evs)
    assert per_task(run, 'train_end') == Counter({t: 1 for t in tasks}) and per_task(run, 'infer_end') == Counter({t: 1 for t in tasks})
    assert any(x['event'] == 'train_end' and x.get('slot_k') == 2 for x in evs)  # three slots were in use
    assert sum(x['event'] == 'worker_restart' for x in evs) == 1
