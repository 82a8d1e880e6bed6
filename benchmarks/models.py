"""Issue 23: the models competitors bring, measured on the GPU. One command per group of sections (each under 10 minutes
on an H200; the JSON is written after every section, so a timeout keeps what was done):

    PYTHONUNBUFFERED=1 python3 benchmarks/models.py --sections qwen3,shrink_vocab --out $OUT/models.json
    PYTHONUNBUFFERED=1 python3 benchmarks/models.py --sections quant,run_4bit --out $OUT/models.json   # needs bitsandbytes
    python3 benchmarks/models.py --smoke --out /tmp/models.json    # the same code on tiny shapes, on the CPU, seconds

Sections (keys of OUT/models.json; other keys of an existing file are kept):

`qwen3`: a random Qwen3-4B-shaped model (36 layers, width 2560, 32 query / 8 KV heads of 128 with per-head q/k
RMSNorm, MLP 9728, vocabulary 151,936, tied embeddings), bf16, with NVARC's kind of adapter: LoRA r32 on the seven
projections plus `embed_tokens` and `lm_head`, rsLoRA, every LoRA tensor random (B non-zero, so each part computes).
`eager_step_ms` / `graph_step_ms`: one decode step after a 2048-token prompt at batch 1 (and 16), the model's own
forward with a DynamicCache against FastDecoder's graph replay (decode_bench.bench_steps). `same_sets_pct`: real
ARC-AGI-2 evaluation prompts (two views per task), each peaked towards its answer with two or three 50/50 branches
(decode_bench's GraphAnswerBias), searched by `dfs_sample` (eager) and by `FastDecoder.dfs` (graphs): the share of
prompts whose candidate sets are identical; `prompts` how many were compared.

`shrink_vocab`: the same model with its embedding and head cut to the rows ARC prompts use (`vocab.keep_rows`, what
`arc-nb shrink-vocab` does, here in memory on the GPU), the LoRA attached again (the same targets): `vocab_before`,
`vocab_after`, `decode_step_ms` before and after (graph, batch 1; batch 16 and eager in the rows), and the same
equality check on the shrunk model.

`bf16` and `four_bit`: a random 7.24B Llama/Mistral shape (gpu_bench's '7b'), saved under $BENCH_DISK and loaded through
`load_base` in bf16 and with `load_in_4bit` (bitsandbytes NF4, bf16 compute); LoRA r32 on the projections (fp32
LoRA weights, as the worker attaches them). `train_tokens_per_s`: `train_sequences` on sequences of 1,700 tokens (real
ARC lengths), batch size 1, gradient checkpointing on (off in the rows too); `decode_step_ms`: one decode step at
batch 1 after a 2048-token prompt, through what a worker would use (bf16: the graph decoder; 4-bit: the eager path,
since the static-cache decoder refuses quantized weights and says so once); `mem_gb_per_process`: the most GPU memory
a training process holds (torch's peak reserved memory over loading and training with checkpointing, plus the CUDA
context measured beside it; an inference process holds less: `weights_plus_context_gb` and its cache);
`slots_in_24gb` = floor(24 GiB / mem_gb_per_process).

`run_4bit`: `arc-nb run --load-in-4bit` on that saved 7B model, end to end on the GPU: 1 train + 1 inference slot,
3 small tasks, 2 epochs (the model is random: this shows the path runs, train -> save -> hot-load -> search, and how
long each part takes, not accuracy).
"""
import argparse, json, math, os, platform, shutil, subprocess, sys, tempfile, time, traceback
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))
T0 = time.time()
import torch
import transformers
transformers.utils.logging.disable_progress_bar()
import peft
from gpu_bench import CUDA, DEV, clock, log, synthetic, make_model as save_llama
from decode_bench import bench_steps, bench_equality_biased
from arc_nb.encoding import make_compact_tokenizer, check_tokenizer
from arc_nb.model import attach_lora, load_base
from arc_nb.ttt import TTTConfig, train_sequences
from arc_nb.vocab import kept_tokens, small_tokenizer, keep_rows

GIB = 2**30
QWEN3 = {'qwen3-4b': dict(hidden_size=2560, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                          intermediate_size=9728, vocab_size=151936, tie_word_embeddings=True),
         'smoke': dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       intermediate_size=128, vocab_size=4096, tie_word_embeddings=True)}
NVARC_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'embed_tokens', 'lm_head')
VARIANT = 'fused+compiled'  # what FastDecoder does on CUDA

