"""Write README.md from nbs/index.ipynb (markdown cells as they are, code cells run with execnb and shown
with their text output). nbdev_readme needs Quarto, which is not a pip package we want to depend on; this
does the same job for the README alone. `--check` exits 1 when README.md is stale."""
import sys, re
from pathlib import Path
from execnb.nbio import read_nb
from execnb.shell import CaptureShell

ROOT = Path(__file__).resolve().parents[1]

def _text(out):
    if out.get('output_type') == 'stream': return ''.join(out['text'])
    d = out.get('data', {})
    return ''.join(d.get('text/plain', '')) if 'text/plain' in d else ''

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = read_nb(nb_path)
    CaptureShell(path=ROOT/'nbs').run_all(nb, exc_stop=True)
    parts = ['<!-- WARNING: generated from nbs/index.ipynb by tools/make_readme.py; do not edit -->\n']
    for c in nb.cells:
        src = ''.join(c.source)
        if c.cell_type == 'markdown': parts.append(re.sub(r'^> ', '', src, count=0, flags=re.M) if src.startswith('> ') else src)
        elif c.cell_type == 'code':
            if re.match(r'\s*#\|\s*(hide|default_exp)', src): continue
            parts.append(f"```python\n{src.strip()}\n```")
            out = ''.join(_text(o) for o in c.get('outputs', [])).rstrip()
            if out: parts.append(f"```\n{out}\n```")
    return '\n\n'.join(p.strip('\n') for p in parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), ROOT/'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text() == text
        print('README.md is up to date' if ok else 'README.md is stale: run python tools/make_readme.py'); sys.exit(0 if ok else 1)
    readme.write_text(text); print(f'wrote {readme}')
