"""Issue 22: K tasks trained at once in one model (`train_many` over a `SlotLoRA`) against one task at a time, and what
trains on a 24 GB card. One command, about 5 minutes on an H200 (--budget-s 400 skips what would start later) (the random models are made on the GPU first):

    PYTHONUNBUFFERED=1 python3 benchmarks/multitask.py --models 7b,1b --out $OUT/multitask.json
    python3 benchmarks/multitask.py --smoke --out /tmp/multitask.json     # the same code, tiny model, on a CPU, seconds

Sections (the JSON is written after every row, so a timeout keeps what was done):

`training`, per model (gpu_bench's SHAPES: '7b' a 7.24B Llama/Mistral shape, '1b' a 1.1B TinyLlama shape; random bf16
weights saved under $BENCH_DISK and loaded back through `load_base`; LoRA r32 on all linear layers, fp32 LoRA weights,
`TTTConfig`'s defaults otherwise: gradient checkpointing 'auto', lr 1e-4, cosine, clipping 1.0): the same 16 real
ARC-AGI-2 evaluation tasks (the 16 whose training sequences are nearest the median length, ~1.7K tokens, ordered longest
first as the scheduler orders its work), each for the same number of epochs (chosen once per model from a calibration so
that one task at a time takes about --target-s seconds), trained
  - `train_task`: one task after another, batch size 1 (the obvious alternative; K=1 `way: train_task`);
  - `train_many` with K = 1, 2, 4, 8 slots (continuous batching: a slot whose task ends takes the next one), after a
    one-step warm-up of K rows; plus K in --off-ks with gradient checkpointing 'off' (what the H200's memory allows),
    and K in --mixed-ks with `lora_compute='base'` (the LoRA products in bf16 from the fp32 weights: `lora_compute` in
    the row; at K=1 through `train_many` too, so its speedup is against the same arithmetic).
  Per row: tokens/s (real tokens, padding excluded), MFU (gpu_bench's convention: model FLOPs 4N per token + 6*L*S*d per
  token of a sequence of S tokens, i.e. 4N*tokens + 6*L*d*sum(S^2), over the measured 789 TFLOP/s), peak allocated
  memory (reset before each row), the batched steps, mean rows per step, padding share and checkpointed share of the
  steps (replayed from train_many's slot assignment), `speedup_vs_k1` (tokens/s over train_task's) and
  `speedup_vs_many_k1`. Sanity check, no assertion: the first task's adapter from every train_many row against
  train_task's (`ref_adapter_max_abs_diff`, bf16 base, so not zero; `adapter_check` gives the size of the update itself).

`memory_limit`: a 24 GB card emulated (`torch.cuda.set_per_process_memory_fraction(24 GiB / total)`), one subprocess per
configuration so nothing leaks: the 7b model, `train_many` with K slots (`slots`: 1, one training process) on the first
2K tasks of the set at real lengths, 1 epoch, gradient checkpointing 'on' for K = 1, 2, 4, 8 and the default 'auto'
for K = 1; a warm-up step of each task's longest sequence first (the set's worst step); `fits` is False on an out-of-
memory error (the phase says where). K = 8 is not tried once a smaller K did not fit.
"""
import argparse, contextlib, gc, json, os, platform, subprocess, sys, time
from dataclasses import replace
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))
T0 = time.time()
import numpy as np
import torch
from gpu_bench import SHAPES, CUDA, DEV, clock, log, dtype
from workload import model_folder, child_env
import transformers, peft
from arc_nb.data import load_tasks
from arc_nb.encoding import check_tokenizer
from arc_nb.model import load_base, attach_lora, reset_lora, lora_state, SlotLoRA
from arc_nb.ttt import TTTConfig, task_sequences, train_task, train_many, Job

GIB = 2**30
RANK = 32
CUDNN_SDP = False  # --sdp cudnn

def elapsed(): return time.time() - T0

def base_cfg(**kw):
    "The benchmark's TTT settings: the config's defaults (checkpointing 'auto', fp32 LoRA) at rank 32."
    return TTTConfig(lora_rank=RANK, lora_alpha=RANK, max_seq_len=8192, **kw)

