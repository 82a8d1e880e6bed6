"""Decode benchmark: arc_nb.fastdecode (static KV cache + CUDA graphs) against the eager path, in one run.

    python3 benchmarks/decode_bench.py --out $OUT            # GPU: random 7.24B Llama (bf16, LoRA r32 on all linear layers) + models/arc-small
    python3 benchmarks/decode_bench.py --smoke --out /tmp/d  # the same code on a tiny model, on the CPU, in seconds

Writes OUT/decode.json (OUT may also name a .json file). Every section runs in its own try/except: a failure is
recorded in the JSON under the section's name and the rest still runs.

Sections
- steps:    one decode step at batch 1 and 16 (prompt of 2048 tokens), eager (HF forward + DynamicCache) vs graph replay
            of each FastDecoder variant (--variants: modules, fused, fused+compiled, fused+compiled-fp32); capture and
            compile cost, CUDA kernels per step, memory the decoder's preparation added.
- swaps:    >= 10 different random adapters hot-loaded in place (load_adapter_weights); after each, dfs_sample and
            FastDecoder.dfs on a real ARC-AGI-2 evaluation prompt (peaked with AnswerBias so the DFS finds candidates)
            must agree; captures are counted before and after (expected: no new capture after the first task).
- e2e:      predict_task on one real task (n=8 views, min_prob 0.1, rescoring), eager vs graph: seconds and ratio.
- prefill:  the model's batched prefill (prompt) and score_candidates (rescoring) timings, shared by both paths.
- equality_7b: the same check on the 7B model, real prompts of several tasks (two views each), peaked per prompt.
- equality: real ARC-AGI-2 evaluation prompts on the small trained model (models/arc-small, bf16, LoRA attached):
            each prompt's dfs_sample against dfs_sample(max_batch=1) (eager's own bf16 noise) and against each
            variant's FastDecoder.dfs: same candidate sets, largest log-prob differences, the differences listed.
"""
import argparse, json, math, os, platform, shutil, sys, tempfile, time, traceback
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))
import numpy as np
import torch
import transformers
transformers.utils.logging.disable_progress_bar()
import peft
from gpu_bench import SHAPES, AnswerBias, real_tasks, clock, sync, log, CUDA, DEV, random_llama
from arc_nb.encoding import check_tokenizer, grid_ids, output_tokens
from arc_nb.model import attach_lora, save_adapter, load_adapter_weights, load_base
from arc_nb.search import dfs_sample, forward
from arc_nb.inference import score_candidates, predict_task, HFBackend, InferConfig, task_views, view_prompt
from arc_nb.fastdecode import FastDecoder, pow2

def make_model(shape):
    "A random Llama of gpu_bench's shapes, made in memory (bf16 on the GPU, fp32 on the CPU), with LoRA r32 on all linear layers."
    m, tok, n = random_llama(shape)
    m.eval()
    m = attach_lora(m, rank=32, alpha=32)  # fp32 LoRA weights, as the worker attaches them
    randomize_lora(m, 0)
    return m, check_tokenizer(tok), n

def randomize_lora(m, seed, b_std=1e-3):
    "A trained-looking adapter: LoRA B non-zero, so the LoRA path really computes."
    g = torch.Generator(device=m.device).manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if 'lora_A' in n: p.copy_(torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype) / math.sqrt(p.shape[1]))
            elif 'lora_B' in n: p.copy_(torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype) * b_std)

_BIAS = {}  # output-layer weight address -> (table, prompt length): one set of buffers per model
MAXLEN = 1024

