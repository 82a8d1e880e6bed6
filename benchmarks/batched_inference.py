"""Batched inference benchmark: all n views of one test input searched as one batch (FastDecoder.dfs_batch) against the
views one after another (FastDecoder.dfs), both with arc_nb's static KV cache and CUDA graphs.

    python3 benchmarks/batched_inference.py --out $OUT             # GPU: random 7.24B Llama (bf16, LoRA r32), real ARC-AGI-2 tasks
    python3 benchmarks/batched_inference.py --smoke --out /tmp/bi  # the same code on a tiny model, on the CPU, in seconds

Writes the key `one_test_input` (and `one_test_input_info`; --key names another) of OUT/batched_inference.json (OUT
may also name a .json file); other keys of an existing file are kept.

Section one_test_input. The model: decode_bench's `make_model` (gpu_bench's random 7.24B Llama, bf16 on the GPU, LoRA
r32 on all linear layers with a random adapter). For each task (default: `representative`, four evaluation tasks
spread over the answer lengths, 127-871 tokens; `--tasks short`: four of workload.py's selection, 36-153 tokens), the
n=8 views of its first test input (`test_prompts`, as predict_task decodes them), in two regimes: `greedy` (min_prob None) and `dfs` (min_prob 0.17). A random model writes no grids, so
a logit bias makes each view's answer the likely continuation: workload_bias's answers (greedy writes the view's answer
then the end token; dfs: two positions split about 50/50, four candidates a view), applied per row (workload_bias's `AnswerBias`:
each row's prompt and position, read from the decoder's `which` and `pos` tensors, so it works inside the CUDA graphs).
Each (task, regime): a warm-up (graph captures happen there and are reported; a capture in a timed run is counted and
its seconds taken out of that run's time), then the timed runs:
the sequential loop `[fd.dfs(p) for p in prompts]` and `fd.dfs_batch(prompts)`. One record per (model, regime):
seconds of both, speedup, `same_candidates` (the fraction of prompts whose candidate sequence sets are identical),
decode tokens (tokens fed to decode steps, the same in both ways) and decode tokens per second of each way.
"""
import argparse, json, platform, sys, time, traceback
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))
import torch
import transformers
transformers.utils.logging.disable_progress_bar()
import peft
from gpu_bench import SHAPES, clock, log, CUDA
from decode_bench import make_model
from workload import selection
from workload_bias import answers, AnswerBias
from arc_nb.encoding import output_tokens
from arc_nb.inference import InferConfig, test_prompts
from arc_nb.search import WORK
from arc_nb.fastdecode import FastDecoder

SHORT = ('89565ca0', '7b5033c1', '58490d8a', '136b0064')  # --tasks short: four of workload.py's selection (short answers)
SMOKE_TASKS = ('e8686506',)
REGIMES = {'greedy': None, 'dfs': 0.17}

def cand_sets(res): return [{tuple(s) for s, _ in r} for r in res]

def run_case(fd, bias, v, prompts, min_prob, rooms, table):
    """One (task, regime): a warm-up (the batched search whole, the sequential one on the first 32 tokens: the graph
    buckets both use), then both timed. A graph captured during a timed run is counted and its seconds taken out."""
    kw = dict(min_prob=min_prob, max_new_tokens=rooms, eos_token_id=v.eos)
    def sequential(cap=None):
        out = []
        for p, r in zip(prompts, rooms):
            bias.use([p]); out.append(fd.dfs(p, min_prob=min_prob, max_new_tokens=min(r, cap or r), eos_token_id=v.eos))
        return out
    def batched():
        bias.use(prompts); return fd.dfs_batch(prompts, **kw)
    c0, s0 = fd.stats['captures'], fd.stats['capture_s']
    tw, _ = clock(lambda: (batched(), sequential(32)))
    c1, s1 = fd.stats['captures'], fd.stats['capture_s']
    w0 = WORK.copy(); ts, seq = clock(sequential); ws = WORK.since(w0)
    c2, s2 = fd.stats['captures'], fd.stats['capture_s']
    w0 = WORK.copy(); tb, bat = clock(batched); wb = WORK.since(w0)
    c3, s3 = fd.stats['captures'], fd.stats['capture_s']
    same = [a == b for a, b in zip(cand_sets(seq), cand_sets(bat))]
    found = [tuple(table[tuple(p)][0]) in c for p, c in zip(prompts, cand_sets(bat))]  # the bias worked: the answer is there
    return dict(prompt_tokens=[len(p) for p in prompts], sequential_s=ts - (s2 - s1), batched_s=tb - (s3 - s2),
                speedup=(ts - (s2 - s1)) / (tb - (s3 - s2)), sequential_raw_s=ts, batched_raw_s=tb, same=same, answer_found=found,
                candidates=[len(r) for r in seq], candidates_batched=[len(r) for r in bat],
                decode_tokens=ws['rows'], decode_tokens_batched=wb['rows'], steps_sequential=ws['steps'], steps_batched=wb['steps'],
                prefill_tokens=ws['tokens'], warmup_s=tw, warmup_captures=c1 - c0, warmup_capture_s=s1 - s0,
                timed_captures=(c2 - c1) + (c3 - c2), timed_capture_s=(s2 - s1) + (s3 - s2))

