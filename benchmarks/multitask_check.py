"""Issue 22's last acceptance item: the K-slot exactness checked with other models, K values and task mixes than the
tests use (they use a Llama-style tiny model, 2 slots, the 3 smallest ARC-AGI-2 evaluation tasks). CPU.

    python benchmarks/multitask_check.py [--out benchmarks/results/multitask_check.json]

For each model family (Mistral, Qwen2 with q/k/v biases, Qwen3 with q/k norms, and a wider Llama with grouped kv
heads) and K: (1) training: K+2 ARC-AGI-1 training tasks (a seeded draw among those of at most 400 grid cells), each with
its own epochs, lr, seed, schedule and clipping, trained by `train_many` in K slots (continuous batching) against
`train_task` alone: the largest adapter and loss differences, in fp32 and in float64 (where rounding cannot hide a
difference of method), at high learning rates (3e-3 and 1e-2, to make every difference large) and in fp32 again at the
rates arc_nb uses (1e-4, its default, and 3e-4, the small model's): Adam moves a weight by about lr a step whatever its
gradient's size, so a rounding difference in a near-zero gradient can become a difference of up to 2 lr in the
adapter, and the differences scale with lr; each is also given relative to the largest change training made;
(2) searching: a model that memorised one task, K slots of distinct random adapters, items of two tasks over the
slots searched by `predict_tasks` at once against `predict_task` one at a time: the same candidates (grid, found_by)
and scores. Writes one record per (family, K)."""

import argparse, json, platform, tempfile, time
from pathlib import Path

import numpy as np
import torch

from arc_nb.data import load_tasks
from arc_nb.encoding import check_tokenizer
from arc_nb.inference import InferConfig, predict_task, predict_tasks
from arc_nb.model import SlotLoRA, attach_lora, load_base, lora_state, make_tiny_model, reset_lora
from arc_nb.testing import memorize_answers
from arc_nb.ttt import Job, TTTConfig, task_sequences, train_many, train_task

FAMILIES = {  # name: make_tiny_model arguments
    'mistral': dict(family='mistral'),
    'qwen2': dict(family='qwen2'),
    'qwen3': dict(family='qwen3'),
    'llama-gqa': dict(family='llama', hidden=96, heads=6, kv_heads=2, layers=3),
}


def pick_tasks(n, seed):
    tr = load_tasks('arc-agi-1/training')
    small = sorted(k for k, t in tr.items() if sum(g.size for g in t.grids) <= 400)
    rng = np.random.default_rng(seed)
    return [tr[k] for k in rng.choice(small, n, replace=False)]


HIGH, USED = (3e-3, 1e-2), (1e-4, 3e-4)  # learning rates: large, and the ones arc_nb uses


def configs(n, seed, lrs=HIGH):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(
            TTTConfig(
                epochs=int(rng.integers(1, 4)),
                lr=float(rng.choice(lrs)),
                lora_rank=8,
                max_seq_len=4096,
                seed=int(rng.integers(100)),
                schedule=str(rng.choice(['cosine', 'constant'])),
                max_grad_norm=None if i % 3 == 1 else 1.0,
                weight_decay=float(rng.choice([0.0, 0.1])),
            )
        )
    return out


def check_training(path, K, seed, dtype=torch.float32, lrs=HIGH):
    base, tok = load_base(path, device='cpu', dtype='float32')
    model = attach_lora(base.to(dtype), rank=8).to(dtype)  # float64: the same steps without fp32's rounding
    v = check_tokenizer(tok)
    tasks, cfgs = pick_tasks(K + 2, seed), configs(K + 2, seed, lrs)
    alone, moved = {}, 0.0
    for t, c in zip(tasks, cfgs):
        reset_lora(model, c.seed)
        init = {n: x.clone() for n, x in lora_state(model).items()}
        r = train_task(model, v, t, c, reset=False)  # from the state just recorded
        alone[t.id] = (lora_state(model), r.losses)
        moved = max(moved, max((alone[t.id][0][n] - init[n]).abs().max().item() for n in init))
    S, got = SlotLoRA(model, K), {}

    def saved(k, job, r):
        got[job.task_id] = ({n: x.clone() for n, x in S.tensors(k).items()}, r.losses)

    res = train_many(
        model, S, [Job(t.id, task_sequences(v, t, c), c) for t, c in zip(tasks, cfgs)], pad_id=v.eos, on_done=saved
    )
    S.close()
    adapter = max((got[i][0][n] - alone[i][0][n]).abs().max().item() for i in alone for n in alone[i][0])
    loss = max(abs(a - b) for i in alone for a, b in zip(got[i][1], alone[i][1]))
    return dict(
        tasks=[t.id for t in tasks],
        steps=[r.steps for r in res],
        epochs=[c.epochs for c in cfgs],
        lr=[c.lr for c in cfgs],
        adapter_max_abs=adapter,
        update_max_abs=moved,  # the largest change of one adapter weight that training alone made
        adapter_rel=adapter / moved,
        loss_max_abs=loss,
    )