def task_set(data, v, n, band='median'):
    """The n tasks whose training sequences (1 epoch) are nearest the median length of `data` (band 'shortest': the n
    shortest), longest first (the scheduler's order; neighbours in length share a batch with little padding).
    Returns (tasks dict, ids, mean lengths)."""
    ev = load_tasks(data)
    one = base_cfg(epochs=1)
    mean = {k: float(np.mean([len(s) for s in task_sequences(v, t, one)])) for k, t in ev.items()}
    order = sorted(ev, key=lambda k: (mean[k], k))
    lo = max(0, len(order) // 2 - n // 2) if band == 'median' else 0
    ids = sorted(order[lo:lo + n], key=lambda k: (-mean[k], k))
    return ev, ids, {k: mean[k] for k in ids}

def replay(jobs, K, cuda, threshold=4096):
    """train_many's slot assignment replayed from the jobs' sequence lengths (slots take jobs in order whenever free; a
    step trains one sequence of each active job, padded to the longest): steps, rows, padding, checkpointed steps
    ('auto': on when rows * longest > threshold, on CUDA)."""
    q, slots = [list(j) for j in jobs if len(j)], [None] * K
    steps = rows = real = padded = ck = 0
    while True:
        for k in range(K):
            if slots[k] is None and q: slots[k] = [q.pop(0), 0]
        act = [s for s in slots if s is not None]
        if not act: break
        ls = [s[0][s[1]] for s in act]
        steps += 1; rows += len(act); real += sum(ls); padded += len(act) * max(ls); ck += cuda and len(act) * max(ls) > threshold
        for k, s in enumerate(slots):
            if s is not None:
                s[1] += 1
                if s[1] == len(s[0]): slots[k] = None
    return dict(batched_steps=steps, mean_rows=rows / max(steps, 1), padding_frac=1 - real / max(padded, 1),
                auto_checkpointed_steps_frac=ck / max(steps, 1), replay_tokens=real)

def figures(results, seconds, n_params, L, d, peak_tflops):
    "tokens/s and MFU (gpu_bench's convention) of a list of TrainResults that took `seconds`."
    tokens, sq, seqs = sum(r.tokens for r in results), sum(r.tokens_sq for r in results), sum(r.steps for r in results)
    flops = 4 * n_params * tokens + 6 * L * d * sq
    return dict(sequences=seqs, tokens=tokens, seq_len=tokens / max(seqs, 1), seconds=seconds, tokens_per_s=tokens / seconds,
                model_tflops=flops / seconds / 1e12, mfu_pct=100 * flops / seconds / (peak_tflops * 1e12))

def mem_reset():
    gc.collect()
    if CUDA: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()

def peak_gb(): return torch.cuda.max_memory_allocated() / GIB if CUDA else None

def r3(x): return round(x, 3) if isinstance(x, float) else x

@contextlib.contextmanager
def variant(name):
    """A row's variant of today's code, to measure against it in the same process: 'pad_mask' gives padded rows an
    attention mask (`ttt.PAD_MASK`, the code before 2026-12-04); 'sync' makes every host-to-GPU copy of the training
    loop wait for the GPU first (`ttt._to_device` wrapped), as the plain copies and `.item()` calls before 2026-12-04
    did; 'memq' asks the driver for the free memory before every pass ('auto' checkpointing; `ttt.MEMORY_QUERY_S` = 0,
    the code before 2026-12-05; today at most every 5 s); '' today's code."""
    import arc_nb.ttt as ttt
    was_mask, was_copy, was_q = ttt.PAD_MASK, ttt._to_device, ttt.MEMORY_QUERY_S
    if name == 'pad_mask': ttt.PAD_MASK = True
    if name == 'memq': ttt.MEMORY_QUERY_S = 0.0
    if name == 'sync' and CUDA:
        def waiting(t, device):
            torch.cuda.synchronize(); return was_copy(t, device)
        ttt._to_device = waiting
    try: yield
    finally: ttt.PAD_MASK, ttt._to_device, ttt.MEMORY_QUERY_S = was_mask, was_copy, was_q

# ---------------------------------------------------------------------------------------------------------
def bench_training(shape, path, n_params, a, ev, ids, add_row, deadline):
    "Section `training` for one model: train_task one after another, then train_many at each K (see the module doc)."
    t_load, (m, tok) = clock(lambda: load_base(path, device=DEV, dtype=dtype(), cudnn_sdp=CUDNN_SDP))
    m = attach_lora(m, rank=RANK, alpha=RANK, lora_dtype='float32')
    v = check_tokenizer(tok)
    c = m.get_base_model().config
    L, d = c.num_hidden_layers, c.hidden_size
    log(f"  loaded {shape} in {t_load:.1f}s (+LoRA r{RANK}); attention: {getattr(c, '_attn_implementation', '?')}")
    fig = lambda res, t: figures(res, t, n_params, L, d, a.peak_tflops)
    # warm-up (kernels, allocator) and calibration: tokens/s of one task at a time, 1 epoch of two tasks
    one = base_cfg(epochs=1)
    train_task(m, v, ev[ids[-1]], one)
    t_cal, rc = clock(lambda: [train_task(m, v, ev[i], one) for i in ids[:2 if a.max_epochs > 1 else 0]])
    rate = sum(r.tokens for r in rc) / t_cal if rc else float('nan')
    per_epoch = sum(len(s) for i in ids for s in task_sequences(v, ev[i], one))
    epochs = 1 if not rc else int(min(a.max_epochs, max(1, round(a.target_s * rate / per_epoch))))
    cfg = base_cfg(epochs=epochs)
    seqs = {i: task_sequences(v, ev[i], cfg) for i in ids}
    lens = [[len(s) for s in seqs[i]] for i in ids]
    if rc: log(f"  calibration: {rate:,.0f} tokens/s one task at a time; {per_epoch:,} tokens an epoch of {len(ids)} tasks -> "
        f"{epochs} epochs ({sum(map(sum, lens)):,} tokens, {sum(map(len, lens))} sequences, ~{sum(map(sum, lens)) / rate:.0f}s a pass)")
    common = dict(model=shape, tasks=len(ids), epochs=epochs, lora_rank=RANK, lora_dtype='float32')
    # train_task, one task after another: the K=1 baseline; the first task's adapter kept for the sanity check
    ref = ids[0]
    reset_lora(m, cfg.seed); init = {k: x.cpu() for k, x in lora_state(m).items()}  # off the GPU: peaks are the runs'
    mem_reset()
    t_base, res_base, alone = 0.0, [], None
    for i in ids:
        t, r = clock(lambda: train_task(m, v, ev[i], cfg))
        t_base += t; res_base.append(r)
        if i == ref: alone, alone_losses = lora_state(m), r.losses
    base = dict(common, way='train_task', K=1, checkpointing='auto', **fig(res_base, t_base), peak_mem_gb=peak_gb(),
                checkpointed_tasks=sum(r.gradient_checkpointing for r in res_base), **replay(lens, 1, CUDA))
    base['speedup_vs_k1'] = 1.0
    add_row(base)
    update = max((alone[n].cpu() - init[n]).abs().max().item() for n in alone)
    scale = max(x.abs().max().item() for x in alone.values())
    del init
    many_k1, mine = None, []
    plan = [(K, 'auto', 'float32') for K in a.ks] + [(K, 'off', 'float32') for K in a.off_ks]
    plan += [(K, 'auto', 'base') for K in a.mixed_ks]
    plan = [p + ('',) for p in plan] + [(K, 'auto', 'float32', 'pad_mask') for K in a.mask_ks]
    plan += [(K, 'auto', 'float32', 'sync') for K in a.sync_ks]
    plan += [(K, 'auto', 'float32', 'memq') for K in a.memq_ks]
    mixed_k1 = None
    if a.sync_ks:  # train_task too, waiting where the earlier code waited
        with variant('sync'):
            t, res = clock(lambda: [train_task(m, v, ev[i], cfg) for i in ids])
        add_row(dict(common, way='train_task', K=1, checkpointing='auto', variant='sync', **fig(res, t), peak_mem_gb=peak_gb(),
                     speedup_vs_k1=sum(r.tokens for r in res) / t / base['tokens_per_s']))
    for K, ck, comp, var in plan:
        if time.time() > deadline:
            add_row(dict(common, way='train_many', K=K, checkpointing=ck, variant=var, skipped='time budget')); continue
        kcfg = replace(cfg, gradient_checkpointing=ck, lora_compute=comp)
        S = SlotLoRA(m, K, compute=comp)
        got = {}
        def on_done(k, job, r):  # the reference task's slot against train_task's adapter (on the device, no sync)
            if job.task_id == ref:
                t = S.tensors(k)
                got['diff'] = torch.stack([(t[n] - alone[n]).abs().max() for n in alone]).max()
        row = dict(common, way='train_many', K=K, checkpointing=ck, lora_compute=comp, variant=var)
        try:
            mem_reset()
            with variant(var):
                train_many(m, S, [Job(i, [max(seqs[i], key=len)], kcfg) for i in ids[:K]], pad_id=v.eos)  # warm-up: one step of K rows
                mem_reset()
                t, res = clock(lambda: train_many(m, S, [Job(i, seqs[i], kcfg) for i in ids], pad_id=v.eos, on_done=on_done))
            row.update(fig(res, t), peak_mem_gb=peak_gb(), **replay(lens, K, False))
            row.pop('auto_checkpointed_steps_frac')  # the replay's 4096-token rule is not train_many's (memory-based): what happened instead
            row['checkpointed_tasks'] = sum(r.gradient_checkpointing for r in res)
            row['replay_matches'] = row.pop('replay_tokens') == row['tokens']
            rm = next(r for r in res if r.task == ref)
            row.update(ref_adapter_max_abs_diff=got['diff'].item() if 'diff' in got else None,
                       ref_loss_max_abs_diff=max(abs(x - y) for x, y in zip(rm.losses, alone_losses)))
            row['speedup_vs_k1'] = row['tokens_per_s'] / base['tokens_per_s']
            if K == 1 and ck == 'auto' and comp == 'float32' and not var: many_k1 = row['tokens_per_s']
            if K == 1 and comp == 'base' and not var: mixed_k1 = row['tokens_per_s']
            row['speedup_vs_many_k1'] = row['tokens_per_s'] / many_k1 if many_k1 else None
            if comp == 'base': row['speedup_vs_mixed_k1'] = row['tokens_per_s'] / mixed_k1 if mixed_k1 else None
        except torch.OutOfMemoryError as e:
            row.update(oom=True, error=str(e)[:300], peak_mem_gb=peak_gb())
            m.zero_grad(set_to_none=True); S.weight.grad = None
        finally:
            S.close(); S = on_done = None  # the slots and their closure go
            mem_reset()
        add_row(row); mine.append(row)
    check = dict(task=ref, max_abs_diff={f"K={r['K']},{r['checkpointing']}": r.get('ref_adapter_max_abs_diff') for r in mine},
                 update_max_abs=update, adapter_max_abs=scale,
                 note='max |train_many slot - train_task adapter| over all LoRA tensors of the first task; bf16 base, so '
                      'rounding differs (padding, batch shape, checkpointing, the loss computed row by row); '
                      'update_max_abs: max |adapter after training - adapter at reset|, the size of what training changed')
    m = alone = None; mem_reset()
    return dict(load_s=t_load, calibration_tokens_per_s=rate, epochs=epochs, tasks=ids, adapter_check=check)

# ---------------------------------------------------------------------------------------------------------
def child(spec):
    "One memory_limit configuration, in its own process: prints `RESULT {json}`."
    out = dict(slots=1, K=spec['K'], checkpointing=spec['checkpointing'], limit_gib=spec['limit_gib'], fits=False, phase='start')
    t0 = time.time()
    try:
        if CUDA:
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, spec['limit_gib'] * GIB / total), 0)
            out['fraction'] = spec['limit_gib'] * GIB / total
        out['phase'] = 'load'
        m, tok = load_base(spec['path'], device=DEV, dtype=dtype())
        m = attach_lora(m, rank=RANK, alpha=RANK, lora_dtype='float32')
        v = check_tokenizer(tok)
        out['load_s'] = time.time() - t0
        out['phase'] = 'slots'
        K = spec['K']
        S = SlotLoRA(m, K)
        ev = load_tasks(spec['data'])
        cfg = base_cfg(epochs=1, gradient_checkpointing=spec['checkpointing'])
        ids = spec['tasks'][:2 * K]
        seqs = {i: task_sequences(v, ev[i], cfg) for i in ids}
        out['phase'] = 'warm-up'
        longest = [max(seqs[i], key=len) for i in ids[:K]]
        out['warmup_tokens_per_row'] = max(len(s) for s in longest)
        train_many(m, S, [Job(i, [s], cfg) for i, s in zip(ids, longest)], pad_id=v.eos)
        out['phase'] = 'run'
        if CUDA: torch.cuda.synchronize()
        t, res = clock(lambda: train_many(m, S, [Job(i, seqs[i], cfg) for i in ids], pad_id=v.eos))
        cf = m.get_base_model().config
        out.update(figures(res, t, spec['n_params'], cf.num_hidden_layers, cf.hidden_size, spec['peak_tflops']),
                   tasks_trained=len(res), fits=True, phase='done')
    except torch.OutOfMemoryError as e:
        out['error'] = str(e)[:400]
    if CUDA:
        out.update(peak_mem_gb=torch.cuda.max_memory_allocated() / GIB, peak_reserved_gb=torch.cuda.max_memory_reserved() / GIB)
    if 'S' in locals():  # weight, gradient and the two AdamW moments of one slot
        out['lora_state_gb_per_slot'] = 4 * S.weight[0].numel() * S.weight.element_size() / GIB
    out['tasks_per_gpu_hour'] = None  # filled in later from a scheduled run under the same limit (not measured here)
    out['process_s'] = time.time() - t0
    print('RESULT ' + json.dumps(out), flush=True)