class GraphAnswerBias(AnswerBias):
    """gpu_bench's AnswerBias, which also works inside FastDecoder's CUDA graphs: during a decode step (fd.stepping)
    the bias is a row of a table picked by the step's position tensor (tensor ops only, so a graph records it);
    elsewhere (the model's own forward: eager DFS, prefill, rescoring) it is AnswerBias's Python. The prompt length
    is taken from each prefill (a forward with an empty cache), so one hook serves every view's prompt. The table
    and the prompt length live in buffers made once per model and overwritten by each new hook, because a graph
    captured under one hook reads them when it is replayed under the next."""
    def __init__(self, model, fd, answer, branch, alt, beta=30.0):
        base = model.get_base_model() if hasattr(model, 'get_base_model') else model
        W = base.get_output_embeddings().weight
        if W.data_ptr() not in _BIAS:
            _BIAS[W.data_ptr()] = (torch.zeros(MAXLEN + 1, W.shape[0], dtype=W.dtype, device=W.device), torch.zeros(1, dtype=torch.long, device=W.device))
        self.fd, (self.table, self.P_t) = fd, _BIAS[W.data_ptr()]
        assert len(answer) < MAXLEN
        self.table.zero_()
        for j, t in enumerate(answer):
            self.table[j, t] += beta
            if j in branch: self.table[j, alt[j]] += beta
        super().__init__(model, 0, answer, branch, alt, beta)
    def pre(self, mod, args, kw):
        super().pre(mod, args, kw)
        if self.pos0 == 0: self.P = self.T; self.P_t.fill_(self.T)
    def post(self, mod, inp, out):
        if self.fd is not None and self.fd.stepping:
            # a position per row (one prompt: the same for its rows); rows past the answer are zero
            j = (self.fd.pos[: out.shape[0]] - (self.P_t - 1)).clamp(0, MAXLEN)
            return out + self.table.index_select(0, j)[:, None]
        return super().post(mod, inp, out)

def bias_for(v, task, tr, n_branch):
    ans = list(grid_ids(v, tr.grid(task.test[0].output))) + [v.eos]
    cells = [j for j, t in enumerate(ans) if t in v.cells]
    branch = cells[2:17:7][:n_branch]
    return ans, branch, {j: v.cells[(v.cells.index(ans[j]) + 1) % 10] for j in branch}

def compare(a, b):
    "Candidate lists of two DFS runs: same set?, the largest log-prob difference over shared sequences, and the differences."
    da, db = {tuple(s): l for s, l in a}, {tuple(s): l for s, l in b}
    shared = set(da) & set(db)
    return dict(same_set=set(da) == set(db), candidates=len(da), max_logprob_diff=max([abs(da[k] - db[k]) for k in shared], default=0.0),
                max_logprob_diff_per_token=max([abs(da[k] - db[k]) / len(k) for k in shared], default=0.0),
                only_eager=[[len(k), da[k]] for k in set(da) - set(db)], only_graph=[[len(k), db[k]] for k in set(db) - set(da)])

def median_step(fn, k):
    ts = []
    for i in range(k): t, _ = clock(lambda: fn(i)); ts.append(t)
    return float(np.median(ts)), ts

# ---------------------------------------------------------------------------------------------------------
VARIANTS = {'modules': dict(fuse=False, compile=False), 'fused': dict(fuse=True, compile=False), 'fused+compiled': dict(fuse=True, compile=True),
            'fused+compiled-fp32': dict(fuse=True, compile=True, exact_casts=False)}
DEFAULT = 'fused+compiled'  # what FastDecoder does on CUDA

def kernels_per_step(fd, b, L):
    "CUDA kernels one eager run of the step launches (what a graph replays), counted by the profiler."
    if not CUDA: return None
    from torch.profiler import profile, ProfilerActivity
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        fd._step_impl(b, L); torch.cuda.synchronize()
    return int(sum(e.count for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA))