def random_qwen3(shape):
    "A random Qwen3 of QWEN3[shape] (bf16 on the GPU, fp32 on the CPU) and arc_nb's compact tokenizer (ids below its vocabulary)."
    from transformers import Qwen3Config, Qwen3ForCausalLM
    tok = make_compact_tokenizer()
    cfg = Qwen3Config(**QWEN3[shape], max_position_embeddings=16384, rope_theta=1e6, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device(DEV): m = Qwen3ForCausalLM(cfg)
    if CUDA: m = m.to(torch.bfloat16)
    return m.eval(), tok

def randomize(m, seed=0, b_std=1e-3):
    "Every LoRA tensor random (the projections' and the embedding's), B small: a trained-looking adapter whose every part computes."
    g = torch.Generator(device=m.device).manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if 'lora_' not in n: continue
            r = torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype)
            p.copy_(r / math.sqrt(p.shape[-1]) if ('lora_A' in n or 'lora_embedding_A' in n) else r * b_std)

def lora(m):
    m = attach_lora(m, rank=32, alpha=32, target_modules=NVARC_TARGETS, use_rslora=True)
    randomize(m, 0)
    return m

def step_rows(m, v, a):
    s = bench_steps(m, v, a.prompt_len, a.steps, [VARIANT])['rows']
    return {f"batch_{r['batch']}": dict(eager_step_ms=r['eager_step_ms'], graph_step_ms=r['graph_step_ms'], speedup=r['speedup'],
                                        captures=r['captures'], capture_s=r['capture_s']) for r in s.values()}

def equality(m, v, a, budget):
    q = bench_equality_biased(m, v, a.prompts, 0.1, budget, [VARIANT])
    c = q['compared'][VARIANT]
    return dict(same_sets_pct=100 * c['same_set_frac'], prompts=c['prompts'], with_candidates=c['with_candidates'],
                max_logprob_diff=c['max_logprob_diff'], eager_noise_same_sets_pct=100 * q['compared']['eager max_batch=1']['same_set_frac'],
                eager_s=q['eager_s'], graph_s=c['seconds'], differences=c['differences'][:10])

def sec_qwen3(a, st):
    m, tok = random_qwen3(a.qwen3_shape)
    v = check_tokenizer(tok)
    st['base'] = (m, tok)
    pm = lora(m)
    steps = step_rows(pm, v, a)
    eq = equality(pm, v, a, a.eq_budget_s)
    st['qwen3_steps'] = steps
    res = dict(shape=QWEN3[a.qwen3_shape], lora='r32 alpha 32, rsLoRA, targets ' + ','.join(NVARC_TARGETS),
               graph_step_ms=steps['batch_1']['graph_step_ms'], eager_step_ms=steps['batch_1']['eager_step_ms'], steps=steps, **eq)
    st['base'] = (pm.unload(), tok)  # the base model back, without LoRA layers, for shrink_vocab
    return res

def sec_shrink(a, st):
    if 'base' not in st: st['base'] = random_qwen3(a.qwen3_shape)
    m, tok = st.pop('base')
    before = m.get_input_embeddings().weight.shape[0]
    steps0 = st.get('qwen3_steps')
    if steps0 is None:  # the section alone: the full vocabulary's steps first
        pm0 = lora(m); steps0 = step_rows(pm0, check_tokenizer(tok), a); m = pm0.unload()
    kept = kept_tokens(tok)
    keep_rows(m, [i for _, i in kept])
    tok2 = small_tokenizer(kept, tok)
    v2 = check_tokenizer(tok2)
    pm = lora(m)
    steps1 = step_rows(pm, v2, a)
    eq = equality(pm, v2, a, a.eq_budget_s / 2)
    return dict(vocab_before=before, vocab_after=len(kept), decode_step_ms_before=steps0['batch_1']['graph_step_ms'],
                decode_step_ms_after=steps1['batch_1']['graph_step_ms'], steps_before=steps0, steps_after=steps1,
                same_sets_pct=eq['same_sets_pct'], prompts=eq['prompts'], equality=eq)

def mem_now():
    free, total = torch.cuda.mem_get_info()
    return (total - free) / GIB, torch.cuda.memory_reserved() / GIB

