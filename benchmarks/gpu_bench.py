"""GPU benchmarks of arc_nb's engine against the obvious alternatives, in one run.

    python benchmarks/gpu_bench.py --sections overhead,throughput,dfs --model 7b --out $OUT/engine.json
    python benchmarks/gpu_bench.py --sections scheduled --model 1b --out $OUT/scheduled.json
    python benchmarks/gpu_bench.py --smoke ...        # the same code on a tiny model, on the CPU, in seconds

Models have random weights made on the spot (nothing can be downloaded), saved with save_pretrained to local
disk and loaded back through arc_nb.model.load_base, like any model folder. See benchmarks/README.md.
"""
import argparse, json, math, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import numpy as np
import torch
import transformers
transformers.utils.logging.disable_progress_bar()
from transformers import LlamaConfig, LlamaForCausalLM
import peft
from arc_nb.data import load_tasks
from arc_nb.encoding import make_compact_tokenizer, check_tokenizer, encode_prompt, Encoded, IGNORE, output_tokens, task_tokens
from arc_nb.model import load_base, attach_lora, reset_lora, save_adapter, load_adapter_weights, lora_state
from arc_nb.ttt import TTTConfig, train_task, train_sequences
from arc_nb.search import dfs_sample, dfs_recursive
from arc_nb.inference import InferConfig, task_views, view_prompt
from arc_nb.testing import peaked
from arc_nb.scheduler import COUNT_VOCAB

SHAPES = {  # Llama/Mistral-shaped
    '7b': dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336, vocab_size=32000),
    '1b': dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4, intermediate_size=5632, vocab_size=32000),
    'smoke': dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, vocab_size=32000),
}
CUDA = torch.cuda.is_available()
DEV = 'cuda' if CUDA else 'cpu'

def sync():
    if CUDA: torch.cuda.synchronize()

def clock(fn):
    sync(); t = time.perf_counter(); r = fn(); sync(); return time.perf_counter() - t, r

def log(*a): print(*a, flush=True)

def random_llama(shape):
    "(model, tokenizer, params): random weights of a SHAPES shape, made on the device in bf16 (fp32 on the CPU)."
    tok = make_compact_tokenizer()
    cfg = LlamaConfig(**SHAPES[shape], max_position_embeddings=16384, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=False, rope_theta=1e6)
    torch.manual_seed(0)
    with torch.device(DEV): m = LlamaForCausalLM(cfg)
    if CUDA: m = m.to(torch.bfloat16)
    return m, tok, sum(p.numel() for p in m.parameters())

def make_model(shape, path):
    "Random weights (`random_llama`), saved with save_pretrained; returns (path, params)."
    m, tok, n = random_llama(shape)
    m.save_pretrained(path, max_shard_size='4GB'); tok.save_pretrained(path)
    del m; torch.cuda.empty_cache() if CUDA else None
    return path, n

def dtype(): return 'bfloat16' if CUDA else 'float32'

def real_tasks():
    ev = load_tasks('arc-agi-2/evaluation')
    return ev, sorted(ev, key=lambda k: task_tokens(COUNT_VOCAB, ev[k]))