def representative(k=4):
    """k ARC-AGI-2 evaluation tasks spread over the answer lengths: among tasks of at most 6000 tokens (prompts that fit
    8192 with their answer), sorted by their first test output's tokens, the ones at 1/2k, 3/2k, ... of the list."""
    from arc_nb.data import load_tasks
    from arc_nb.encoding import output_tokens, task_tokens, COUNT_VOCAB
    ev = load_tasks('arc-agi-2/evaluation')
    a = sorted((output_tokens(t.test[0].output), tid) for tid, t in ev.items() if task_tokens(COUNT_VOCAB, t) <= 6000)
    return [a[len(a) * f // (2 * k)][1] for f in range(1, 2 * k, 2)]

def bench_one_test_input(m, v, model_name, task_ids, n, budget_s):
    "Per regime, the tasks' first test inputs under n views: sequential fd.dfs against fd.dfs_batch."
    _, ev = selection(0)
    fd = FastDecoder(m)
    m.__dict__.setdefault('_arc_decoders', {})['bench'] = fd  # where the bias finds the decoder whose step is running
    icfg = InferConfig(n=n)
    records, t_start = [], time.perf_counter()
    for regime, mp in REGIMES.items():
        rows = []
        for tid in task_ids:
            if time.perf_counter() - t_start > budget_s:
                log(f'  {regime} {tid}: skipped (the section\'s {budget_s:.0f}s budget is spent)'); continue
            task = ev[tid]
            table = answers(v, {tid: task}, icfg, regime)
            prompts = test_prompts(v, task, icfg)[0]
            rooms = [min(icfg.max_new_tokens, icfg.max_seq_len - len(p)) for p in prompts]
            bias = AnswerBias(m, table)  # per row during decode steps: `use` says which prompt each `which` is
            try: r = run_case(fd, bias, v, prompts, mp, rooms, table)
            finally: bias.remove()
            r.update(task=tid, answer_tokens=output_tokens(task.test[0].output))
            rows.append(r)
            log(f"  {regime:6} {tid}: sequential {r['sequential_s']:.2f}s, batched {r['batched_s']:.2f}s ({r['speedup']:.1f}x), "
                f"candidates {r['candidates']}, same {sum(r['same'])}/{len(r['same'])}, answer found {sum(r['answer_found'])}/{len(prompts)}, "
                f"{r['decode_tokens']} decode tokens, "
                f"warm-up {r['warmup_s']:.1f}s ({r['warmup_captures']} captures, {r['warmup_capture_s']:.1f}s)")
        if not rows: continue
        ts, tb = sum(r['sequential_s'] for r in rows), sum(r['batched_s'] for r in rows)
        same = [x for r in rows for x in r['same']]
        records.append(dict(model=model_name, regime=regime, min_prob=mp, n=n, tasks=[r['task'] for r in rows],
                            sequential_s=ts, batched_s=tb, speedup=ts / tb, same_candidates=sum(same) / len(same),
                            answer_found=sum(x for r in rows for x in r['answer_found']) / len(same),
                            decode_tokens=sum(r['decode_tokens'] for r in rows),
                            sequential_tokens_per_s=sum(r['decode_tokens'] for r in rows) / ts,
                            batched_tokens_per_s=sum(r['decode_tokens_batched'] for r in rows) / tb,
                            warmup_captures=sum(r['warmup_captures'] for r in rows), warmup_capture_s=sum(r['warmup_capture_s'] for r in rows),
                            timed_captures=sum(r['timed_captures'] for r in rows), rows=rows))
    stats = dict(fd.stats, cache_rows=fd.rows, cache_length=fd.length,
                 cache_gb=fd.kv.numel() * fd.kv.element_size() / 2**30 if fd.kv is not None else 0.0)
    for r in records: r['decoder'] = stats
    return records

def table(records):
    lines = ['', 'model | regime | n | tasks | sequential s | batched s | speedup | same candidates | answer found | decode tok/s seq -> batched | captures (warm-up, timed)',
             '---|---|---|---|---|---|---|---|---|---|---']
    for r in records:
        lines.append(f"{r['model']} | {r['regime']} | {r['n']} | {len(r['tasks'])} | {r['sequential_s']:.2f} | {r['batched_s']:.2f} | "
                     f"{r['speedup']:.2f}x | {100 * r['same_candidates']:.0f}% | {100 * r['answer_found']:.0f}% | {r['sequential_tokens_per_s']:.0f} -> {r['batched_tokens_per_s']:.0f} | "
                     f"{r['warmup_captures']}, {r['timed_captures']}")
    return '\n'.join(lines)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'results'), help='a folder (batched_inference.json is written there) or a .json file')
    ap.add_argument('--smoke', action='store_true', help='a tiny model and one task, for a CPU check of the script')
    ap.add_argument('--tasks', default=None, help="comma-separated ARC-AGI-2 evaluation task ids, or 'short' (four of the workload's "
                    "selection, answers of 36-153 tokens); default: `representative` (four spread over the answer lengths)")
    ap.add_argument('--key', default='one_test_input', help='the key of the JSON file the records go to')
    ap.add_argument('--n', type=int, default=8, help='views per test input')
    ap.add_argument('--budget-s', type=float, default=240, help='no new task is started after this many seconds of the section')
    a = ap.parse_args()
    if a.smoke and not CUDA: torch.set_num_threads(1)  # a tiny model: more threads only contend
    out = Path(a.out); out = out if out.suffix == '.json' else out/'batched_inference.json'
    shape = 'smoke' if a.smoke else '7b'
    tasks = list(SMOKE_TASKS) if a.smoke and not a.tasks else list(SHORT) if a.tasks == 'short' else a.tasks.split(',') if a.tasks else representative()
    res = json.loads(out.read_text()) if out.exists() else {}
    res[a.key + '_info'] = dict(date=time.strftime('%Y-%m-%d %H:%M:%S'), gpu=torch.cuda.get_device_name(0) if CUDA else platform.processor() or 'cpu',
                                      torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
                                      command=' '.join(sys.argv), shape=shape, shape_config=SHAPES[shape], lora='rank 32, alpha 32, all linear layers, fp32 weights')
    T0 = time.perf_counter()
    try:
        t, (m, v, n_params) = clock(lambda: make_model(shape))
        name = f'random {n_params / 1e9:.2f}B Llama + LoRA r32' if not a.smoke else f'smoke ({n_params / 1e6:.1f}M) + LoRA r32'
        log(f'model {shape}: {n_params / 1e9:.3f}B parameters, made in {t:.1f}s')
        res[a.key + '_info'].update(params=n_params, make_s=t)
        res[a.key] = bench_one_test_input(m, v, name, tasks, a.n, a.budget_s)
    except Exception:
        res[a.key] = [dict(error=traceback.format_exc())]; log(res[a.key][0]['error'])
    res[a.key + '_info']['total_s'] = time.perf_counter() - T0
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1, default=str))
    recs = [r for r in res[a.key] if 'error' not in r]
    log(table(recs)); log(f'wrote {out} ({time.perf_counter() - T0:.0f}s)')

if __name__ == '__main__':
    main()