def bench_memory(path, n_params, a, ids, add_row, deadline):
    "Section `memory_limit`: one subprocess per configuration (see the module doc)."
    confs = [(K, 'on') for K in a.mem_ks] + [(1, 'auto')] * a.mem_auto  # 'auto': the default, off up to 4096 tokens
    failed_k = None
    for K, ck in confs:
        row = dict(slots=1, K=K, checkpointing=ck, limit_gib=a.limit_gib, tasks_per_gpu_hour=None)
        left = deadline - time.time()
        if failed_k is not None and ck == 'on' and K > failed_k:
            add_row(dict(row, fits=False, skipped=f'K={failed_k} did not fit')); continue
        if left < 30:
            add_row(dict(row, fits=None, skipped='time budget')); continue
        spec = dict(path=str(path), K=K, checkpointing=ck, limit_gib=a.limit_gib, tasks=ids, data=a.data, n_params=n_params,
                    peak_tflops=a.peak_tflops)
        cmd = [sys.executable, str(Path(__file__).resolve()), '--child', json.dumps(spec), '--out', os.devnull]
        t = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=min(150, left - 5))
            got = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
            if got: row.update(json.loads(got[-1][len('RESULT '):]))
            else: row.update(fits=None, error=f'exit {p.returncode}: ' + p.stderr[-1500:])
        except subprocess.TimeoutExpired:
            row.update(fits=None, error='timed out')
        row['wall_s'] = time.time() - t
        if row.get('fits') is False and ck == 'on': failed_k = K if failed_k is None else min(failed_k, K)
        add_row(row)

