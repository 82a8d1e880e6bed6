"The live views as a user sees them: `arc-nb watch` in a terminal during and after a real run, `plots.live` in JupyterLab in headless Chromium."
import json, os, re, shutil, socket, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import arc_nb_cmd, ROOT
from test_scheduler import BY_SIZE

pytestmark = pytest.mark.slow  # real runs and a browser (the fast tier skips them)

SMALL_RUN = ['--gpus', 'cpu', '--epochs', '6', '--n', '2', '--min-prob', '0.1', '--max-seq-len', '2048', '--lora-rank', '8',
             '--cpu-threads', '1', '--monitor-interval', '0.5', '--time-budget', '600', '--quiet']


def start_run(out, tasks):
    "`arc-nb run` of `tasks` in its own process, once its first worker has started."
    p = subprocess.Popen(arc_nb_cmd() + ['run', '--out', str(out), '--tasks', ','.join(tasks)] + SMALL_RUN,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.time()
    while not ((out / 'events.jsonl').exists() and 'worker_start' in (out / 'events.jsonl').read_text()):
        assert p.poll() is None, p.communicate()
        assert time.time() - t < 120, 'no worker started'
        time.sleep(0.1)
    return p


def test_lv_watch_during_and_after_a_run(tmp_path):
    "--once while the run goes: its slots and budget; without --once it follows the run and exits 0 when it ends."
    out, tasks = tmp_path / 'run', BY_SIZE[:3]
    p = start_run(out, tasks)
    r = subprocess.run(arc_nb_cmd() + ['watch', str(out), '--once'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f'{out}: running' in r.stdout and re.search(r'budget 10m00s, \d+m\d\ds left', r.stdout), r.stdout
    assert re.search(r'trained +\d / 3', r.stdout) and re.search(r'(train|infer)-cpu-0 ', r.stdout), r.stdout
    t = time.time()
    r = subprocess.run(arc_nb_cmd() + ['watch', str(out), '--interval', '0.5'], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr
    assert p.wait(timeout=60) == 0
    frames = r.stdout.split(f'{out}: ')[1:]
    assert frames[-1].startswith('finished') and len(frames) >= 2, r.stdout[-2000:]
    last = frames[-1]
    assert re.search(r'trained +3 / 3 +\[#{20}\]', last) and re.search(r'predicted +3 / 3', last), last
    assert re.search(r'train-cpu-0 +exited', last) and re.search(r'infer-cpu-0 +exited', last), last
    assert re.search(r'CPU +util +\d+\.\d% \(mean \d+\.\d%\) +RAM \d+\.\d GiB', last), last
    assert 'score ' in last  # the run's own solutions: run_end carries its score


def test_lv_watch_on_runs_that_never_started(tmp_path):
    "An empty folder (the run still preparing) is shown, not an error; a folder that is not there is one line, exit 2."
    (tmp_path / 'empty').mkdir()
    r = subprocess.run(arc_nb_cmd() + ['watch', str(tmp_path / 'empty'), '--once'], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == f"{tmp_path / 'empty'}: no events yet (the run has not started, or is still preparing)\n"
    (tmp_path / 'started').mkdir()
    (tmp_path / 'started' / 'events.jsonl').write_text(json.dumps(dict(time=time.time(), event='run_start', worker='launcher', pid=os.getpid(), tasks=2)) + '\n')
    r = subprocess.run(arc_nb_cmd() + ['watch', str(tmp_path / 'started'), '--once'], capture_output=True, text=True)
    assert r.returncode == 0 and 'running' in r.stdout and 'slots: none started yet' in r.stdout and 'no resources.csv samples yet' in r.stdout, r.stdout
    r = subprocess.run(arc_nb_cmd() + ['watch', str(tmp_path / 'nope')], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'is not a folder' in r.stderr, r.stderr