# ---------------------------------------------------------------------------------------------------------
def bench_overhead(path, reps):
    "arc_nb's per-task overhead (reset, save, hot-load into a resident inference model) against reloading per task."
    from arc_nb.model import AdapterWriter
    ev, order = real_tasks()
    task = ev[order[len(order) // 3]]
    d = Path(tempfile.mkdtemp(dir=os.environ.get('BENCH_DISK', None)))
    out = {}
    for lora_dtype in ('float32', 'base'):
        t_load, (m, tok) = clock(lambda: load_base(path, device=DEV, dtype=dtype()))
        t_attach, m = clock(lambda: attach_lora(m, rank=32, alpha=32, lora_dtype=lora_dtype))
        inf, _ = load_base(path, device=DEV, dtype=dtype()); inf = attach_lora(inf, rank=32, alpha=32, lora_dtype=lora_dtype)
        v = check_tokenizer(tok)
        cfg = TTTConfig(epochs=1, lora_rank=32, max_seq_len=8192, gradient_checkpointing='off')
        w, rows = AdapterWriter(), []
        for i in range(reps):
            t_reset, _ = clock(lambda: reset_lora(m, i))
            t_train, r = clock(lambda: train_task(m, v, task, cfg, reset=False))
            t_sync, _ = clock(lambda: save_adapter(m, d/f'{lora_dtype}-sync{i}'))          # peft files, waited for
            t_bg, _ = clock(lambda: w.save(m, d/f'{lora_dtype}-{i}'))                       # what the worker waits for
            t_done, _ = clock(w.wait)                                                      # the rest, in the background
            t_hot, _ = clock(lambda: load_adapter_weights(inf, d/f'{lora_dtype}-{i}'))
            rows.append(dict(reset_s=t_reset, train_s=t_train, train_steps=r.steps, save_sync_s=t_sync, save_visible_s=t_bg,
                             save_background_s=t_done, hot_load_s=t_hot))
            log(f"  [{lora_dtype}] task {i}: reset {t_reset*1e3:.1f} ms, save {t_sync*1e3:.0f} ms (background: {t_bg*1e3:.0f} ms visible + {t_done*1e3:.0f} ms), hot-load {t_hot*1e3:.0f} ms")
        size = sum(f.stat().st_size for f in (d/f'{lora_dtype}-0').iterdir())
        same = all(torch.equal(a, b) for a, b in zip(lora_state(m).values(), lora_state(inf).values()))
        med = lambda k: float(np.median([r[k] for r in rows]))
        out[lora_dtype] = dict(load_once_s=t_load, attach_once_s=t_attach, adapter_bytes=size, hot_load_exact=same, rows=rows,
                               per_task_overhead_split_s=med('reset_s') + med('save_visible_s') + med('hot_load_s'),
                               per_task_overhead_split_sync_save_s=med('reset_s') + med('save_sync_s') + med('hot_load_s'),
                               per_task_overhead_fused_s=med('reset_s'))
        del m, inf
        if CUDA: torch.cuda.empty_cache()
    reload = []
    from transformers import AutoModelForCausalLM
    from peft import PeftModel, LoraConfig, get_peft_model
    for i in range(2):
        def infer_side():
            b = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype()), local_files_only=True, device_map=DEV)
            return PeftModel.from_pretrained(b, d/f'float32-{i % reps}')
        t_inf, pm = clock(infer_side); del pm
        def train_side():
            b = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype()), local_files_only=True, device_map=DEV)
            return get_peft_model(b, LoraConfig(r=32, lora_alpha=32, target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']))
        t_tr, pm = clock(train_side); del pm
        if CUDA: torch.cuda.empty_cache()
        reload.append(dict(reload_train_side_s=t_tr, reload_infer_side_s=t_inf))
        log(f"  reload {i}: base + attach LoRA {t_tr:.2f}s, base + PeftModel.from_pretrained {t_inf:.2f}s")
    theirs = float(np.median([r['reload_train_side_s'] + r['reload_infer_side_s'] for r in reload]))
    for k, o in out.items():
        o['ratio_reload_over_split'] = theirs / o['per_task_overhead_split_s']; o['ratio_reload_over_fused'] = theirs / o['per_task_overhead_fused_s']
    shutil.rmtree(d, ignore_errors=True)
    return dict(task=task.id, variants=out, reload=reload, per_task_overhead_reload_s=theirs)

# ---------------------------------------------------------------------------------------------------------
def synthetic(n, v, out_frac=0.25, seed=0):
    "A training sequence of exactly n tokens of grid ids, the loss on its last quarter (like an output grid)."
    rng = np.random.default_rng(seed)
    ids = np.asarray(v.cells)[rng.integers(0, 10, n)]
    lab = np.full(n, IGNORE); k = int(n * (1 - out_frac)); lab[k:] = ids[k:]
    return Encoded(ids, lab, k)

def bench_throughput(path, lengths, steps, n_params, peak_tflops):
    "Training tokens/s at batch size 1, checkpointing on and off, with the engine's train_sequences."
    rows = []
    for lora_dtype in ('float32', 'base'):
      m, tok = load_base(path, device=DEV, dtype=dtype()); m = attach_lora(m, rank=32, alpha=32, lora_dtype=lora_dtype); v = check_tokenizer(tok)
      c = m.config
      L, d = c.num_hidden_layers, c.hidden_size
      for S in lengths:
        for ck in (('on', 'off') if lora_dtype == 'float32' else ('off',)):
            cfg = TTTConfig(lora_rank=32, max_seq_len=S, gradient_checkpointing=ck, lr=1e-4)
            try:
                if CUDA: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
                train_sequences(m, [synthetic(S, v, seed=i) for i in range(2)], cfg)  # warm-up
                t, r = clock(lambda: train_sequences(m, [synthetic(S, v, seed=10 + i) for i in range(steps)], cfg))
                tps = r.tokens / t
                flops_tok = 4 * n_params + 6 * L * S * d  # LoRA: fwd 2N + input-grad bwd 2N (no weight grads of frozen W) + causal attention fwd+bwd
                row = dict(seq=S, checkpointing=ck, lora_dtype=lora_dtype, tokens_per_s=tps, step_s=t / steps,
                           peak_mem_gb=torch.cuda.max_memory_allocated() / 2**30 if CUDA else None,
                           model_tflops=tps * flops_tok / 1e12, mfu=tps * flops_tok / (peak_tflops * 1e12))
            except torch.OutOfMemoryError as e:
                row = dict(seq=S, checkpointing=ck, lora_dtype=lora_dtype, oom=True)
                m.zero_grad(set_to_none=True)
            rows.append(row); log('  ', {k: (round(x, 3) if isinstance(x, float) else x) for k, x in row.items()})
            if CUDA: torch.cuda.empty_cache()
      del m
      if CUDA: torch.cuda.empty_cache()
    return dict(rows=rows, flops_per_token='4N + 6*L*S*d (N: base parameters, L layers, S sequence length, d model width)', n_params=n_params)

# ---------------------------------------------------------------------------------------------------------
class AnswerBias:
    """Makes a random model's next-token distributions peaked in a known way: at output position j every row gets
    +beta on the logit of the answer's j-th token, and at the `branch` positions +beta on a second colour too, so
    each branch position splits the probability about in half. Position = KV-cache length + index in the input,
    read in a forward pre-hook; the bias is added in a hook on the output layer. Both DFS versions see the same model."""
    def __init__(self, model, prompt_len, answer, branch, alt, beta=30.0):
        self.P, self.ans, self.branch, self.alt, self.beta = prompt_len, answer, set(branch), alt, beta
        base = model.get_base_model() if hasattr(model, 'get_base_model') else model
        self.h1 = base.register_forward_pre_hook(self.pre, with_kwargs=True)
        self.h2 = base.get_output_embeddings().register_forward_hook(self.post)
    def pre(self, mod, args, kw):
        ids = kw.get('input_ids', args[0] if args else None)
        c = kw.get('cache', kw.get('past_key_values'))
        self.pos0, self.T = (c.get_seq_length() if c is not None else 0), ids.shape[1]
    def post(self, mod, inp, out):
        To = out.shape[1]
        for t in range(To):
            j = self.pos0 + self.T - To + t - (self.P - 1)
            if 0 <= j < len(self.ans):
                out[:, t, self.ans[j]] += self.beta
                if j in self.branch: out[:, t, self.alt[j]] += self.beta
        return out
    def remove(self): self.h1.remove(); self.h2.remove()

def bench_dfs(path, n_prompts, min_prob):
    "Batched dfs_sample against the recursive one-sequence-at-a-time DFS, same model, same real prompts (see AnswerBias)."
    ev, order = real_tasks()
    tid = next(k for k in order if 40 <= output_tokens(ev[k].test[0].output) <= 80 and len(ev[k].test) == 1)
    task = ev[tid]
    m, tok = load_base(path, device=DEV, dtype=dtype()); m = attach_lora(m, rank=32, alpha=32); v = check_tokenizer(tok)
    with torch.no_grad():  # a trained-looking adapter: LoRA B non-zero, so the LoRA path really computes
        for n_, p_ in m.named_parameters():
            if 'lora_B' in n_: p_.normal_(0, 1e-3)
    views = task_views(task, InferConfig(n=n_prompts))
    rows = []
    for k, tr in enumerate(views):
        p = view_prompt(v, task, 0, tr, InferConfig(max_seq_len=8192), 0).input_ids.tolist()
        from arc_nb.encoding import grid_ids
        ans = list(grid_ids(v, tr.grid(task.test[0].output))) + [v.eos]
        cells = [j for j, t in enumerate(ans) if t in v.cells]
        for shape, branch in (('early', cells[2:17:7][:3]), ('late', cells[-3:])):
            if shape == 'late' and k > 0: continue
            alt = {j: v.cells[(v.cells.index(ans[j]) + 1) % 10] for j in branch}
            hook = AnswerBias(m, len(p), ans, branch, alt)
            try:
                tb, a = clock(lambda: dfs_sample(m, p, min_prob=min_prob, max_new_tokens=len(ans) + 8, eos_token_id=v.eos))
                tr_, b = clock(lambda: dfs_recursive(m, p, min_prob=min_prob, max_new_tokens=len(ans) + 8, eos_token_id=v.eos))
            finally: hook.remove()
            same = [x for x, _ in a] == [x for x, _ in b]
            rows.append(dict(view=k, branches=shape, branch_positions=branch, prompt_tokens=len(p), answer_tokens=len(ans), candidates=len(a),
                             batched_s=tb, recursive_s=tr_, speedup=tr_ / tb, same_set=same,
                             max_logprob_diff=max([abs(x[1] - y[1]) for x, y in zip(a, b)], default=0.0)))
            log('  ', {kk: (round(x, 3) if isinstance(x, float) else x) for kk, x in rows[-1].items()})
    del m
    if CUDA: torch.cuda.empty_cache()
    early = [r for r in rows if r['branches'] == 'early']
    return dict(task=tid, min_prob=min_prob, rows=rows,
                speedup_early=sum(r['recursive_s'] for r in early) / sum(r['batched_s'] for r in early),
                how_peaked=AnswerBias.__doc__.strip().replace('\n   ', ''))

def bench_profile(path, min_prob=0.1):
    "Where a batched DFS's time goes: torch.profiler over one dfs_sample call (the 'early' case of bench_dfs)."
    from torch.profiler import profile, ProfilerActivity
    from arc_nb.encoding import grid_ids
    ev, order = real_tasks()
    tid = next(k for k in order if 40 <= output_tokens(ev[k].test[0].output) <= 80 and len(ev[k].test) == 1)
    task = ev[tid]
    m, tok = load_base(path, device=DEV, dtype=dtype()); m = attach_lora(m, rank=32, alpha=32); v = check_tokenizer(tok)
    p = view_prompt(v, task, 0, task_views(task, InferConfig(n=1))[0], InferConfig(max_seq_len=8192), 0).input_ids.tolist()
    ans = list(grid_ids(v, task.test[0].output)) + [v.eos]
    cells = [j for j, t in enumerate(ans) if t in v.cells]; branch = cells[2:17:7][:3]
    hook = AnswerBias(m, len(p), ans, branch, {j: v.cells[(v.cells.index(ans[j]) + 1) % 10] for j in branch})
    run = lambda: dfs_sample(m, p, min_prob=min_prob, max_new_tokens=len(ans) + 8, eos_token_id=v.eos)
    run()  # warm-up
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if CUDA else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof: got = run(); sync()
    wall = time.perf_counter() - t0
    hook.remove()
    ka = prof.key_averages()
    dev_t = lambda e: getattr(e, 'self_device_time_total', getattr(e, 'self_cuda_time_total', 0))
    kernels = [e for e in ka if dev_t(e) > 0]
    busy_us = sum(dev_t(e) for e in kernels)
    n_launch = sum(e.count for e in kernels)
    top = sorted(ka, key=lambda e: -dev_t(e))[:12]
    cpu_top = sorted(ka, key=lambda e: -e.self_cpu_time_total)[:12]
    res = dict(task=tid, candidates=len(got), wall_s=wall, gpu_kernel_s=busy_us / 1e6, gpu_busy_frac=busy_us / 1e6 / wall, kernel_launches=n_launch,
               top_gpu=[dict(name=e.key, count=e.count, self_gpu_ms=dev_t(e) / 1e3) for e in top],
               top_cpu=[dict(name=e.key, count=e.count, self_cpu_ms=e.self_cpu_time_total / 1e3) for e in cpu_top])
    log(f"  profile: wall {wall:.2f}s, GPU kernels {busy_us/1e6:.2f}s ({100*busy_us/1e6/wall:.0f}% busy), {n_launch} kernel launches")
    for e in res['top_cpu'][:6]: log('   cpu', e)
    del m
    if CUDA: torch.cuda.empty_cache()
    return res

# ---------------------------------------------------------------------------------------------------------
def bench_scheduled(path, n_tasks, settings, epochs, max_new_tokens, budget_s):
    "arc-nb run on one GPU for several slot settings: GPU utilisation (monitor), busy %, wall time, per-task split."
    from arc_nb.plots import summary, resource_means
    ev, order = real_tasks()
    tasks = order[:n_tasks] if n_tasks < 8 else order[40:40 + n_tasks]  # mid-sized tasks (by tokens) of ARC-AGI-2 evaluation
    out = []
    base = Path(tempfile.mkdtemp())
    for name in settings:
        mode, tr, inf = ('fused', int(name.split(':')[1]), 0) if name.startswith('fused') else ('split', *map(int, name.split('/')))
        cfgf = base/f'{name.replace("/", "-").replace(":", "")}.json'
        cfgf.write_text(json.dumps({'max_new_tokens': max_new_tokens, 'monitor_interval': 0.5}))
        run = base/cfgf.stem
        cmd = [sys.executable, '-c', 'import sys; from arc_nb.cli import main; sys.exit(main())', 'run', '--config', str(cfgf), '--out', str(run),
               '--data', 'arc-agi-2/evaluation', '--tasks', ','.join(tasks), '--model', str(path), '--gpus', 'auto' if CUDA else 'cpu',
               '--mode', mode, '--train-slots', str(tr), '--infer-slots', str(max(inf, 1)), '--epochs', str(epochs), '--n', '2',
               '--min-prob', 'none', '--max-seq-len', '8192', '--quiet', '--time-budget', str(budget_s)]
        t, p = clock(lambda: subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT)] + [x for x in os.environ.get('PYTHONPATH', '').split(os.pathsep) if x])}))
        if p.returncode not in (0, 4, 5):  # 5: the budget cut it (a normal end here)
            out.append(dict(setting=name, error=p.stderr[-2000:])); log(f'  {name}: FAILED', p.stderr[-800:]); continue
        s = json.loads(p.stdout.strip().splitlines()[-1])
        sm, rm = summary(run), resource_means(run)
        row = dict(setting=name, wall_s=t, tasks=s['tasks'], trained=s['trained'], predicted=s['predicted'], deadline_cut=s['deadline_cut'],
                   gpu_util_mean_pct=float(rm.mean_util_pct.mean()) if len(rm) else None, device=str(rm.device.iloc[0]) if len(rm) else None,
                   slot_busy_mean_pct=float(sm.busy_pct.mean()), load_s=float(sm.load_s.sum()), overhead_s=float(sm.overhead_s.sum()),
                   train_s=float(sm.train_s.sum()), predict_s=float(sm.predict_s.sum()), idle_s=float(sm.idle_s.sum()),
                   slots=sm[['worker', 'busy_pct', 'load_s', 'train_s', 'predict_s', 'idle_s', 'tasks']].round(2).to_dict('records'))
        out.append(row); log('  ', {k: (round(x, 2) if isinstance(x, float) else x) for k, x in row.items() if k != 'slots'})
    return dict(tasks=tasks, epochs=epochs, n=2, decoding=f'greedy, at most {max_new_tokens} new tokens (a random model rarely ends a grid)', rows=out)

