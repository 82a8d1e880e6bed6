#!/usr/bin/env python
"""Execute notebooks in place, in their quick mode, and save them with their outputs, so that they read with their plots
where they are browsed (GitHub, JupyterLab) without running anything.

    python tools/run_notebooks.py nbs/00_data.ipynb nbs/analysis/*.ipynb

Each notebook runs as `nbdev_test` runs it: execnb's CaptureShell in the notebook's folder, ARC_NB_QUICK=1 (the
analysis notebooks' quick CPU sweeps), the cells flagged `notest`/`slow`/`gpu` (settings.ini's tst_flags) or
`#| eval: false` not run (their old outputs are dropped). To keep the repository small (it is copied to the GPU machine,
64 MiB in all), figures are saved at --dpi (default 72), a text output longer than --max-lines keeps its head and tail,
and widget views keep only their text. A notebook that raises is reported and left as it was. Each written notebook is
then passed through nbdev_clean, so the test command's `nbdev_clean && git diff --exit-code` stays clean.
Exit status: 0 when every notebook ran, 1 otherwise."""

import argparse, os, re, subprocess, sys, time
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET = 'application/vnd.jupyter.widget-view+json'


def skip_flags() -> set:
    cfg = ConfigParser()
    cfg.read(ROOT / 'settings.ini')
    return set(cfg['DEFAULT'].get('tst_flags', '').split())


def directives(src: str) -> dict:
    "The `#| name args` lines at the top of a cell, as {name: args}."
    out = {}
    for line in src.splitlines():
        m = re.match(r'\s*#\s*\|\s*([\w-]+:?)\s*(.*)', line)
        if not m:
            if line.strip():
                break
            continue
        out[m.group(1)] = m.group(2).strip()
    return out


def not_run(cell, flags) -> bool:
    "What nbdev_test leaves out: markdown, nbdev_export() calls, `eval: false`, cells with a skip flag."
    if cell.cell_type != 'code':
        return True
    d = directives(cell.source)
    if 'nbdev_export' + '(' in cell.source or d.get('eval:', '').lower() == 'false' or flags & d.keys():
        cell.outputs, cell.execution_count = [], None
        return True
    return False


def _cut(lines, n):
    if len(lines) <= n:
        return lines
    head, tail = lines[: n // 2], lines[-(n // 2) :]
    return head + [f'... {len(lines) - len(head) - len(tail)} lines cut by tools/run_notebooks.py ...\n'] + tail


def shrink(outputs, max_lines):
    "Long text cut to its head and tail; widget views (no widget state is saved) reduced to their text."
    for o in outputs:
        if o.get('output_type') == 'stream':
            text = o['text'] if isinstance(o['text'], list) else o['text'].splitlines(True)
            o['text'] = _cut(text, max_lines)
        data = o.get('data') or {}
        if WIDGET in data:
            for k in [k for k in data if k != 'text/plain']:
                del data[k]
        if isinstance(data.get('text/plain'), (list, str)):
            text = data['text/plain'] if isinstance(data['text/plain'], list) else data['text/plain'].splitlines(True)
            data['text/plain'] = _cut(text, max_lines)
    return outputs


def fresh_figures():
    "Close the figures earlier cells showed: CaptureShell leaves them open, and a later plt.show() would show them again."
    import matplotlib.pyplot as plt

    plt.close('all')


def run_one(fn: Path, dpi: int, max_lines: int) -> bool:
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory

    nb, flags = read_nb(fn), skip_flags()
    from matplotlib_inline.config import InlineBackend

    # figures laid out as always (labels that fit at 100 dpi still fit), saved at `dpi`
    InlineBackend.instance().print_figure_kwargs = {'bbox_inches': 'tight', 'dpi': dpi}
    k = CaptureShell(fn)
    k.enable_matplotlib('inline')  # figures as PNG outputs, as in Jupyter
    try:
        with working_directory(fn.parent):
            k.run_all(nb, exc_stop=True, preproc=lambda c: fresh_figures() or not_run(c, flags))
    except BaseException:
        sys.stderr.write(k.prettytb(fname=fn) + '\n')
        return False
    for c in nb.cells:
        if c.cell_type == 'code':
            shrink(c.get('outputs', []), max_lines)
    write_nb(nb, fn)
    exe = Path(sys.executable).parent / 'nbdev_clean'  # the console script: its function parses this script's argv
    subprocess.run([str(exe) if exe.exists() else 'nbdev_clean', '--fname', str(fn)], check=True, cwd=ROOT)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('notebooks', nargs='+', type=Path, metavar='NB')
    p.add_argument('--dpi', type=int, default=72, help="figure resolution of the saved outputs [default: 72]")
    p.add_argument('--max-lines', type=int, default=40, help="longest text output kept whole [default: 40]")
    a = p.parse_args(argv)
    os.environ.setdefault('ARC_NB_QUICK', '1')
    os.environ.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
    failed = []
    for fn in a.notebooks:
        t = time.time()
        ok = run_one(fn.resolve(), a.dpi, a.max_lines)
        kb = fn.stat().st_size / 1024
        print(f"{fn}: {'ran' if ok else 'FAILED, left as it was'} in {time.time() - t:.0f} s; {kb:.0f} KiB", flush=True)
        if not ok:
            failed.append(fn)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