# ---------------------------------------------------------------------------------------------------------
def table(rows):
    "The markdown table of the training rows."
    f = lambda x, p=1: '-' if x is None else f'{x:,.{p}f}'
    out = ['| model | way | K | ckpt | seq_len | tokens/s | MFU % | peak GB | speedup vs K=1 | adapter diff |',
           '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        if 'tokens_per_s' not in r:
            out.append(f"| {r['model']} | {r['way']} | {r['K']} | {r['checkpointing']} | {'OOM' if r.get('oom') else r.get('skipped', '')} | | | {f(r.get('peak_mem_gb'))} | | |")
            continue
        dd = r.get('ref_adapter_max_abs_diff')
        way = r['way'] + (' (mixed)' if r.get('lora_compute') == 'base' else '')
        out.append(f"| {r['model']} | {way} | {r['K']} | {r['checkpointing']} | {r['seq_len']:,.0f} | {r['tokens_per_s']:,.0f} | "
                   f"{f(r['mfu_pct'])} | {f(r['peak_mem_gb'])} | {r['speedup_vs_k1']:.2f}x | {'-' if dd is None else f'{dd:.1e}'} |")
    return '\n'.join(out)

def mem_table(rows):
    f = lambda x, p=1: '-' if x is None else f'{x:,.{p}f}'
    out = ['| slots | K | ckpt | fits | phase | seq_len | tokens/s | peak GB (allocated) |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        out.append(f"| {r['slots']} | {r['K']} | {r['checkpointing']} | {r.get('fits')} | {r.get('phase', r.get('skipped', ''))} | "
                   f"{f(r.get('seq_len'), 0)} | {f(r.get('tokens_per_s'), 0)} | {f(r.get('peak_mem_gb'))} |")
    return '\n'.join(out)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True)
    ap.add_argument('--models', default='7b,1b')
    ap.add_argument('--sections', default='training,memory_limit')
    ap.add_argument('--smoke', action='store_true', help="the 'smoke' shape and tiny counts, on the CPU")
    ap.add_argument('--data', default='arc-agi-2/evaluation')
    ap.add_argument('--tasks', type=int, default=16, help='tasks in the set')
    ap.add_argument('--band', default='median', choices=['median', 'shortest'], help='which tasks: nearest the median length, or the shortest')
    ap.add_argument('--ks', default='1,2,4,8'); ap.add_argument('--off-ks', default='4', help="train_many rows with checkpointing 'off' too ('' for none)")
    ap.add_argument('--sdp', default='', help="'cudnn': attention's cuDNN backend on (load_base switches it off)")
    ap.add_argument('--mask-ks', default='', help="train_many rows with an attention mask on padded rows (the earlier way)")
    ap.add_argument('--sync-ks', default='', help="train_many rows (and a train_task row) that wait for the GPU before every host-to-GPU copy (the earlier way)")
    ap.add_argument('--memq-ks', default='', help="train_many rows that ask the driver for free memory before every pass (the earlier way)")
    ap.add_argument('--mixed-ks', default='', help="train_many rows with lora_compute 'base' too (start with 1: their K=1)")
    ap.add_argument('--mem-ks', default='1,2,4,8'); ap.add_argument('--limit-gib', type=float, default=24.0)
    ap.add_argument('--target-s', type=float, default=12.0, help='seconds one task at a time should take (sets the epochs)')
    ap.add_argument('--max-epochs', type=int, default=10)
    ap.add_argument('--budget-s', type=float, default=400.0, help='the whole run; later work is skipped past it')
    ap.add_argument('--peak-tflops', type=float, default=789.0, help='measured dense bf16 matmul rate of the H200')
    ap.add_argument('--child', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child(json.loads(a.child))
    global CUDNN_SDP
    CUDNN_SDP = a.sdp == 'cudnn'
    ints = lambda s: [int(x) for x in s.split(',') if x]
    a.ks, a.off_ks, a.mem_ks, a.mixed_ks = ints(a.ks), ints(a.off_ks), ints(a.mem_ks), ints(a.mixed_ks)
    a.mask_ks, a.sync_ks, a.memq_ks = ints(a.mask_ks), ints(a.sync_ks), ints(a.memq_ks)
    a.mem_auto = not a.smoke
    if a.smoke:  # every code path once, on the shortest tasks; one thread (a shared CPU makes spinning threads crawl)
        torch.set_num_threads(1); os.environ['OMP_NUM_THREADS'] = '1'
        a.models, a.tasks, a.band, a.max_epochs, a.ks, a.off_ks, a.mem_ks = 'smoke', 4, 'shortest', 1, [1, 2, 4], [2], [1, 2]
        a.mixed_ks = [1, 2]; a.mask_ks, a.sync_ks, a.memq_ks = [2], [2], [2]
    models, secs = a.models.split(','), a.sections.split(',')
    deadline = T0 + a.budget_s
    res = dict(info=dict(date=time.strftime('%Y-%m-%d %H:%M:%S'), gpu=torch.cuda.get_device_name(0) if CUDA else platform.processor() or 'cpu',
                         torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
                         python=platform.python_version(), command=' '.join(sys.argv), smoke=a.smoke, data=a.data,
                         peak_tflops=a.peak_tflops, flops_per_token='4N + 6*L*S*d (N: base parameters, L layers, S sequence length, d width)'),
               models={}, training=[], memory_limit=[])
    def save():
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1, default=str))
    def add(key):
        def f(row):
            res[key].append(row); save()
            log(f"  [{elapsed():.0f}s]", {k: r3(x) for k, x in row.items() if k not in ('error',)} | ({'error': row['error'][-300:]} if 'error' in row else {}))
        return f
    from arc_nb.encoding import make_compact_tokenizer
    tok_v = check_tokenizer(make_compact_tokenizer())  # the tokenizer the random models are saved with
    ev, ids, mean = task_set(a.data, tok_v, a.tasks, a.band)
    res['info'].update(tasks=ids, task_mean_seq_len={k: round(x) for k, x in mean.items()})
    log(f"[{elapsed():.0f}s] tasks (longest first): {', '.join(f'{k} ({mean[k]:.0f})' for k in ids)}")
    def model(shape):
        if shape not in res['models']:
            t, (path, made) = clock(lambda: model_folder(shape))
            from transformers import AutoConfig
            cfg = AutoConfig.from_pretrained(path)
            res['models'][shape] = dict(path=str(path), made_s=made, shape=SHAPES[shape], n_params=param_count(cfg))
            log(f"[{elapsed():.0f}s] model {shape}: {res['models'][shape]['n_params']/1e9:.2f}B parameters at {path} ({'made in %.1fs' % made if made else 'reused'})")
            save()
        m = res['models'][shape]
        return Path(m['path']), m['n_params']
    try:
        # 7b first, then the 24 GB emulation (the 7b files are in the page cache), then the other models
        order = sorted(models, key=lambda s: s != models[0])
        for i, shape in enumerate(order):
            if 'training' in secs:
                if time.time() > deadline: log(f'skipped training {shape}: time budget'); continue
                log(f"== training, {shape} [{elapsed():.0f}s]")
                path, n = model(shape)
                res['models'][shape]['training'] = bench_training(shape, path, n, a, ev, ids, add('training'), deadline); save()
            if i == 0 and 'memory_limit' in secs:
                mshape = 'smoke' if a.smoke else '7b'
                log(f"== memory_limit: {a.limit_gib:g} GiB, {mshape} [{elapsed():.0f}s]")
                path, n = model(mshape)
                bench_memory(path, n, a, ids, add('memory_limit'), deadline)
                res['memory_limit_note'] = ('tasks_per_gpu_hour: null here; to be filled from a scheduled run under the same limit. '
                                            'limit_gib is GiB of torch allocations (an L4 shows ~22 GiB to a process)')
                save()
    finally:
        res['info']['wall_s'] = elapsed(); save()
    log(f"\n## multitask training ({res['info']['gpu']}, {elapsed():.0f}s)\n")
    log(table(res['training']))
    if res['memory_limit']:
        log(f"\n## memory limit {a.limit_gib:g} GiB\n"); log(mem_table(res['memory_limit']))

def param_count(cfg):
    "Parameters of a Llama of this config (untied head), counted without building it."
    d, L, f, V = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, cfg.vocab_size
    hd = d // cfg.num_attention_heads
    att = d * d * 2 + 2 * d * cfg.num_key_value_heads * hd
    return V * d * 2 + L * (att + 3 * d * f + 2 * d) + d

if __name__ == '__main__':
    main()