def bench_steps(m, v, P, k, variants):
    "One decode step, eager (HF forward + DynamicCache) and graph replays of each FastDecoder variant, at batch 1 and 16."
    prompt = torch.randint(3, 13, (P,)).tolist()
    out, eager = {}, {}
    for b in (1, 16):
        _, cache = forward(m, torch.tensor([prompt], device=DEV), last_only=True)
        if b > 1: cache.batch_repeat_interleave(b)
        ids = torch.full((b, 1), v.cells[0], device=DEV)
        with torch.inference_mode():
            eager[b], _ = median_step(lambda i: forward(m, ids, cache), k)
        del cache
    for name in variants:
        mem0 = torch.cuda.memory_allocated() if CUDA else 0
        fd = FastDecoder(m, max_rows=16, **VARIANTS[name])
        fd._check_weights()
        mem_prep = (torch.cuda.memory_allocated() - mem0) / 2**30 if CUDA else 0
        for b in (1, 16):
            with torch.inference_mode():
                fd._ensure(16, P + 2 * k + 8); fd.prefill(prompt); fd.gather([0] * b, P)
                c0, t0, w0 = fd.stats['captures'], fd.stats['capture_s'], fd.stats['warmup_s']
                first, _ = clock(lambda: fd.step([v.cells[0]] * b, P).sum().item())  # captures this bucket's graph (on CUDA)
                graph, ts = median_step(lambda i: fd.step([v.cells[i % 10]] * b, P + 1 + i).sum().item(), 2 * k)
            try: kern = kernels_per_step(fd, b, pow2(P + 1, fd.min_len))
            except Exception as e: kern = f'{type(e).__name__}: {e}'
            out[f'{name} batch_{b}'] = dict(variant=name, batch=b, eager_step_ms=eager[b] * 1e3, graph_step_ms=graph * 1e3, speedup=eager[b] / graph,
                                            first_step_ms=first * 1e3, captures=fd.stats['captures'] - c0, capture_s=fd.stats['capture_s'] - t0,
                                            warmup_s=fd.stats['warmup_s'] - w0, kernels_per_step=kern, compiled=fd.compile, fused=fd._layers is not None,
                                            prepare_extra_gb=mem_prep)
            log(f"  {name} batch {b}: eager {eager[b]*1e3:.1f} ms, graph {graph*1e3:.2f} ms per step ({eager[b]/graph:.1f}x); "
                f"capture {fd.stats['capture_s'] - t0:.2f}s (warm-up {fd.stats['warmup_s'] - w0:.2f}s), {kern} kernels, +{mem_prep:.2f} GB")
        del fd
        if CUDA: torch.cuda.empty_cache()
    return dict(prompt_tokens=P, rows=out, what='median of single steps, synchronised; graph: ids copy + position fill + replay; '
                'kernels: CUDA kernels of one eager run of the step (the graph replays the same); prepare_extra_gb: GPU memory the decoder\'s weight preparation added')

def pick_task(lo, hi):
    ev, order = real_tasks()
    tid = next(t for t in order if lo <= output_tokens(ev[t].test[0].output) <= hi and len(ev[t].test) == 1)
    return ev[tid]

def bench_swaps(m, v, fd, n_swaps, min_prob, disk):
    task = pick_task(20, 40)
    tr = task_views(task, InferConfig(n=1))[0]
    p = view_prompt(v, task, 0, tr, InferConfig(max_seq_len=8192), 0).input_ids.tolist()
    ans, branch, alt = bias_for(v, task, tr, 2)
    dirs = []
    for i in range(n_swaps):
        randomize_lora(m, 100 + i); dirs.append(save_adapter(m, disk/f'adapter-{i}'))
    hook = GraphAnswerBias(m, fd, ans, branch, alt)
    rows = []
    try:
        for i, d in enumerate(dirs):
            t_load, _ = clock(lambda: load_adapter_weights(m, d))
            c0 = fd.stats['captures']
            te, a = clock(lambda: dfs_sample(m, p, min_prob=min_prob, max_new_tokens=len(ans) + 8, eos_token_id=v.eos))
            tg, b = clock(lambda: fd.dfs(p, min_prob=min_prob, max_new_tokens=len(ans) + 8, eos_token_id=v.eos))
            rows.append(dict(swap=i, hot_load_s=t_load, eager_s=te, graph_s=tg, new_captures=fd.stats['captures'] - c0, lora_refreshes=fd.stats['lora_refreshes'], **compare(a, b)))
            log('  ', {k: (round(x, 4) if isinstance(x, float) else x) for k, x in rows[-1].items()})
    finally: hook.remove()
    later = rows[1:]
    return dict(task=task.id, prompt_tokens=len(p), answer_tokens=len(ans), min_prob=min_prob, rows=rows,
                captures_total=fd.stats['captures'], new_captures_after_first_task=sum(r['new_captures'] for r in later),
                invalidations=fd.stats['invalidations'], all_same=all(r['same_set'] for r in rows),
                max_logprob_diff=max(r['max_logprob_diff'] for r in rows), peaked_by=GraphAnswerBias.__doc__.strip().replace('\n   ', ''))

