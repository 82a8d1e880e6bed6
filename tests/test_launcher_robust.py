"""The launcher's side of a run's robustness (issues 24 and 25): bad tasks named on the console with exit 4, a budget counted
from the launcher's own start and an absolute --deadline, one launcher per run, an atomic setup, nothing silent (exit 5,
restarts in a row, I/O errors in one line), stale temporaries removed. Real `arc-nb run` processes on the CPU."""
import errno, json, os, signal, subprocess, sys, time
from collections import Counter
from pathlib import Path
import pytest
from conftest import arc_nb_cmd
from arc_nb.data import load_tasks
from arc_nb.encoding import task_tokens
from arc_nb.scheduler import RunDir, RunConfig, COUNT_VOCAB, is_run

EV = load_tasks('arc-agi-2/evaluation')
BY_SIZE = sorted(EV, key=lambda k: task_tokens(COUNT_VOCAB, EV[k]))
FAST = ['--gpus', 'cpu', '--epochs', '1', '--n', '1', '--min-prob', '0.1', '--max-seq-len', '2048', '--lora-rank', '4',
        '--cpu-threads', '1', '--quiet']


def run_cli(*args, timeout=300, **kw):
    return subprocess.run(arc_nb_cmd() + list(args), capture_output=True, text=True, timeout=timeout, **kw)


def per_task(run, event):
    return Counter(e['task'] for e in run.events() if e['event'] == event)


def all_done(run, tasks):
    return all(run.trained(t) for t in tasks) and all(run.predicted(t) and run.done(t, 'infer') for t in tasks)


def test_la_bad_tasks_named_on_the_console_exit_4(tmp_path):
    "Three bad tasks beside two good ones: the run ends 4, and stderr and the JSON summary name each task, reason and file."
    good = BY_SIZE[:2]
    ch = {t: EV[t].to_json() for t in good}
    ch['colour11'] = {'train': [{'input': [[11]], 'output': [[1]]}], 'test': [{'input': [[1]]}]}
    ch['raggedgr'] = {'train': [{'input': [[1, 2], [3]], 'output': [[1]]}], 'test': [{'input': [[1]]}]}
    ch['notestin'] = {'train': [{'input': [[1]], 'output': [[1]]}], 'test': []}
    f = tmp_path / 'mine_challenges.json'
    f.write_text(json.dumps(ch))
    out = tmp_path / 'run'
    r = run_cli('run', '--data', str(f), '--out', str(out), *FAST)
    assert r.returncode == 4, r.stderr
    why = {'colour11': 'colour 11 is outside 0-9', 'raggedgr': 'not rectangular', 'notestin': 'no test input'}
    lines = r.stderr.splitlines()
    for t, reason in why.items():
        line = next((x for x in lines if x.startswith(f'bad task {t}:')), '')
        assert reason in line and 'mine_challenges.json' in line, r.stderr
    s = json.loads(r.stdout)
    assert s['exit_code'] == 4 and s['bad_tasks'] == sorted(why)
    assert all(why[t] in s['bad_reasons'][t] and 'mine_challenges.json' in s['bad_reasons'][t] for t in why)
    assert 'exit 4: some tasks were bad' in r.stderr
    run = RunDir(out)
    assert all_done(run, good)
    # the progress output names them too, before the bar (not --quiet)
    r = run_cli('run', '--resume', '--out', str(out))
    assert r.returncode == 4 and sum(x.startswith('bad task ') for x in r.stderr.splitlines()) == 6, r.stderr  # start + end