# ---------------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sections', default='overhead,throughput,dfs')
    ap.add_argument('--model', default='7b', choices=list(SHAPES)); ap.add_argument('--out', required=True)
    ap.add_argument('--smoke', action='store_true', help='tiny sizes, for a CPU check of the script')
    ap.add_argument('--peak-tflops', type=float, default=789.0, help='measured dense bf16 matmul rate of the GPU (KINDS.md: 769-798 on H200)')
    a = ap.parse_args()
    shape = 'smoke' if a.smoke else a.model
    info = dict(date=time.strftime('%Y-%m-%d %H:%M:%S'), gpu=torch.cuda.get_device_name(0) if CUDA else platform.processor() or 'cpu',
                torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__, python=platform.python_version(),
                command=' '.join(sys.argv), shape=shape, shape_config=SHAPES[shape])
    res = dict(info=info)
    disk = Path(os.environ.get('BENCH_DISK', tempfile.gettempdir()))/f'model-{shape}'
    t, (path, n) = clock(lambda: make_model(shape, disk))
    res['model'] = dict(params=n, make_and_save_s=t, path=str(path)); log(f"model {shape}: {n/1e9:.2f}B parameters, made and saved in {t:.1f}s")
    secs = a.sections.split(',')
    def save(): Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1, default=str))
    try:
        if 'overhead' in secs:
            log('== per-task overhead'); res['overhead'] = bench_overhead(path, 2 if a.smoke else 3); save()
        if 'throughput' in secs:
            log('== training throughput'); res['throughput'] = bench_throughput(path, [128, 256] if a.smoke else [2048, 8192], 2 if a.smoke else 5, n, a.peak_tflops); save()
        if 'dfs' in secs:
            log('== DFS'); res['dfs'] = bench_dfs(path, 2 if a.smoke else 3, 0.1); save()
        if 'profile' in secs:
            log('== DFS profile'); res['profile'] = bench_profile(path); save()
        if 'scheduled' in secs:
            log('== scheduled runs')
            res['scheduled'] = bench_scheduled(path, 2 if a.smoke else 16, ['1/1', 'fused:1'] if a.smoke else ['1/1', '1/2', '2/2', '2/3', 'fused:2'],
                                               1 if a.smoke else 6, 8 if a.smoke else 64, 300 if a.smoke else 100); save()
    finally:
        save()
    log(json.dumps({k: v for k, v in res.items() if k != 'info'}, default=str)[:3000])

if __name__ == '__main__':
    main()
