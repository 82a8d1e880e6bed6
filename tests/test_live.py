"The live views as a user sees them: `arc-nb watch` in a terminal during and after a real run, `plots.live` in JupyterLab in headless Chromium."
import json, os, re, shutil, socket, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import arc_nb_cmd
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
    r = subprocess.run(arc_nb_cmd() + ['watch', str(out), '--interval', '0.5'], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr
    assert p.wait(timeout=60) == 0
    frames = r.stdout.split(f'{out}: ')[1:]
    assert frames[-1].startswith('finished') and len(frames) >= 2, r.stdout[-2000:]
    last = frames[-1]
    assert re.search(r'trained +3 / 3 +\[#{20}\]', last) and re.search(r'predicted +3 / 3', last), last
    assert re.search(r'train-cpu-0 +exited', last) and re.search(r'infer-cpu-0 +exited', last), last
    assert re.search(r'CPU +util +\d+\.\d% \(mean \d+\.\d%\) +RAM \d+\.\d GiB', last), last
    sc = json.loads((out / 'score.json').read_text())['score']  # a percent, as the run's last line gives it
    assert f'score {sc:.2f}%' in last, last  # the run's own solutions: run_end carries its score


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


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _need(what, ok):
    "Skip where the browser test cannot run on a developer's machine; fail in CI (env CI set), which must run it."
    if not ok:
        if os.environ.get('CI'):
            pytest.fail(f"{what} is missing, and CI must run the browser test (.ci/run installs it)")
        pytest.skip(f"{what} is missing: apt-get install chromium; pip install -e '.[dev]'")


def _bands(mask, min_px=10):
    "Horizontal bands (first row, last row) of an image mask where at least `min_px` pixels of a row are set."
    rows = [y for y in range(mask.shape[0]) if mask[y].sum() >= min_px]
    out = []
    for y in rows:
        if out and y == out[-1][1] + 1:
            out[-1][1] = y
        else:
            out.append([y, y])
    return out


def test_lv_live_view_in_jupyterlab_headless_chromium(tmp_path):
    """A small CPU run; JupyterLab on 127.0.0.1 with a token; headless Chromium opens a notebook that calls
    `plots.live(RUN, interval=2)`, runs it, waits for two refreshes and checks the page: the status line, the summary
    table's slot rows, and in the screenshot the timeline's slot rows (bands of the slot colours) and the resource line.
    ARC_NB_LIVE_PNG=path keeps the screenshot (docs/live_jupyterlab.png is one)."""
    chromium = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None)
    _need('chromium (Debian package `chromium`)', chromium)
    try:
        import jupyterlab  # noqa: F401
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _need('jupyterlab and playwright (the dev extra)', sync_playwright)
    import numpy as np, nbformat, secrets, urllib.request
    from PIL import Image
    from arc_nb.plots import COLORS

    t_start = time.time()
    # 30 small tasks at 30 epochs: minutes of work, so the run is still going while the page refreshes (the test ends it)
    run = tmp_path / 'run'
    p = subprocess.Popen(arc_nb_cmd() + ['run', '--out', str(run), '--tasks', ','.join(BY_SIZE[:30]), '--gpus', 'cpu', '--epochs', '30',
                                         '--n', '1', '--max-seq-len', '2048', '--lora-rank', '8', '--cpu-threads', '1',
                                         '--monitor-interval', '0.5', '--time-budget', '400', '--quiet'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"from arc_nb import plots\nv = plots.live({str(run)!r}, interval=2)")])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nbformat.write(nb, tmp_path / 'live.ipynb')
    port, token = _free_port(), secrets.token_hex(16)
    import jupyterlab_widgets  # the frontend's widget manager lives in the data dir of the environment that holds it

    share = str(Path(jupyterlab_widgets.__file__).parents[4] / 'share' / 'jupyter')
    jpath = os.pathsep.join(x for x in (share, os.environ.get('JUPYTER_PATH')) if x)
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(tmp_path / 'jcfg'), 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'jrt'), 'JUPYTER_PATH': jpath}
    lab = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip', '127.0.0.1', f'--port={port}', f'--IdentityProvider.token={token}',
                            f'--ServerApp.root_dir={tmp_path}', '--LabApp.expose_app_in_browser=True',
                            f'--LabApp.workspaces_dir={tmp_path / "ws"}', '--ServerApp.port_retries=0', '--allow-root'],
                           stdout=subprocess.DEVNULL, stderr=open(tmp_path / 'lab.log', 'w'), env=env)
    try:
        url = f'http://127.0.0.1:{port}'
        for _ in range(600):
            try:
                urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2)
                break
            except OSError:
                assert lab.poll() is None, (tmp_path / 'lab.log').read_text()[-3000:]
                time.sleep(0.2)
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=chromium, args=['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'])
            page = b.new_page(viewport={'width': 1300, 'height': 1150})
            page.goto(f'{url}/lab/tree/live.ipynb?token={token}')
            kernel = "window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel"
            page.wait_for_function(f"{kernel}?.status === 'idle'", timeout=240_000)
            no = page.get_by_role('button', name='No', exact=True)
            if no.count():  # JupyterLab's "notified about news?" question
                no.first.click(timeout=5000)
                page.wait_for_timeout(500)
            page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")  # more room for the plots
            while '"infer_end"' not in (run / 'events.jsonl').read_text():  # tasks on the timeline, not just model loads
                assert p.poll() is None and time.time() - t_start < 300, 'no task predicted in 300 s'
                time.sleep(0.2)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            # two refreshes or more, and the page shows the figure and the summary table with both slots' rows (between a
            # refresh's clear and its new output the old one stays: clear_output(wait=True))
            ready = """() => { const t = document.body.innerText, imgs = [...document.querySelectorAll('.jp-OutputArea-output img')];
                return /refreshed ([2-9]|\\d\\d+)x/.test(t) && t.includes('train-cpu-0') && t.includes('infer-cpu-0') && imgs.some(i => i.complete && i.naturalWidth > 500) }"""
            page.wait_for_function(ready, timeout=240_000)
            assert p.poll() is None, 'the run ended before the second refresh: make it longer'
            img = page.locator('.jp-OutputArea-output img').first
            text = page.locator('.jp-Cell-outputArea').first.inner_text()
            box = img.bounding_box()
            png = page.screenshot(full_page=True)
            b.close()
        assert re.search(rf'{re.escape(str(run))}: refreshed \d+x, last \d\d:\d\d:\d\d', text), text
        assert 'train-cpu-0' in text and 'infer-cpu-0' in text and 'busy_pct' in text, text  # the summary's slot rows
        shot = tmp_path / 'live.png'
        shot.write_bytes(png)
        im = np.asarray(Image.open(shot).convert('RGB')).astype(int)
        fig = im[int(box['y']):int(box['y'] + box['height']), int(box['x']):int(box['x'] + box['width'])]
        h = fig.shape[0]
        top, bottom = fig[: int(h * 0.6)], fig[int(h * 0.68):]  # the timeline (2/3 of the figure) and the resource plot
        slot = np.zeros(top.shape[:2], bool)
        for c in COLORS.values():
            rgb = np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)])
            slot |= (np.abs(top - rgb).sum(-1) <= 6)
        bands = _bands(slot)
        assert len(bands) >= 2, f"slot rows in the timeline: {bands}"  # one row per slot: train-cpu-0, infer-cpu-0
        line = (np.abs(bottom - np.array([0x1f, 0x77, 0xb4])).sum(-1) <= 40)  # the CPU % line (matplotlib's first colour)
        assert line.sum() >= 150 and np.ptp(np.nonzero(line)[1]) > 0.3 * fig.shape[1], line.sum()
        if os.environ.get('ARC_NB_LIVE_PNG'):
            Image.open(shot).save(os.environ['ARC_NB_LIVE_PNG'], optimize=True)
    finally:
        lab.terminate()
        p.kill()
        lab.wait(timeout=30)
        p.wait(timeout=30)