def bench_e2e(m, v, fd, n, min_prob):
    task = pick_task(20, 40)
    cfg = InferConfig(n=n, min_prob=min_prob, max_seq_len=8192)
    ans, branch, alt = bias_for(v, task, task_views(task, cfg)[0], 2)
    hook = GraphAnswerBias(m, fd, ans, branch, alt)
    try:
        graph_b = HFBackend(m, v.eos); graph_b.decoder = fd  # the worker's decoder (fast_decoder(m) would make a second one)
        warm, _ = clock(lambda: predict_task(graph_b, v, task, cfg))  # first call: captures of any new bucket
        tg, pg = clock(lambda: predict_task(graph_b, v, task, cfg))
        te, pe = clock(lambda: predict_task(HFBackend(m, v.eos, decode='eager'), v, task, cfg))
    finally: hook.remove()
    same = [[c.grid for c in a.candidates] == [c.grid for c in b.candidates] for a, b in zip(pe, pg)]
    same_att = [a.attempts == b.attempts for a, b in zip(pe, pg)]
    r = dict(task=task.id, n=n, min_prob=min_prob, eager_s=te, graph_s=tg, graph_first_call_s=warm, ratio_eager_over_graph=te / tg,
             candidates=[len(p.candidates) for p in pe], same_candidates=same, same_attempts=same_att, tokens=[p.tokens for p in pe])
    log(f"  predict_task {task.id}: eager {te:.2f}s, graph {tg:.2f}s ({te/tg:.1f}x), candidates {r['candidates']}, same {same}")
    return r

def bench_prefill(m, v, lengths, n_cands, cand_len):
    rows = []
    with torch.inference_mode():
        for L in lengths:
            prompt = torch.randint(3, 13, (L,)).tolist()
            forward(m, torch.tensor([prompt], device=DEV), last_only=True)  # warm-up
            t, _ = clock(lambda: forward(m, torch.tensor([prompt], device=DEV), last_only=True))
            cands = [torch.randint(3, 13, (cand_len,)).tolist() + [v.eos] for _ in range(n_cands)]
            ts, _ = clock(lambda: score_candidates(m, prompt, cands))
            rows.append(dict(prompt_tokens=L, prefill_s=t, prefill_tokens_per_s=L / t, score_s=ts, score_candidates=n_cands, candidate_tokens=cand_len + 1,
                             score_tokens_per_s=(L + n_cands * (cand_len + 1)) / ts))
            log('  ', {k: (round(x, 4) if isinstance(x, float) else x) for k, x in rows[-1].items()})
            if CUDA: torch.cuda.empty_cache()
    return dict(rows=rows, note='prefill and rescoring use the model\'s own forward in both paths (one batched pass each); score = prefill + one pass over all candidates')

def summarize(rows):
    same = [r['same_set'] for r in rows]; cand = [r['same_set'] for r in rows if r['candidates'] > 0]
    return dict(prompts=len(rows), with_candidates=len(cand), same_set_frac=float(np.mean(same)) if same else None,
                same_set_frac_with_candidates=float(np.mean(cand)) if cand else None,
                max_logprob_diff=max([r['max_logprob_diff'] for r in rows], default=None),
                max_logprob_diff_per_token=max([r['max_logprob_diff_per_token'] for r in rows], default=None),
                seconds=sum(r['s'] for r in rows), differences=[r for r in rows if not r['same_set'] or r['max_logprob_diff'] > 0.01])

def equality_over(m, v, prompts, min_prob, budget_s, variants, bias=None):
    """Each prompt: dfs_sample (the reference), dfs_sample with max_batch=1 (the eager path against itself: its bf16
    noise floor, the same arithmetic in other shapes), and FastDecoder.dfs of each variant; candidate sets and log-probs compared."""
    decs = {name: FastDecoder(m, **VARIANTS[name]) for name in variants}
    rows = {k: [] for k in ['eager max_batch=1'] + list(decs)}
    t_start = time.perf_counter()
    for tid, k, p, room, b in prompts:
        if time.perf_counter() - t_start > budget_s: break
        hook = bias(b) if bias else None
        try:
            te, ref = clock(lambda: dfs_sample(m, p, min_prob=min_prob, max_new_tokens=room, eos_token_id=v.eos))
            t1, one = clock(lambda: dfs_sample(m, p, min_prob=min_prob, max_new_tokens=room, eos_token_id=v.eos, max_batch=1))
            rows['eager max_batch=1'].append(dict(task=tid, view=k, prompt_tokens=len(p), s=t1, eager_s=te, **compare(ref, one)))
            for name, fd in decs.items():
                if hook: hook.fd = fd
                tg, got = clock(lambda: fd.dfs(p, min_prob=min_prob, max_new_tokens=room, eos_token_id=v.eos))
                rows[name].append(dict(task=tid, view=k, prompt_tokens=len(p), s=tg, eager_s=te, **compare(ref, got)))
        finally:
            if hook: hook.remove()
    res = dict(min_prob=min_prob, eager_s=sum(r['eager_s'] for r in rows['eager max_batch=1']),
               compared={k: summarize(r) for k, r in rows.items()}, stats={n: dict(fd.stats) for n, fd in decs.items()}, rows=rows)
    for k, q in res['compared'].items():
        log(f"  {k:<22} {q['prompts']} prompts ({q['with_candidates']} with candidates): same set on {100*(q['same_set_frac'] or 0):.1f}% "
            f"({100*(q['same_set_frac_with_candidates'] or 0):.1f}% of those with candidates), max |dlogprob| {q['max_logprob_diff']} "
            f"({q['max_logprob_diff_per_token']} per token), {q['seconds']:.1f}s (eager {res['eager_s']:.1f}s)")
    del decs
    if CUDA: torch.cuda.empty_cache()
    return res