def sec_quant(a, st, four_bit):
    path = st.get('llama_path')
    if path is None:
        path = Path(os.environ.get('BENCH_DISK', tempfile.gettempdir())) / f'models-{a.llama_shape}'
        if not (path / 'config.json').exists():
            t, (path, n) = clock(lambda: save_llama(a.llama_shape, path)); log(f'  saved {a.llama_shape} in {t:.0f}s')
        st['llama_path'] = path
    if CUDA: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    t_load, (m, tok) = clock(lambda: load_base(path, device=DEV, dtype='bfloat16' if CUDA else 'float32', load_in_4bit=four_bit))
    used, reserved = mem_now() if CUDA else (0, 0)
    context = used - reserved  # the CUDA context and anything outside torch's allocator
    weights_gb = torch.cuda.memory_allocated() / GIB if CUDA else 0
    m = attach_lora(m, rank=32, alpha=32)
    v = check_tokenizer(tok)
    rows = []
    for ck in ('on', 'off'):
        cfg = TTTConfig(lora_rank=32, max_seq_len=a.train_len + 8, gradient_checkpointing=ck, lr=1e-4)
        try:
            train_sequences(m, [synthetic(a.train_len, v, seed=i) for i in range(2)], cfg)  # warm-up
            t, r = clock(lambda: train_sequences(m, [synthetic(a.train_len, v, seed=10 + i) for i in range(a.train_steps)], cfg))
            rows.append(dict(checkpointing=ck, tokens_per_s=r.tokens / t, step_s=t / a.train_steps,
                             peak_reserved_gb=torch.cuda.max_memory_reserved() / GIB if CUDA else None))
        except torch.OutOfMemoryError:
            rows.append(dict(checkpointing=ck, oom=True)); m.zero_grad(set_to_none=True)
        log('  ', rows[-1])
        if ck == 'on' and CUDA: peak_train = torch.cuda.max_memory_reserved() / GIB
        if CUDA: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    steps = bench_steps(m, v, a.prompt_len, a.steps, [] if four_bit else [VARIANT])['rows']
    peak_decode = torch.cuda.max_memory_reserved() / GIB if CUDA else 0
    b1 = [r for r in steps.values() if r['batch'] == 1]
    eager1 = None
    if not steps:  # bench_steps reports eager times inside variant rows only: time eager alone
        from decode_bench import median_step
        from arc_nb.search import forward
        eager1 = {}
        for b in (1, 16):
            prompt = torch.randint(3, 13, (a.prompt_len,)).tolist()
            _, cache = forward(m, torch.tensor([prompt], device=DEV), last_only=True)
            if b > 1: cache.batch_repeat_interleave(b)
            ids = torch.full((b, 1), v.cells[0], device=DEV)
            with torch.inference_mode(): eager1[b], _ = median_step(lambda i: forward(m, ids, cache), a.steps)
            del cache
        peak_decode = torch.cuda.max_memory_reserved() / GIB if CUDA else 0
    from arc_nb.fastdecode import unsupported
    why = unsupported(m)
    mem = (peak_train + context) if CUDA else 0  # a training process, the larger role (the decode peak holds bench_steps' 16-row caches)
    ck_on = next(r for r in rows if r['checkpointing'] == 'on')
    res = dict(model=f'random {a.llama_shape} Llama, ' + ('NF4 4-bit (bitsandbytes), bf16 compute' if four_bit else 'bf16'),
               load_s=t_load, weights_gb=weights_gb, context_gb=context if CUDA else None,
               train_tokens_per_s=ck_on.get('tokens_per_s'), train_len=a.train_len, train_rows=rows,
               decode_path='eager (' + why + ')' if why else 'graph decoder (' + VARIANT + ')',
               decode_step_ms=b1[0]['graph_step_ms'] if b1 else eager1[1] * 1e3,
               decode_step_ms_batch16=(next(r['graph_step_ms'] for r in steps.values() if r['batch'] == 16) if steps else eager1[16] * 1e3),
               eager_step_ms=b1[0]['eager_step_ms'] if b1 else eager1[1] * 1e3,
               peak_train_reserved_gb=peak_train if CUDA else None, peak_decode_reserved_gb=peak_decode,
               mem_gb_per_process=mem, slots_in_24gb=int(24 // mem) if mem else None)
    m = None  # freed before the next section loads its model
    if CUDA: torch.cuda.empty_cache()
    return res

def sec_run_4bit(a, st):
    path = st.get('llama_path') or Path(os.environ.get('BENCH_DISK', tempfile.gettempdir())) / f'models-{a.llama_shape}'
    out = Path(os.environ.get('BENCH_DISK', tempfile.gettempdir())) / 'run-4bit'
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, '-c', 'import sys; from arc_nb.cli import main; sys.exit(main())', 'run', '--out', str(out), '--model', str(path), '--data', 'arc-agi-1/evaluation',
           '--tasks', 'smallest:3', '--train-slots', '1', '--infer-slots', '1', '--epochs', '2', '--n', '4', '--min-prob', '0.3',
           '--max-new-tokens', '64', '--load-in-4bit', 'true', '--time-budget', str(a.run_budget_s), '--quiet']
    if not CUDA: cmd = [c for c in cmd if c not in ('--load-in-4bit', 'true')] + ['--gpus', 'cpu']
    t, p = clock(lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=a.run_budget_s + 240))
    ev = [json.loads(l) for l in (out / 'events.jsonl').read_text().splitlines() if l.strip()] if (out / 'events.jsonl').exists() else []
    kinds = {}
    for e in ev: kinds[e.get('event')] = kinds.get(e.get('event'), 0) + 1
    def secs(kind): return [round(e.get('seconds', 0), 1) for e in ev if e.get('event') == kind]
    logs = ''.join(f.read_text()[-1500:] for f in sorted((out / 'logs').glob('*.log'))) if (out / 'logs').exists() else ''
    return dict(command=' '.join(cmd), rc=p.returncode, wall_s=t, stdout_tail=p.stdout[-1500:], stderr_tail=p.stderr[-1500:],
                events=kinds, train_s=secs('train_end'), infer_s=secs('infer_end'), submission=(out / 'submission.json').exists(),
                eager_note='decoding eagerly' in logs, log_tail=logs[-2000:])

