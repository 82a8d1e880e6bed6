"""Issue 22: where a `train_many` step's time goes, at K = 1 and K = 8, against the floor of the same model without LoRA.
One command, about 3 minutes on an H200 per model (the random model is made on the GPU first):

    PYTHONUNBUFFERED=1 python3 benchmarks/train_profile.py --models 1b --out $OUT/train_profile.json
    python3 benchmarks/train_profile.py --smoke --out /tmp/train_profile.json     # the same code, tiny model, CPU

Every variant trains the same rows: sequences of real ARC-AGI-2 evaluation tasks (1 epoch, `TTTConfig`'s encoding), each
cut to --seq-len tokens (so no row is padded and K=1 and K=8 do the same work per row; `natural` variants keep the
real lengths, padded to the longest of a step), --steps steps of K rows after one warm-up step, timed with a
synchronisation at both ends. Variants (`--variants`, comma-separated; K from --ks):
  - `floor`: the base model without LoRA, its input embeddings requiring a gradient (the same forward and input-gradient
    backward, no LoRA product, no optimizer): what the step would cost if LoRA were free;
  - `fp32`: `train_many` over a `SlotLoRA`, fp32 LoRA weights (the default), as the scheduler runs it;
  - `noshare`: the same with a cast of the input per LoRA layer (`SlotLoRA.share_casts = False`, arc_nb before);
  - `tf32`: `fp32` with TF32 matmuls allowed (`torch.backends.cuda.matmul.allow_tf32`);
  - `mixed`: `lora_compute='base'`: the products in bf16 from the fp32 weights (a bf16 copy of the slots);
  - `bf16`: LoRA weights in the base dtype (`lora_dtype='base'`: bf16 weights and AdamW state);
  - `natural`, `natural_mixed`: `fp32` and `mixed` at the tasks' real lengths (right padding, attention mask).
Per variant and K: step seconds, tokens/s, MFU (multitask.py's convention), peak memory. With --profile, one more step
of each profiled variant under `torch.profiler`: GPU kernel time against the step's wall time, kernel launches, and the
kernels grouped (matmul, attention, elementwise and copies, reductions and norms, other) with the top 12 by time.
"""
import argparse, gc, json, platform, sys, time
from dataclasses import replace
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))
T0 = time.time()
import torch
from gpu_bench import CUDA, DEV, clock, log, dtype
from workload import model_folder
from multitask import task_set, figures, param_count, base_cfg, mem_reset, peak_gb, RANK
import transformers, peft
from arc_nb.encoding import check_tokenizer, make_compact_tokenizer, Encoded
from arc_nb.model import load_base, attach_lora, SlotLoRA
from arc_nb.ttt import task_sequences, train_many, Job, IGNORE

def elapsed(): return time.time() - T0

def rows_for(ev, ids, v, seq_len, natural):
    "Per task, its 1-epoch sequences; cut to seq_len tokens (those at least that long) unless natural."
    cfg = base_cfg(epochs=1)
    out = {}
    for i in ids:
        ss = task_sequences(v, ev[i], cfg)
        if not natural:
            ss = [Encoded(s.input_ids[:seq_len].copy(), s.labels[:seq_len].copy(), min(s.prompt_len, seq_len)) for s in ss if len(s) >= seq_len]
        if ss: out[i] = ss
    return out

def jobs_for(seqs, K, steps, cfg):
    "K jobs of `steps` sequences each (tasks and their sequences reused in turn when there are too few)."
    pool = [s for i in seqs for s in seqs[i]]
    return [Job(f'job{k}', [pool[(k * steps + j) % len(pool)] for j in range(steps)], cfg) for k in range(K)]

def floor_steps(model, jobs, pad):
    "The floor: each step's rows through the base model without LoRA, input embeddings requiring a gradient."
    from arc_nb.ttt import _pad_right
    base = model.get_base_model()
    res = []
    with model.disable_adapter():
        model.train()
        for j in range(len(jobs[0].seqs)):
            seqs = [jb.seqs[j] for jb in jobs]
            ids, lab, att = _pad_right(seqs, pad, model.device)
            emb = base.model.embed_tokens(ids).detach().requires_grad_()
            h = base.model(inputs_embeds=emb, attention_mask=att, use_cache=False).last_hidden_state
            tgt = lab[:, 1:]; keep = tgt != IGNORE
            loss = torch.nn.functional.cross_entropy(base.lm_head(h[:, :-1][keep]).float(), tgt[keep])
            loss.backward()
            res.append(sum(len(s) for s in seqs))
        model.eval()
    return res

