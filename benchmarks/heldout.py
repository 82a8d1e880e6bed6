"""Held-out loss of model folders (issue 26): `python benchmarks/heldout.py MODEL [MODEL ...] > heldout.json`.
Each model's `heldout_loss` on the held-out ARC-AGI-1 training tasks (`holdout_ids`, never the evaluation set), per
task and as a mean, with its training record (pretrain.json) when it has one."""

import json, sys
from pathlib import Path

import numpy as np

from arc_nb.data import load_tasks
from arc_nb.model import load_base
from arc_nb.pretrain import PretrainConfig, heldout_loss, holdout_ids

if __name__ == '__main__':
    tr = load_tasks('arc-agi-1/training')
    held = {k: tr[k] for k in holdout_ids(PretrainConfig())}
    out = {'tasks': sorted(held), 'models': {}}
    for m in sys.argv[1:]:
        model, tok = load_base(m, dtype='float32')
        per = heldout_loss(model, tok, held)
        pj = Path(m) / 'pretrain.json'
        rec = json.loads(pj.read_text()) if pj.exists() else {}
        out['models'][m] = {
            'mean_loss': float(np.mean(list(per.values()))),
            'per_task': per,
            'params': sum(p.numel() for p in model.parameters()),
            **{k: rec[k] for k in ('step', 'tokens', 'seconds', 'config') if k in rec},
        }
        print(f"{m}: held-out loss {out['models'][m]['mean_loss']:.4f} over {len(per)} tasks", file=sys.stderr)
    print(json.dumps(out, indent=1))