def check_search(path, K, seed):
    m, tok = load_base(path, device='cpu', dtype='float32')
    v = check_tokenizer(tok)
    ev = load_tasks('arc-agi-2/evaluation')
    order = sorted(ev.values(), key=lambda t: sum(g.size for g in t.grids))
    task, task2 = order[0], order[1 + seed % 3]
    memorize_answers(m, v, task)
    m = attach_lora(m, rank=4)
    S = SlotLoRA(m, K)
    with torch.no_grad():
        torch.manual_seed(seed)
        S.weight.normal_(0, 0.03)  # K distinct adapters on the memorised model, small enough to keep some answers
    items = [(task if i % 2 == 0 else task2, i % K) for i in range(K + 1)]
    icfg = InferConfig(n=4, min_prob=0.1, max_seq_len=4096)
    alone = []
    for t, k in items:
        S.to_adapter(k)
        alone.append(predict_task(m, v, t, icfg))
    got = predict_tasks(S, v, items, icfg)
    same, score = True, 0.0
    for a, b in zip(alone, got):
        same &= [(p.index, p.attempts) for p in a] == [(p.index, p.attempts) for p in b]
        for x, y in zip(a, b):
            same &= [(c.grid, c.found_by) for c in x.candidates] == [(c.grid, c.found_by) for c in y.candidates]
            for cx, cy in zip(x.candidates, y.candidates):
                score = max(score, float(np.max(np.abs(np.array(cx.scores) - np.array(cy.scores)), initial=0.0)))
    S.close()
    n_cand = sum(len(p.candidates) for g in got for p in g)
    return dict(
        items=[(t.id, k) for t, k in items],
        candidates=n_cand,
        same_candidates=bool(same),
        score_max_abs=score,
        ok=bool(same) and score <= 1e-4 and n_cand > 0,
    )


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'multitask_check.json'))
    a = ap.parse_args()
    torch.set_num_threads(2)
    recs, t0 = [], time.time()
    with tempfile.TemporaryDirectory() as d:
        for i, (name, kw) in enumerate(FAMILIES.items()):
            path = make_tiny_model(Path(d) / name, seed=i, **kw)
            for K in (3, 5):
                seed = 10 * i + K
                tr, tr64 = check_training(path, K, seed), check_training(path, K, seed, torch.float64)
                tru = check_training(path, K, seed, lrs=USED)
                se = check_search(path, K, seed)
                ok = tr64['adapter_max_abs'] <= 1e-10 and tr['loss_max_abs'] <= 1e-5 and se['ok']
                recs.append(
                    dict(
                        family=name,
                        model=kw,
                        K=K,
                        training=tr,
                        training_fp64=tr64,
                        training_used_lr=tru,
                        search=se,
                        ok=ok,
                        fp32_within_1e5=tr['adapter_max_abs'] <= 1e-5,
                        fp32_used_lr_within_1e5=tru['adapter_max_abs'] <= 1e-5,
                    )
                )
                print(
                    f"{name:10s} K={K}: adapters fp32 {tr['adapter_max_abs']:.1e} ({tr['adapter_rel']:.1e} of the largest "
                    f"change), at lr 1e-4/3e-4 {tru['adapter_max_abs']:.1e} ({tru['adapter_rel']:.1e}), fp64 "
                    f"{tr64['adapter_max_abs']:.1e}, "
                    f"losses {tr['loss_max_abs']:.1e} ({len(tr['tasks'])} tasks, steps {tr['steps']}); search same "
                    f"candidates {se['same_candidates']} ({se['candidates']}), scores {se['score_max_abs']:.1e}  "
                    f"{'ok' if ok else 'FAIL'}",
                    flush=True,
                )
    out = dict(
        issue=22,
        what=__doc__.split('\n\n')[0],
        command='python benchmarks/multitask_check.py',
        device='cpu',
        torch=torch.__version__,
        python=platform.python_version(),
        seconds=round(time.time() - t0, 1),
        all_ok=all(r['ok'] for r in recs),
        fp32_within_1e5=all(r['fp32_within_1e5'] for r in recs),
        fp32_used_lr_within_1e5=all(r['fp32_used_lr_within_1e5'] for r in recs),
        records=recs,
    )
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(
        f"all ok: {out['all_ok']}; fp32 adapters within 1e-5 everywhere: {out['fp32_within_1e5']} at lr 3e-3/1e-2, "
        f"{out['fp32_used_lr_within_1e5']} at lr 1e-4/3e-4 "
        f"({out['seconds']:.0f} s) -> {a.out}"
    )