def bench_equality_biased(m, v, n_prompts, min_prob, budget_s, variants):
    "The comparison on the 7B random model, on real prompts (several tasks, two views each), peaked per prompt by GraphAnswerBias."
    ev, order = real_tasks()
    prompts = []
    for tid in [t for t in order if 20 <= output_tokens(ev[t].test[0].output) <= 60]:
        task = ev[tid]
        for k, tr in enumerate(task_views(task, InferConfig(n=2))):
            p = view_prompt(v, task, 0, tr, InferConfig(max_seq_len=8192), 0).input_ids.tolist()
            ans, branch, alt = bias_for(v, task, tr, 2 + len(prompts) % 2)
            prompts.append((tid, k, p, len(ans) + 8, (ans, branch, alt)))
        if len(prompts) >= n_prompts: break
    return equality_over(m, v, prompts[:n_prompts], min_prob, budget_s, variants, bias=lambda b: GraphAnswerBias(m, None, *b))

def bench_equality(path, n_prompts, min_prob, budget_s, variants):
    m, tok = load_base(path, device=DEV, dtype='bfloat16' if CUDA else 'float32')
    m = attach_lora(m, rank=32, alpha=32); randomize_lora(m, 7, b_std=1e-3)
    v = check_tokenizer(tok)
    ev, order = real_tasks()
    prompts = []
    for tid in sorted(ev, key=lambda t: output_tokens(ev[t].test[0].output)):
        task = ev[tid]
        for i, e in enumerate(task.test):
            for k, tr in enumerate(task_views(task, InferConfig(n=2))):
                reserve = min(931, max([output_tokens(x.output) for x in task.train] + [output_tokens(e.input)]))
                p = view_prompt(v, task, i, tr, InferConfig(max_seq_len=8192), reserve).input_ids.tolist()
                prompts.append((f'{tid}/{i}', k, p, min(931, 8192 - len(p)), None))
        if len(prompts) >= n_prompts: break
    res = dict(model=str(path), **equality_over(m, v, prompts[:n_prompts], min_prob, budget_s, variants))
    del m
    if CUDA: torch.cuda.empty_cache()
    return res