def test_la_score_says_what_the_submission_lacks(tmp_path, arc_nb):
    tasks = load_tasks('arc-agi-2/evaluation')
    ids = sorted(tasks)[:5]
    sub = {k: [{'attempt_1': g, 'attempt_2': [[0]]} for g in tasks[k].solutions()] for k in ids}
    f = tmp_path / 'sub.json'
    f.write_text(json.dumps(sub))
    r = run_cli('score', str(f), '--solutions', 'arc-agi-2/evaluation')
    assert r.returncode == 0 and json.loads(r.stdout)['tasks'] == 120
    assert r.stderr.strip().splitlines() == [f"{f} lacks 115 of the 120 tasks of the solutions: each scored 0 "
                                             "(--only-submitted: score without them)"]
    r = run_cli('score', str(f), '--solutions', 'arc-agi-2/evaluation', '--only-submitted')
    s = json.loads(r.stdout)
    assert r.returncode == 0 and s['tasks'] == 5 and s['score'] == 100.0 and sorted(s['per_task']) == ids
    assert 'lacks 115 of the 120' in r.stderr and 'left out' in r.stderr
    other = tmp_path / 'other_solutions.json'
    other.write_text(json.dumps({'zzzz0000': [[[1]]]}))
    r = run_cli('score', str(f), '--solutions', str(other), '--only-submitted')
    assert r.returncode == 2 and 'none of its tasks' in r.stderr


def test_la_budget_counts_from_the_launcher_not_its_shell(tmp_path):
    """`bash -c 'sleep 3 && arc-nb run --time-budget 10'`: bash hands its process over, and the budget still counts from
    the launcher's own start, so the run gets its whole 10 s; a --deadline in the past is refused in one line."""
    out, budget = tmp_path / 'b', 10.0
    args = ['run', '--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(BY_SIZE[20:24]),
            '--time-budget', str(budget)] + FAST + ['--epochs', '200']
    t0 = time.time()
    r = subprocess.run(['bash', '-c', 'sleep 3 && exec "$@"', 'bash'] + arc_nb_cmd() + args, capture_output=True, text=True,
                       timeout=120)
    wall = time.time() - t0
    assert r.returncode == 5, r.stderr  # cut by the budget: work undone
    ev = RunDir(out).events()
    start = next(e for e in ev if e['event'] == 'run_start')
    assert start['started'] >= t0 + 3.0 and abs(start['deadline'] - (start['started'] + budget)) < 1e-6, (start, t0)
    assert start['started'] - t0 < 3.0 + 2.0  # taken at the launcher's start, not after its setup
    cut = next(e for e in ev if e['event'] == 'deadline' and e['worker'] == 'launcher')
    assert cut['time'] >= t0 + 3.0 + budget - 2.0  # the run used (nearly) its whole budget after the shell's 3 s
    end = next(e for e in ev if e['event'] == 'run_end')
    assert end['time'] < start['deadline'] + 5.0, end['time'] - start['deadline']  # and held to its end
    assert wall < 3.0 + budget + 30.0, wall  # not hung (the exact wall time is test_time_budget_far_too_small's, run alone)
    s = json.loads(r.stdout)
    assert s['deadline_cut'] and any(s['undone'].values())
    assert f'arc-nb run --resume --out {out}` finishes it' in r.stderr and 'exit 5: work left undone' in r.stderr
    # --deadline in the past: one line, exit 2, nothing written
    r = run_cli('run', '--out', str(tmp_path / 'p'), '--tasks', '1', '--gpus', 'cpu', '--deadline', '2020-01-01T00:00:00Z')
    assert r.returncode == 2 and 'is in the past' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / 'p').exists()
    # an absolute deadline in a few seconds (unix seconds) ends the run then
    end = time.time() + 12
    r = run_cli('run', '--resume', '--out', str(out), '--deadline', str(end))
    assert r.returncode == 5, r.stderr
    ev = RunDir(out).events()
    assert [e for e in ev if e['event'] == 'run_start'][-1]['deadline'] == end
    assert end - 3.0 <= [e for e in ev if e['event'] == 'run_end'][-1]['time'] < end + 5.0