SECTIONS = {'qwen3': sec_qwen3, 'shrink_vocab': sec_shrink, 'bf16': lambda a, st: sec_quant(a, st, False),
            'four_bit': lambda a, st: sec_quant(a, st, True), 'run_4bit': sec_run_4bit}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'results'/'models.json'))
    ap.add_argument('--sections', default='qwen3,shrink_vocab', help='comma-separated: ' + ', '.join(SECTIONS) + " ('quant' = bf16,four_bit)")
    ap.add_argument('--smoke', action='store_true', help='tiny shapes on the CPU: checks the code, measures nothing')
    ap.add_argument('--prompts', type=int, default=24, help='real prompts for the equality check')
    ap.add_argument('--eq-budget-s', type=float, default=150, help='seconds of eager search for the equality check (shrink_vocab: half)')
    ap.add_argument('--steps', type=int, default=10, help='timed decode steps (median)')
    ap.add_argument('--prompt-len', type=int, default=2048)
    ap.add_argument('--train-len', type=int, default=1700)
    ap.add_argument('--train-steps', type=int, default=6)
    ap.add_argument('--run-budget-s', type=float, default=150)
    a = ap.parse_args()
    a.qwen3_shape, a.llama_shape = ('smoke', 'smoke') if a.smoke else ('qwen3-4b', '7b')
    if a.smoke: a.prompts, a.eq_budget_s, a.steps, a.prompt_len, a.train_len, a.train_steps, a.run_budget_s = 2, 20, 2, 64, 64, 2, 60
    out = Path(a.out); out = out if out.suffix == '.json' else out/'models.json'
    res = json.loads(out.read_text()) if out.exists() else {}
    names = [s for x in a.sections.split(',') for s in (('bf16', 'four_bit') if x == 'quant' else (x,))]
    res.setdefault('info', {})[','.join(names)] = dict(
        date=time.strftime('%Y-%m-%d %H:%M:%S'), gpu=torch.cuda.get_device_name(0) if CUDA else platform.processor() or 'cpu',
        torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__, command=' '.join(sys.argv))
    st = {}
    for name in names:
        if a.smoke and name == 'four_bit': res[name] = dict(skipped='4-bit needs bitsandbytes and a GPU'); continue
        t0 = time.time(); log(f'== {name} ({time.time() - T0:.0f}s)')
        try: res[name] = SECTIONS[name](a, st)
        except Exception: res[name] = dict(error=traceback.format_exc()); log(res[name]['error'])
        res[name]['section_s'] = time.time() - t0
        out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1, default=str))
        log({k: (round(x, 3) if isinstance(x, float) else x) for k, x in res[name].items() if not isinstance(x, (dict, list))})
    log(f'wrote {out} ({time.time() - T0:.0f}s)')

if __name__ == '__main__':
    main()