def group(name):
    n = name.lower()
    if any(x in n for x in ('gemm', 'nvjet', 'cutlass', 'cublas', 'splitk', 'xmma', 'sm90_')): return 'matmul'
    if any(x in n for x in ('flash', 'fmha', 'attention', 'softmax')): return 'attention'
    if any(x in n for x in ('reduce', 'norm', 'sum', 'mean')): return 'reduction/norm'
    if any(x in n for x in ('elementwise', 'copy', 'cat', 'index', 'fill', 'where', 'mul', 'add', 'silu', 'sigmoid')): return 'elementwise/copy'
    return 'other'

def profiled(fn):
    "Run fn once under torch.profiler: wall, GPU kernel time, launches, kernels grouped and the top 12."
    from torch.profiler import profile, ProfilerActivity
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if CUDA else [])
    if CUDA: torch.cuda.synchronize()
    with profile(activities=acts) as prof:
        t = time.perf_counter(); fn()
        if CUDA: torch.cuda.synchronize()
        wall = time.perf_counter() - t
    kern, groups, launches = {}, {}, 0
    for e in prof.events():
        if CUDA and e.device_type.name == 'CUDA':
            us = e.time_range.elapsed_us()
            kern.setdefault(e.name, [0, 0.0]); kern[e.name][0] += 1; kern[e.name][1] += us / 1e3
        if e.name in ('cudaLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernel', 'cuLaunchKernelEx'): launches += 1
    for k, (c, ms) in kern.items(): groups[group(k)] = groups.get(group(k), 0.0) + ms
    gpu_ms = sum(ms for _, ms in kern.values())
    top = sorted(kern.items(), key=lambda kv: -kv[1][1])[:12]
    return dict(wall_ms=wall * 1e3, gpu_kernel_ms=gpu_ms, gpu_busy_frac=gpu_ms / 1e3 / wall if wall else None, launches=launches,
                kernels=sum(c for c, _ in kern.values()),
                groups_ms={k: round(v, 2) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
                top=[dict(name=k[:140], count=c, ms=round(ms, 2)) for k, (c, ms) in top],
                cpu_top=[dict(name=e.key[:80], count=e.count, self_cpu_ms=round(e.self_cpu_time_total / 1e3, 2))
                         for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]])

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True)
    ap.add_argument('--models', default='1b')
    ap.add_argument('--variants', default='floor,noshare,fp32,mixed,bf16,natural,natural_mixed')
    ap.add_argument('--ks', default='1,8')
    ap.add_argument('--profile', default='floor,noshare,fp32,mixed', help='variants also profiled (one step each, at every K)')
    ap.add_argument('--steps', type=int, default=6)
    ap.add_argument('--seq-len', type=int, default=1700)
    ap.add_argument('--data', default='arc-agi-2/evaluation')
    ap.add_argument('--tasks', type=int, default=24)
    ap.add_argument('--peak-tflops', type=float, default=789.0)
    ap.add_argument('--smoke', action='store_true')
    a = ap.parse_args()
    if a.smoke:
        torch.set_num_threads(1)
        a.models, a.steps, a.seq_len, a.tasks, a.ks = 'smoke', 2, 200, 8, '1,2'
    ks, variants, prof = [int(k) for k in a.ks.split(',')], a.variants.split(','), set(a.profile.split(','))
    res = dict(info=dict(date=time.strftime('%Y-%m-%d %H:%M:%S'), gpu=torch.cuda.get_device_name(0) if CUDA else platform.processor() or 'cpu',
                         torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
                         command=' '.join(sys.argv), steps=a.steps, seq_len=a.seq_len, lora_rank=RANK), rows=[])
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    save = lambda: out.write_text(json.dumps(res, indent=1, default=str))
    v = check_tokenizer(make_compact_tokenizer())
    ev, ids, _ = task_set(a.data, v, a.tasks, 'median')
    for shape in a.models.split(','):
        path, made = model_folder(shape)
        m, tok = load_base(path, device=DEV, dtype=dtype())
        c = m.config
        n_params, L, d = param_count(c), c.num_hidden_layers, c.hidden_size
        log(f"[{elapsed():.0f}s] {shape}: {n_params/1e9:.2f}B, attention {getattr(c, '_attn_implementation', '?')}")
        m = attach_lora(m, rank=RANK, alpha=RANK, lora_dtype='float32')
        for var in variants:
            natural = var.startswith('natural')
            comp = 'base' if var in ('mixed', 'natural_mixed') else 'float32'
            seqs = rows_for(ev, ids, v, a.seq_len, natural)
            want = m.get_base_model().dtype if var == 'bf16' else torch.float32  # SlotLoRA takes the LoRA weights' dtype
            for n_, p in m.named_parameters():
                if 'lora_' in n_: p.data = p.data.to(want)
            for K in ks:
                cfg = base_cfg(epochs=1, lora_compute=comp)
                jobs = jobs_for(seqs, K, a.steps, cfg)
                if natural: jobs = [replace(j, seqs=sorted(j.seqs, key=len, reverse=True)) for j in jobs]
                torch.backends.cuda.matmul.allow_tf32 = var == 'tf32'
                row = dict(model=shape, variant=var, K=K)
                S = None
                try:
                    mem_reset()
                    if var == 'floor':
                        run = lambda js: floor_steps(m, js, v.eos)
                    else:
                        S = SlotLoRA(m, K, compute=comp)
                        S.share_casts = var != 'noshare'
                        run = lambda js: train_many(m, S, js, pad_id=v.eos)
                    run([replace(j, seqs=j.seqs[:1]) for j in jobs])  # warm-up step
                    mem_reset()
                    t, r = clock(lambda: run(jobs))
                    if var == 'floor':
                        tokens, sq = sum(r), sum(len(s) ** 2 for j in jobs for s in j.seqs)
                        flops = 4 * n_params * tokens + 6 * L * d * sq
                        fig = dict(tokens=tokens, seconds=t, tokens_per_s=tokens / t, model_tflops=flops / t / 1e12,
                                   mfu_pct=100 * flops / t / (a.peak_tflops * 1e12))
                    else:
                        fig = figures(r, t, n_params, L, d, a.peak_tflops)
                        fig['checkpointed_tasks'] = sum(x.gradient_checkpointing for x in r)
                    row.update(fig, step_ms=1e3 * t / a.steps, peak_mem_gb=peak_gb())
                    if var in prof:
                        row['profile'] = profiled(lambda: run([replace(j, seqs=j.seqs[:1]) for j in jobs]))
                except torch.OutOfMemoryError as e:
                    row.update(oom=True, error=str(e)[:200])
                finally:
                    if S is not None: S.close()
                    S = None; m.zero_grad(set_to_none=True); gc.collect()
                res['rows'].append(row); save()
                p = row.get('profile', {})
                log(f"[{elapsed():.0f}s] {shape} {var:8s} K={K}: step {row.get('step_ms', 0):8.1f} ms, {row.get('tokens_per_s', 0):9,.0f} tok/s, "
                    f"MFU {row.get('mfu_pct', 0):5.1f}%, peak {row.get('peak_mem_gb') or 0:.1f} GB, ckpt {row.get('checkpointed_tasks')}"
                    + (f" | GPU busy {p['gpu_busy_frac']:.0%}, {p['kernels']} kernels, {p['groups_ms']}" if p else ''))
                for tp in p.get('top', [])[:8]: log(f"      {tp['ms']:8.2f} ms {tp['count']:6d}x {tp['name'][:100]}")
        torch.backends.cuda.matmul.allow_tf32 = False
        m = None; mem_reset()
    res['info']['seconds'] = elapsed(); save()

if __name__ == '__main__':
    main()