# ---------------------------------------------------------------------------------------------------------
def table(res):
    lines = ['', 'section        | eager            | graph            | note', '---|---|---|---']
    st = res.get('steps', {}).get('rows', {})
    for b, r in st.items():
        lines.append(f"{b:<14} | {r['eager_step_ms']:8.1f} ms/step | {r['graph_step_ms']:8.2f} ms/step | {r['speedup']:.1f}x, capture {r['capture_s']:.2f}s, {r['kernels_per_step']} kernels")
    sw = res.get('swaps', {})
    if 'rows' in sw:
        lines.append(f"swaps ({len(sw['rows'])})     | {sum(r['eager_s'] for r in sw['rows']):8.1f} s        | {sum(r['graph_s'] for r in sw['rows']):8.1f} s        | "
                     f"same candidates: {sw['all_same']}, new captures after task 1: {sw['new_captures_after_first_task']}, max dlp {sw['max_logprob_diff']:.2g}")
    e = res.get('e2e', {})
    if 'eager_s' in e: lines.append(f"predict_task   | {e['eager_s']:8.2f} s        | {e['graph_s']:8.2f} s        | {e['ratio_eager_over_graph']:.1f}x, same candidates {e['same_candidates']}")
    for name in ('equality_7b', 'equality'):
        for k, q in res.get(name, {}).get('compared', {}).items():
            lines.append(f"{name}: {k} ({q['prompts']}) | {res[name]['eager_s']:8.1f} s | {q['seconds']:8.1f} s | same set {100*(q['same_set_frac'] or 0):.1f}% "
                         f"({100*(q['same_set_frac_with_candidates'] or 0):.1f}% of {q['with_candidates']} with candidates), max dlp {q['max_logprob_diff']:.3g}")
    for k in ('model', 'steps', 'swaps', 'e2e', 'prefill', 'equality_7b', 'equality'):
        if 'error' in res.get(k, {}): lines.append(f"{k}: ERROR {res[k]['error'].splitlines()[-1]}")
    return '\n'.join(lines)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'results'), help='a folder (decode.json is written there) or a .json file')
    ap.add_argument('--smoke', action='store_true', help='tiny sizes, for a CPU check of the script')
    ap.add_argument('--sections', default='steps,swaps,e2e,prefill,equality_7b,equality')
    ap.add_argument('--variants', default=','.join(VARIANTS), help='FastDecoder variants timed in the steps section (the default decoder, used by the other sections, is fused+compiled on CUDA)')
    ap.add_argument('--equality-s', type=float, default=150, help='time budget of the small-model equality section')
    ap.add_argument('--small-model', default=str(ROOT/'models'/'arc-small'), help='a trained model folder for the equality check')
    a = ap.parse_args()
    out = Path(a.out); out = out if out.suffix == '.json' else out/'decode.json'
    shape = 'smoke' if a.smoke else '7b'
    res = dict(info=dict(date=time.strftime('%Y-%m-%d %H:%M:%S'), gpu=torch.cuda.get_device_name(0) if CUDA else platform.processor() or 'cpu',
                         torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__, python=platform.python_version(),
                         command=' '.join(sys.argv), shape=shape, shape_config=SHAPES[shape], lora='rank 32, alpha 32, all linear layers, fp32 weights'))
    def save(): out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1, default=str))
    def section(name, fn):
        if name not in a.sections.split(','): return
        log(f'== {name}'); t = time.perf_counter()
        try: res[name] = fn()
        except Exception as e:
            res[name] = dict(error=traceback.format_exc()); log(f'  {name} FAILED: {type(e).__name__}: {e}')
            if CUDA: torch.cuda.synchronize(); torch.cuda.empty_cache()
        res[name]['section_s'] = time.perf_counter() - t
        save()
    T0 = time.perf_counter()
    disk = Path(tempfile.mkdtemp(dir=os.environ.get('BENCH_DISK', None)))
    try:
        m = v = fd = None
        section('equality', lambda: bench_equality(a.small_model, 6 if a.smoke else 160, 0.1, 20 if a.smoke else a.equality_s, a.variants.split(',')))  # first: no 7B needed
        try:
            t, (m, v, n) = clock(lambda: make_model(shape))
            fd = FastDecoder(m, max_rows=16)
            res['model'] = dict(params=n, make_s=t, decoder=dict(graphs=fd.graphs, compile=fd.compile, fuse=fd.fuse)); log(f"model {shape}: {n/1e9:.2f}B parameters + LoRA r32, made in {t:.1f}s")
        except Exception: res['model'] = dict(error=traceback.format_exc()); log(res['model']['error'])
        save()
        if m is not None:
            section('steps', lambda: bench_steps(m, v, 256 if a.smoke else 2048, 3 if a.smoke else 10, a.variants.split(',')))
            section('swaps', lambda: bench_swaps(m, v, fd, 10, 0.1, disk))
            section('e2e', lambda: bench_e2e(m, v, fd, 2 if a.smoke else 8, 0.1))
            section('prefill', lambda: bench_prefill(m, v, [256, 512] if a.smoke else [1024, 2048, 4096, 8192], 4 if a.smoke else 8, 64 if a.smoke else 400))
            section('equality_7b', lambda: bench_equality_biased(m, v, 4 if a.smoke else 16, 0.1, 20 if a.smoke else 45, [DEFAULT]))
            res['decoder_stats'] = dict(fd.stats, cache_rows=fd.rows, cache_length=fd.length,
                                        cache_gb=fd.kv.numel() * fd.kv.element_size() / 2**30 if fd.kv is not None else 0)
            del m, fd
            if CUDA: torch.cuda.empty_cache()
    finally:
        shutil.rmtree(disk, ignore_errors=True)
        res['total_s'] = time.perf_counter() - T0
        save()
    log(table(res)); log(f'wrote {out} ({res["total_s"]:.0f}s)')

if __name__ == '__main__':
    main()
