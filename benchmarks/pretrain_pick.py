"""The size screen's table (JSON on stdout): per size its parameters, steps, tokens, seconds and the mean training
loss over the last three logged points; `best` is the lowest. Usage: pretrain_pick.py PT_DIR SIZE [SIZE ...]"""

import json, sys
from pathlib import Path

rows = {}
for s in sys.argv[2:]:
    st = json.loads((Path(sys.argv[1]) / s / 'checkpoint' / 'state.json').read_text())
    from arc_nb.plots import _safetensors_shapes  # arc_nb on the path

    shapes = _safetensors_shapes(Path(sys.argv[1]) / s / 'checkpoint')  # weights and both AdamW moments
    shapes = {k: v for k, v in shapes.items() if not k.endswith(('.m', '.v'))}
    last = [l for _, l in st['losses'][-3:]]
    rows[s] = {
        'params': sum(int(__import__('math').prod(v)) for v in shapes.values()),
        'steps': st['step'],
        'tokens': st['tokens'],
        'seconds': round(st['seconds'], 1),
        'loss_last3': sum(last) / len(last) if last else float('inf'),
    }
print(json.dumps({'best': min(rows, key=lambda k: rows[k]['loss_last3']), 'sizes': rows}, indent=1))