def _spawn(args):
    return subprocess.Popen(arc_nb_cmd() + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _race(args):
    "Two identical launchers started at the same instant: (winner, loser) as (process, stdout, stderr)."
    ps = [_spawn(args), _spawn(args)]
    res = [(p, *p.communicate(timeout=600)) for p in ps]
    refused = [x for x in res if x[0].returncode == 2]
    assert len(refused) == 1, [(x[0].returncode, x[2][-500:]) for x in res]
    return next(x for x in res if x[0].returncode != 2), refused[0]


def test_la_two_launchers_at_once_one_is_refused(tmp_path):
    "Fresh and resuming: the second launcher is refused with the holder's pid and starts no worker; the first does every task."
    out, tasks = tmp_path / 'two', BY_SIZE[:3]
    args = ['run', '--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(tasks)] + FAST
    (win, w_out, w_err), (lose, _, l_err) = _race(args)
    assert win.returncode == 0, w_err
    assert l_err.strip().splitlines() == [l_err.strip()] and f'held by another launcher (pid {win.pid})' in l_err, l_err
    run = RunDir(out)
    assert all_done(run, tasks)
    assert per_task(run, 'train_end') == Counter({t: 1 for t in tasks}) and per_task(run, 'infer_end') == Counter(tasks)
    ev = run.events()
    assert sum(e['event'] == 'worker_start' for e in ev) == 2 and not any(e['event'] == 'worker_restart' for e in ev)
    assert {e['pid'] for e in ev if e['event'] == 'run_start'} == {win.pid}
    # two resumes of a run with everything left to do (its budget was spent before any worker started)
    out2 = tmp_path / 'two-resume'
    r = run_cli('run', '--data', 'arc-agi-2/evaluation', '--out', str(out2), '--tasks', ','.join(tasks), '--time-budget', '0.5',
                *FAST)
    assert r.returncode == 5 and len(json.loads(r.stdout)['undone']['untrained']) == 3, r.stderr
    (win, _, w_err), (lose, _, l_err) = _race(['run', '--resume', '--out', str(out2), '--quiet'])
    assert win.returncode == 0 and f'held by another launcher (pid {win.pid})' in l_err, (w_err, l_err)
    run = RunDir(out2)
    assert all_done(run, tasks) and per_task(run, 'train_end') == Counter(tasks)
    assert sum(e['event'] == 'worker_start' for e in run.events()) == 2  # the refused launcher started none
    assert not any(e['event'] == 'worker_restart' for e in run.events())


def _cut_setup(out, tasks):
    "The folder a launcher killed between config.json and challenges.json leaves, with a half tiny model and temporaries."
    out.mkdir(parents=True)
    cfg = RunConfig(data='arc-agi-2/evaluation', out=str(out), tasks=tasks, gpus='cpu', epochs=1, n=1, min_prob=0.1,
                    max_seq_len=2048, lora_rank=4, cpu_threads=1)
    (out / 'config.json').write_text(json.dumps(cfg.to_dict()))
    for d in ('tasks', 'locks', 'logs', 'tiny-model'):
        (out / d).mkdir()
    (out / 'tiny-model' / 'junk').write_text('half a model')  # written in place by an older launcher
    (out / '.challenges.json.k1ll3d.tmp').write_text('{"')
    (out / '.tiny-model.4242.tmp').mkdir()
    (out / 'tasks' / tasks[0]).mkdir()
    (out / 'tasks' / tasks[0] / '.adapter.4242.ab12cd.tmp').mkdir()
    (out / 'tasks' / tasks[0] / '.predictions.json.x9.tmp').write_text('{')
    return out


def test_la_interrupted_setup_resumes_or_restarts(tmp_path):
    "A setup cut between config.json and challenges.json: both --resume and a fresh start work; stale temporaries go."
    tasks = BY_SIZE[:2]
    for how in ('resume', 'fresh'):
        out = _cut_setup(tmp_path / how, tasks)
        assert not is_run(out)
        extra = ['--resume', '--out', str(out), '--quiet'] if how == 'resume' else \
            ['--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(tasks)] + FAST
        r = run_cli('run', *extra)
        assert r.returncode == 0, (how, r.stderr)
        run = RunDir(out)
        assert all_done(run, tasks) and (out / 'setup.done').exists() and (out / 'tiny-model' / 'config.json').exists()
        assert not (out / 'tiny-model' / 'junk').exists()
        left = [p for p in out.rglob('*') if p.name.endswith(('.tmp', '.old'))]
        assert not left, left
    r = run_cli('run', '--data', 'arc-agi-2/evaluation', '--out', str(tmp_path / 'fresh'), '--tasks', tasks[0], *FAST)
    assert r.returncode == 2 and 'already holds a run' in r.stderr  # a complete run is still refused


HOOK = """import os, signal, sys
def die_if_training(model, tok, run):
    if '--phase' in sys.argv and sys.argv[sys.argv.index('--phase') + 1] == 'train':
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_la_slots_out_of_restarts_exit_5_then_resume(tmp_path):
    "Every train worker dies on each start: the slot is given up, the run exits 5 saying so; a resume finishes it."
    hook = tmp_path / 'hook.py'
    hook.write_text(HOOK)
    out, tasks = tmp_path / 'dies', BY_SIZE[:2]
    env = {**os.environ, 'ARC_NB_WORKER_SETUP': f'{hook}:die_if_training'}
    r = run_cli('run', '--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(tasks), '--max-restarts', '1',
                *FAST, env=env)
    assert r.returncode == 5, r.stderr
    s = json.loads(r.stdout)
    assert s['slots_given_up'] == ['train-cpu-0'] and sorted(s['undone']['untrained']) == sorted(tasks)
    assert 'slot train-cpu-0: given up' in r.stderr and f'2 not trained; `arc-nb run --resume --out {out}` finishes it' in r.stderr
    assert sum(e['event'] == 'worker_restart' for e in RunDir(out).events()) == 1
    r = run_cli('run', '--resume', '--out', str(out), '--quiet')
    assert r.returncode == 0, r.stderr
    assert all_done(RunDir(out), tasks)


def test_la_launcher_io_errors_are_one_line(tmp_path, monkeypatch, capsys):
    """A full disk under the launcher mid-run: its workers and monitor are stopped, one line names the path and the cause,
    exit 5, and --resume finishes the run; a read-only folder at the setup: one line, exit 1."""
    import psutil
    import arc_nb.scheduler as sch
    from arc_nb.cli import main
    out, tasks = tmp_path / 'full', BY_SIZE[:2]
    real, calls = sch.write_submission, []

    def full_disk(sub, path):
        calls.append(path)
        if len(calls) > 1:  # the first (fallback) submission is written; the next write finds the disk full
            raise OSError(errno.ENOSPC, 'No space left on device', str(path))
        real(sub, path)

    monkeypatch.setattr(sch, 'write_submission', full_disk)
    args = ['run', '--data', 'arc-agi-2/evaluation', '--out', str(out), '--tasks', ','.join(tasks), '--monitor-interval', '0.5'] + FAST
    assert main(args) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"arc-nb run: error: {out / 'submission.json'}: No space left on device (ENOSPC); the run is stopped; "
                   f"once that is fixed, `arc-nb run --resume --out {out}` finishes it"], err
    assert not psutil.Process().children(recursive=True)  # workers and monitor stopped, none left to die with us
    monkeypatch.setattr(sch, 'write_submission', real)  # the disk is free again
    assert main(['run', '--resume', '--out', str(out), '--quiet']) == 0
    assert all_done(RunDir(out), tasks)
    capsys.readouterr()
    # read-only at the setup: nothing could be set up
    real_json = sch.write_json

    def read_only(path, *a, **k):
        raise OSError(errno.EROFS, 'Read-only file system', str(path))

    monkeypatch.setattr(sch, 'write_json', read_only)
    ro = tmp_path / 'ro'
    assert main(['run', '--data', 'arc-agi-2/evaluation', '--out', str(ro), '--tasks', tasks[0]] + FAST) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{ro / 'config.json'}: Read-only file system (EROFS)" in err[0] and 'run the command again' in err[0]
    monkeypatch.setattr(sch, 'write_json', real_json)
    # once writable, the same command works in the same --out (its setup never completed)
    assert main(['run', '--data', 'arc-agi-2/evaluation', '--out', str(ro), '--tasks', tasks[0]] + FAST) == 0
