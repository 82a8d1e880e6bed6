"""Issue 22, decode: K tasks searched in one batch, each through its own adapter slot, against one task at a time.

    PYTHONUNBUFFERED=1 python3 benchmarks/multitask_decode.py --models 7b,1b --out $OUT/multitask.json
    python3 benchmarks/multitask_decode.py --smoke --out /tmp/multitask.json     # tiny model, CPU, seconds

Writes the key `decode` (and `decode_info`) of the JSON file; its other keys are kept.

Per model (gpu_bench's random '7b' 7.24B and '1b' 1.1B Llama shapes, bf16, LoRA r32 on all linear layers), a `SlotLoRA`
of 8 slots, each slot its own random adapter. The tasks: 8 ARC-AGI-2 evaluation tasks spread over the answer lengths
(batched_inference's `representative`, answers of about 40 to 900 tokens); per task the n=8 views of its first test
input, each peaked towards its answer with two 50/50 branches per view (workload_bias's `dfs` regime), min_prob 0.17.
For K in 1, 4, 8 the 8 tasks are searched K at a time: one `FastDecoder.dfs_batch` over the K tasks' 8K prompts,
prompt i through its task's slot (`slots=(S, ks)`, CUDA graphs). `single`: each task alone through peft's single adapter
(what a worker did before issue 22). After one untimed round of every K (graph captures), each K is timed once.
`tokens_per_s`: decode tokens (rows fed to decode steps, counted by arc_nb.search.WORK) per second of the whole
search (prefills included); `same_candidates`: share of prompts whose candidate sets equal the K=1 run's.
"""
import argparse, json, platform, sys, time, traceback
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))
import torch
import transformers
transformers.utils.logging.disable_progress_bar()
import peft
from gpu_bench import CUDA, clock, log
from decode_bench import make_model
from batched_inference import representative, SMOKE_TASKS
from workload_bias import answers, AnswerBias
from arc_nb.data import load_tasks
from arc_nb.inference import InferConfig, test_prompts
from arc_nb.search import WORK
from arc_nb.fastdecode import FastDecoder
from arc_nb.model import SlotLoRA

MIN_PROB = 0.17

def bench(shape, task_ids, Ks, n):
    m, v, n_params = make_model(shape)
    ev = load_tasks('arc-agi-2/evaluation')
    tasks = {t: ev[t] for t in task_ids}
    icfg = InferConfig(n=n)
    table = answers(v, tasks, icfg, 'dfs')
    prompts = {t: test_prompts(v, tasks[t], icfg)[0] for t in task_ids}
    rooms = {t: [min(icfg.max_new_tokens, icfg.max_seq_len - len(p)) for p in prompts[t]] for t in task_ids}
    fd = FastDecoder(m)
    m.__dict__.setdefault('_arc_decoders', {})['bench'] = fd  # where the bias finds the decoder whose step is running
    S = SlotLoRA(m, len(task_ids))
    with torch.no_grad():
        for k in range(len(task_ids)):
            S.reset(k, seed=k)
        S.weight.add_(torch.randn_like(S.weight) * 1e-3)  # B non-zero: every slot its own adapter
    bias = AnswerBias(m, table)
    def search(group, slots):
        ps = [p for t in group for p in prompts[t]]
        news = [r for t in group for r in rooms[t]]
        ks = [task_ids.index(t) for t in group for _ in prompts[t]]
        bias.use(ps)
        return fd.dfs_batch(ps, min_prob=MIN_PROB, max_new_tokens=news, eos_token_id=v.eos, slots=(S, ks) if slots else None)
    def way(K):
        groups = [task_ids[i:i + K] for i in range(0, len(task_ids), K)] if K else [[t] for t in task_ids]
        out = []
        for g in groups: out += search(g, K is not None)
        return out
    names = [None] + list(Ks)  # None: single adapter, one task at a time
    try:
        for K in names: way(K)  # warm-up: captures
        rows, ref = [], None
        for K in names:
            c0 = fd.stats['captures']; w0 = WORK.copy()
            t, got = clock(lambda: way(K))
            w = WORK.since(w0)
            sets = [{tuple(s) for s, _ in r} for r in got]
            if K == 1: ref = sets
            rows.append(dict(model=shape, K='single' if K is None else K, tasks=len(task_ids), prompts=len(got), seconds=t,
                             decode_tokens=w['rows'], steps=w['steps'], tokens_per_s=w['rows'] / t,
                             candidates=sum(len(r) for r in got), timed_captures=fd.stats['captures'] - c0, sets=sets))
            log(f"  {shape} K={rows[-1]['K']}: {t:.2f}s, {w['rows']} decode tokens in {w['steps']} steps, {w['rows'] / t:.0f} tok/s, "
                f"{rows[-1]['candidates']} candidates, {rows[-1]['timed_captures']} captures while timed")
    finally:
        bias.remove()
    k1 = next(r for r in rows if r['K'] == 1)
    for r in rows:
        r['speedup_vs_k1'] = r['tokens_per_s'] / k1['tokens_per_s']
        r['same_candidates'] = sum(a == b for a, b in zip(r.pop('sets'), ref)) / len(ref)
    stats = dict(fd.stats, cache_rows=fd.rows, cache_length=fd.length)
    S.close()
    return rows, dict(params=n_params, tasks=task_ids, decoder=stats)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'results'/'multitask.json'))
    ap.add_argument('--models', default='7b,1b')
    ap.add_argument('--ks', default='1,4,8')
    ap.add_argument('--n', type=int, default=8)
    ap.add_argument('--smoke', action='store_true')
    a = ap.parse_args()
    out = Path(a.out)
    res = json.loads(out.read_text()) if out.exists() else {}
    models = ['smoke'] if a.smoke else a.models.split(',')
    task_ids = list(SMOKE_TASKS) * 1 if a.smoke else representative(8)
    if a.smoke:
        from workload import selection
        task_ids = selection(4)[0]
    Ks = [int(k) for k in a.ks.split(',') if int(k) <= len(task_ids)]
    res['decode_info'] = dict(date=time.strftime('%Y-%m-%d %H:%M:%S'), gpu=torch.cuda.get_device_name(0) if CUDA else platform.processor() or 'cpu',
                              torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
                              command=' '.join(sys.argv), min_prob=MIN_PROB, n=a.n, models={})
    res['decode'] = []
    for shape in models:
        try:
            rows, info = bench(shape, task_ids, Ks, a.n)
            res['decode'] += rows; res['decode_info']['models'][shape] = info
        except Exception:
            res['decode'].append(dict(model=shape, error=traceback.format_exc())); log(res['decode'][-1]['error'])
        out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1, default=str))
    log('\nmodel | K | seconds | decode tokens | tokens/s | vs K=1 | same candidates as K=1\n---|---|---|---|---|---|---')
    for r in res['decode']:
        if 'error' not in r:
            log(f"{r['model']} | {r['K']} | {r['seconds']:.2f} | {r['decode_tokens']} | {r['tokens_per_s']:.0f} | {r['speedup_vs_k1']:.2f}x | {100 * r['same_candidates']:.0f}%")

if __name__ == '__main__':
    main()
