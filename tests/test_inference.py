"dfs_sample against brute-force enumeration on several small models; dfs_batch, score_batch and the batched backend against them; atomic predictions under SIGKILL; vLLM (skipped where absent)."
import importlib.util, json, math, os, signal, subprocess, sys, textwrap, time
import numpy as np
import pytest
import torch
import transformers
transformers.utils.logging.disable_progress_bar()
from arc_nb.encoding import check_tokenizer, make_compact_tokenizer, encode_prompt
from arc_nb.search import dfs_sample, dfs_recursive, dfs_batch, WORK
from arc_nb.inference import score_candidates, score_batch
from arc_nb.testing import llama, gpt2, with_lora, boost_eos, peaked, enumerate_sequences, small_model, memorize_answers, LoopBackend

TOK = make_compact_tokenizer()
V = check_tokenizer(TOK)

MODELS = {'llama-a': lambda: boost_eos(peaked(llama(0), 10), 2.0), 'llama-b-gqa': lambda: boost_eos(peaked(llama(5, 3, 48), 14), 3.0),
          'gpt2': lambda: boost_eos(peaked(gpt2(2), 10), 2.0), 'llama-lora': lambda: boost_eos(peaked(with_lora(llama(3)), 8), 2.0)}
PROMPTS = [encode_prompt(V, [([[1, 2]], [[2, 1]])], [[3, 4]]).input_ids.tolist(),
           encode_prompt(V, [([[0, 5, 5], [5, 0, 0]], [[7]])], [[9, 9, 9]]).input_ids.tolist(),
           [V.bos, 15, 14, 4, 14, 16, 14]]

@pytest.mark.parametrize('name', list(MODELS))
def test_dfs_matches_brute_force(name):
    m = MODELS[name]()
    total = 0
    for prompt in PROMPTS:
        for p in (0.9, 0.3, 0.05, 0.01, 0.002):
            ref = enumerate_sequences(m, prompt, depth=3, eos_token_id=V.eos, min_prob=p)
            for mb in (None, 1, 3):
                got = dfs_sample(m, prompt, min_prob=p, max_new_tokens=3, eos_token_id=V.eos, max_batch=mb)
                assert [s for s, _ in got] == [s for s, _ in ref], (name, p, mb)
                assert np.allclose([l for _, l in got], [l for _, l in ref], atol=1e-5)
            rec = dfs_recursive(m, prompt, min_prob=p, max_new_tokens=3, eos_token_id=V.eos)
            assert [s for s, _ in rec] == [s for s, _ in ref]
            total += len(ref)
            if ref:  # rescoring agrees with the search
                assert np.allclose(score_candidates(m, prompt, [s for s, _ in ref]), [l for _, l in ref], atol=1e-4)
    assert total > 0  # the models are peaked enough that something qualifies

def test_no_continuation_qualifies():
    m = llama(1)  # near-uniform over 17 tokens: nothing reaches 0.5
    assert dfs_sample(m, PROMPTS[0], min_prob=0.5, max_new_tokens=5, eos_token_id=V.eos) == []

def test_frontier_stays_bounded():
    "At most floor(1/min_prob) live branches: count forward batch sizes."
    m = peaked(llama(0), 6)
    sizes = []
    h = m.register_forward_pre_hook(lambda mod, args, kw: sizes.append(kw['input_ids'].shape[0]), with_kwargs=True)
    dfs_sample(m, PROMPTS[0], min_prob=0.05, max_new_tokens=6, eos_token_id=V.eos)
    h.remove()
    assert max(sizes) <= 20 and len(sizes) > 1

# --- all the views of a test input in one batch: dfs_batch, score_batch, the batched backend ------------------------
from transformers import MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM
BATCH_MODELS = {**MODELS, 'gpt2': lambda: boost_eos(peaked(gpt2(2), 8), 4.0),  # absolute positions; ends often enough to find something
                'mistral': lambda: boost_eos(peaked(small_model(MistralForCausalLM, MistralConfig, 4), 10), 2.0),
                'mistral-window': lambda: boost_eos(peaked(small_model(MistralForCausalLM, MistralConfig, 4, sliding_window=12), 10), 2.0),
                'qwen2': lambda: boost_eos(peaked(small_model(Qwen2ForCausalLM, Qwen2Config, 6), 10), 2.0)}
USEFUL = ('rows', 'kv', 'tokens', 'ctx')

def same(got, ref, atol):
    assert [[s for s, _ in g] for g in got] == [[s for s, _ in r] for r in ref]
    assert np.allclose([l for g in got for _, l in g], [l for r in ref for _, l in r], atol=atol, rtol=0)

def rows_per_pass(m):
    "A hook recording each forward's (rows, cached length, new length); remove it with .remove()."
    seen = []
    def pre(mod, a, kw):
        c = kw.get('cache', kw.get('past_key_values'))
        seen.append((kw['input_ids'].shape[0], c.get_seq_length() if c is not None else 0, kw['input_ids'].shape[1]))
    h = m.register_forward_pre_hook(pre, with_kwargs=True)
    h.seen = seen
    return h

@pytest.mark.parametrize('name', list(BATCH_MODELS))
def test_dfs_batch_matches_dfs_sample(name):
    """Prompts of 19, 24 and 7 tokens searched together, each with its own max_new_tokens: each prompt's dfs_sample list
    (same order, log-probs within 1e-5) at five thresholds and greedy, in passes of any size up to max_batch; the same
    useful work as the prompts one at a time, in as many passes as the deepest prompt's search."""
    m, limits, found, h = BATCH_MODELS[name](), [3, 4, 2], 0, None
    try:
        h = rows_per_pass(m)
        for p in (0.9, 0.3, 0.05, 0.01, 0.002):
            ref, alone = [], []
            for q, k in zip(PROMPTS, limits):
                w0 = WORK.copy()
                ref.append(dfs_sample(m, q, min_prob=p, max_new_tokens=k, eos_token_id=V.eos))
                alone.append(WORK.since(w0))
            for mb in (None, 3, 1) if p >= 0.05 else (None, 3):
                h.seen.clear(); w0 = WORK.copy()
                same(dfs_batch(m, PROMPTS, min_prob=p, max_new_tokens=limits, eos_token_id=V.eos, max_batch=mb), ref, 1e-5)
                assert max(r for r, _, _ in h.seen) <= (mb or 3 * int(1 / p)), (p, mb)
                if mb is None:
                    w = WORK.since(w0)
                    assert {k: w[k] for k in USEFUL} == {k: sum(a[k] for a in alone) for k in USEFUL}
                    assert w['steps'] == max(a['steps'] for a in alone) and len(h.seen) == 1 + w['steps']
            found += sum(map(len, ref))
        same(dfs_batch(m, PROMPTS, min_prob=0.05, max_new_tokens=3, eos_token_id=V.eos),  # one limit for all
             [dfs_sample(m, q, min_prob=0.05, max_new_tokens=3, eos_token_id=V.eos) for q in PROMPTS], 1e-5)
    finally:
        h.remove()
    # greedy, with every token in turn as the end token: some runs end, others reach their limit (and give nothing)
    ends = []
    for eos in range(len(TOK)):
        ref = [dfs_sample(m, q, min_prob=None, max_new_tokens=k, eos_token_id=eos) for q, k in zip(PROMPTS, (6, 9, 4))]
        for mb in (None, 1) if eos == V.eos else (None,):
            same(dfs_batch(m, PROMPTS, min_prob=None, max_new_tokens=[6, 9, 4], eos_token_id=eos, max_batch=mb), ref, 1e-5)
        ends += [len(r) for r in ref]
    assert found > 0 and 0 < sum(ends) < len(ends)

@pytest.mark.parametrize('name', list(BATCH_MODELS))
def test_score_batch_matches_score_candidates(name):
    """Each prompt's score_candidates (within 1e-4) from one batch of all prompts and candidates (found ones and random
    ones of 1 to 9 tokens; a prompt with none), and in passes capped by max_tokens."""
    m, rng = BATCH_MODELS[name](), np.random.default_rng(0)
    rand = lambda k: [int(t) for t in rng.integers(0, len(TOK), k)] + [V.eos]
    prompts = PROMPTS + [PROMPTS[0][:5]]
    cands = [[s for s, _ in dfs_sample(m, q, min_prob=0.02, max_new_tokens=4, eos_token_id=V.eos)] + [rand(k) for k in ks]
             for q, ks in zip(PROMPTS, ([0, 6], [2], [3, 0, 8]))] + [[]]
    ref = [score_candidates(m, p, c) for p, c in zip(prompts, cands)]
    h = rows_per_pass(m)
    try:
        for cap in (None, 1, 64, 300):
            h.seen.clear()
            got = score_batch(m, prompts, cands, cap)
            assert [len(g) for g in got] == [len(c) for c in cands]
            assert np.allclose(np.concatenate(got), np.concatenate(ref), atol=1e-4, rtol=0), cap
            assert len(h.seen) == 2 if cap is None else all(r == 1 or r * (c + n) <= cap for r, c, n in h.seen)
    finally:
        h.remove()

@pytest.fixture(scope='module')
def task_learned():
    """A small task (two test inputs, prompts of 53 to 58 tokens) and a tiny Llama trained on its answers (identity view):
    it writes grids, different ones under different views."""
    from arc_nb.data import parse_task
    g = lambda *rows: [list(r) for r in rows]
    entry = {'train': [{'input': g([1, 2, 0], [0, 3, 0]), 'output': g([0, 2, 1], [0, 3, 0])},
                       {'input': g([4, 4], [5, 0], [0, 6]), 'output': g([4, 4], [0, 5], [6, 0])}],
             'test': [{'input': g([7, 0, 8], [0, 9, 1])}, {'input': g([2, 2, 3])}]}
    task = parse_task('flip', entry, [g([8, 0, 7], [1, 9, 0]), g([3, 2, 2])])
    m = llama(0, hidden=32)
    assert memorize_answers(m, V, task, steps=150, lr=1e-2) < 0.01
    return m, task

@pytest.mark.parametrize('min_prob,max_batch', [(0.01, None), (0.05, 3), (None, None)])
def test_predict_task_batched_equals_loop(task_learned, min_prob, max_batch):
    """predict_task with the batched HFBackend decides what the view-at-a-time LoopBackend does: the same candidates,
    found by the same views, the same attempts; the same decode rows and keys in fewer passes."""
    from arc_nb.inference import predict_task, InferConfig, HFBackend
    m, task = task_learned
    cfg = InferConfig(n=4, min_prob=min_prob, max_batch=max_batch, max_new_tokens=40)
    a, b = predict_task(LoopBackend(m, V.eos, max_batch), V, task, cfg), predict_task(HFBackend(m, V.eos, max_batch), V, task, cfg)
    assert [p.attempts for p in a] == [p.attempts for p in b] and [p.malformed for p in a] == [p.malformed for p in b]
    for x, y in zip(a, b):
        assert [(c.grid, c.found_by) for c in x.candidates] == [(c.grid, c.found_by) for c in y.candidates]
        assert np.allclose([c.dfs_logprob for c in x.candidates], [c.dfs_logprob for c in y.candidates], atol=1e-5, rtol=0)
        assert np.allclose([c.scores for c in x.candidates], [c.scores for c in y.candidates], atol=1e-4, rtol=0)
        assert (x.work['rows'], x.work['kv']) == (y.work['rows'], y.work['kv'])
        assert max_batch is not None or y.work['steps'] < x.work['steps']  # all views' branches in one pass per level
    assert all(len({k for c in p.candidates for k in c.found_by}) > 1 for p in b)  # several views found candidates

WRITER = textwrap.dedent('''
    import sys, itertools
    from arc_nb.inference import write_predictions, TestPrediction, Candidate
    path = sys.argv[1]
    big = [[i % 10] * 30 for i in range(30)]
    for i in itertools.count():
        preds = [TestPrediction(0, [Candidate(big, [0, 1], -1.0, [-1.0, -2.0]) for _ in range(200)], [big, big], [], i)]
        write_predictions(path, 'task%d' % i, preds)
        if i == 0: print('started', flush=True)
''')

def test_predictions_file_survives_sigkill(tmp_path):
    path = tmp_path / 'predictions.json'
    rng = np.random.default_rng(0)
    for trial in range(6):
        p = subprocess.Popen([sys.executable, '-c', WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == 'started'
        time.sleep(float(rng.uniform(0.01, 0.3)))
        os.kill(p.pid, signal.SIGKILL); p.wait()
        d = json.loads(path.read_text())  # never half a file
        assert d['task'].startswith('task') and len(d['tests'][0]['candidates']) == 200
    assert not [f for f in tmp_path.iterdir() if f.name != 'predictions.json' and not f.name.endswith('.tmp')]

@pytest.mark.skipif(importlib.util.find_spec('vllm') is None, reason='vLLM is not installed here (optional extra; not on the CPU CI machine nor the GPU machine)')
def test_vllm_backend_runs(tmp_path):
    if not torch.cuda.is_available(): pytest.skip('vLLM needs a GPU')
    from arc_nb.model import make_tiny_model, load_base, attach_lora, save_adapter
    from arc_nb.inference import VLLMBackend, predict_task, InferConfig
    from arc_nb.data import load_tasks
    d = make_tiny_model(tmp_path / 'tiny')
    m, tok = load_base(d); m = attach_lora(m, rank=8); save_adapter(m, tmp_path / 'a')
    task = next(iter(load_tasks('arc-agi-2/evaluation').values()))
    vb = VLLMBackend.load(d, max_lora_rank=8, max_model_len=8192).use(tmp_path / 'a')
    preds = predict_task(vb, check_tokenizer(tok), task, InferConfig(n=2, min_prob=0.1))
    assert len(preds) == len(task.test) and all(len(p.attempts) == 2 for p in preds)

# --- the static-cache / CUDA-graph decoder (arc_nb.fastdecode) -------------------------------------------
from arc_nb.fastdecode import FastDecoder, fast_decoder, pow2
from arc_nb.testing import small_model
from transformers import MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

class Dry(FastDecoder):
    "The graph path's shapes on the CPU: each bucket's 'graph' replays its padded, masked step eagerly."
    def _capture(self, b, L):
        assert b <= self.rows and L <= self.length
        out = self._step_impl(b, L).clone()
        g = type('G', (), {'replay': lambda s: out.copy_(self._step_impl(b, L))})()
        self._graphs[(b, L)] = (g, out); self.stats['captures'] += 1
        return g, out

def assert_same(got, ref, atol=1e-5):
    "Per prompt: the same sequences in the same order, log-probs within atol."
    assert len(got) == len(ref)
    for k, (g, r) in enumerate(zip(got, ref)):
        assert [s for s, _ in g] == [s for s, _ in r], k
        assert np.allclose([l for _, l in g], [l for _, l in r], atol=atol, rtol=0), k

def per_prompt(m, prompts, p, news):
    "The oracle: dfs_sample on each prompt alone."
    news = news if isinstance(news, list) else [news] * len(prompts)
    return [dfs_sample(m, q, min_prob=p, max_new_tokens=n, eos_token_id=V.eos) for q, n in zip(prompts, news)]

from transformers import Qwen3Config, Qwen3ForCausalLM

def qwen3(seed=2, lora=True, **kw):
    """A small random Qwen3 (GQA: 6 query heads, 2 key/value heads; per-head q/k RMSNorms), its norms' weights random
    (q's and k's differ: a swap would show), under a peft LoRA on all projections."""
    m = small_model(Qwen3ForCausalLM, Qwen3Config, seed, head_dim=8, **kw)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith('norm.weight'):
                p.uniform_(0.5, 1.5)
    return boost_eos(peaked(with_lora(m) if lora else m, 10), 2.0)

# prompts of four different lengths, searched as one batch
BATCH = [PROMPTS[1], PROMPTS[0][:-1] + [V.cells[i % 10] for i in range(13)] + PROMPTS[0][-1:], PROMPTS[2], PROMPTS[0]]
STATIC_MODELS = {**{k: f for k, f in MODELS.items() if k != 'gpt2'},
                'mistral': lambda: boost_eos(peaked(small_model(MistralForCausalLM, MistralConfig, 1, sliding_window=None), 10), 2.0),
                'qwen2': lambda: boost_eos(peaked(small_model(Qwen2ForCausalLM, Qwen2Config, 2), 10), 2.0),
                'qwen3-lora': lambda: qwen3(), 'qwen3-bias': lambda: qwen3(3, attention_bias=True)}

@pytest.mark.parametrize('name', list(MODELS))
def test_static_decoder_matches_dfs_sample(name):
    "fp32 on the CPU: the static-cache DFS gives dfs_sample's list, same order, log-probs within 1e-5; GPT-2 keeps dfs_sample."
    m = MODELS[name]()
    if name == 'gpt2':
        assert fast_decoder(m, 'static') is None
        return
    fd, total = FastDecoder(m, max_rows=512), 0
    for prompt in PROMPTS:
        for p in (0.9, 0.3, 0.05, 0.01, 0.002, None):
            for n in (3, 9):
                ref = dfs_sample(m, prompt, min_prob=p, max_new_tokens=n, eos_token_id=V.eos)
                got = fd.dfs(prompt, min_prob=p, max_new_tokens=n, eos_token_id=V.eos)
                assert [s for s, _ in got] == [s for s, _ in ref], (name, p, n)
                assert np.allclose([l for _, l in got], [l for _, l in ref], atol=1e-5, rtol=0)
                total += len(ref)
    assert total > 0 and fd.stats['fallbacks'] == 0 and fd.stats['gathers'] > 0

@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU')
def test_graph_decoder_cuda():
    "On a GPU: graph replays give dfs_sample's candidates; in-place adapter swaps capture nothing new."
    from arc_nb.model import load_adapter_weights, save_adapter
    import tempfile
    from pathlib import Path
    m = boost_eos(peaked(with_lora(llama(3)), 8), 2.0).cuda()
    fd = FastDecoder(m, max_rows=512)
    assert fd.graphs
    d = Path(tempfile.mkdtemp())
    for i in range(3):
        with torch.no_grad():
            torch.manual_seed(i)
            for n, p in m.named_parameters():
                if 'lora_B' in n: p.normal_(0, 0.5)
        save_adapter(m, d/f'a{i}')
    captures = None
    for rnd in range(2):
        for i in range(3):
            load_adapter_weights(m, d/f'a{i}')
            for prompt in PROMPTS:
                for p in (0.3, 0.05, 0.01, None):
                    ref = dfs_sample(m, prompt, min_prob=p, max_new_tokens=9, eos_token_id=V.eos)
                    got = fd.dfs(prompt, min_prob=p, max_new_tokens=9, eos_token_id=V.eos)
                    assert [s for s, _ in got] == [s for s, _ in ref], (i, p)
                    assert np.allclose([l for _, l in got], [l for _, l in ref], atol=1e-4, rtol=0)
        if rnd == 0: captures = fd.stats['captures']
    assert captures > 0 and fd.stats['replays'] > 0 and fd.stats['eager_steps'] == 0
    assert fd.stats['captures'] == captures and fd.stats['invalidations'] == 0  # the second round: all replays, no capture
    assert fd.compile and fd._layers is not None and fd.stats['lora_refreshes'] == 6  # the default on a GPU: the fused, compiled step
    # a longer prompt grows the cache: new buffers, graphs captured again into a fresh memory pool, same results
    long = PROMPTS[0][:-1] + [V.cells[i % 10] for i in range(300)] + PROMPTS[0][-1:]
    allocs, captures = fd.stats['allocs'], fd.stats['captures']
    for prompt in (long, PROMPTS[1]):
        ref = dfs_sample(m, prompt, min_prob=0.05, max_new_tokens=9, eos_token_id=V.eos)
        got = fd.dfs(prompt, min_prob=0.05, max_new_tokens=9, eos_token_id=V.eos)
        assert [s for s, _ in got] == [s for s, _ in ref] and np.allclose([l for _, l in got], [l for _, l in ref], atol=1e-4, rtol=0)
    assert fd.stats['allocs'] == allocs + 1 and fd.stats['captures'] > captures and fd.stats['eager_steps'] == 0
    assert fast_decoder(m) is not None and fast_decoder(m).graphs  # 'auto' on a GPU
    # all prompts as one batch (different lengths, per-prompt max_new_tokens): each prompt's dfs_sample list
    prompts = BATCH + [long]
    for rnd in range(2):
        for p in (0.01, 0.05, 0.3, None):  # the most rows first: the cache grows once
            news = [9, 5, 9, 7, 9]
            got = fd.dfs_batch(prompts, min_prob=p, max_new_tokens=news, eos_token_id=V.eos)
            assert_same(got, per_prompt(m, prompts, p, news), atol=1e-4)
        if rnd == 0: captures, allocs = fd.stats['captures'], fd.stats['allocs']
    # a second batch of the same shapes: replays only
    assert (fd.stats['captures'], fd.stats['allocs']) == (captures, allocs) and fd.stats['eager_steps'] == 0
    assert all(b <= fd.rows for b, _ in fd._graphs) and fd.stats['fallbacks'] == 0

def test_compiled_step_matches_dfs_sample():
    "The step's elementwise functions through torch.compile (inductor, here on the CPU): the same lists as dfs_sample."
    m = MODELS['llama-lora']()
    fd = FastDecoder(m, max_rows=512, compile=True)
    for prompt in PROMPTS[:2]:
        for p in (0.05, None):
            ref = dfs_sample(m, prompt, min_prob=p, max_new_tokens=8, eos_token_id=V.eos)
            got = fd.dfs(prompt, min_prob=p, max_new_tokens=8, eos_token_id=V.eos)
            assert [s for s, _ in got] == [s for s, _ in ref], p
            assert np.allclose([l for _, l in got], [l for _, l in ref], atol=1e-5, rtol=0)
    assert fd.compile and fd._layers is not None and fd.stats['eager_steps'] > 0

@pytest.mark.parametrize('name', ['llama-b-gqa', 'llama-lora'])
def test_graph_buckets_dry_run(name):
    "The graph path's shapes (rows padded to a power of two, attention over a masked length bucket), replayed eagerly on the CPU."
    m = MODELS[name]()
    fd = Dry(m, graphs=True, max_rows=512, min_len=16)
    for prompt in PROMPTS:
        for p in (0.3, 0.05, 0.002, None):
            ref = dfs_sample(m, prompt, min_prob=p, max_new_tokens=12, eos_token_id=V.eos)
            got = fd.dfs(prompt, min_prob=p, max_new_tokens=12, eos_token_id=V.eos)
            assert [s for s, _ in got] == [s for s, _ in ref], p
            assert np.allclose([l for _, l in got], [l for _, l in ref], atol=1e-5, rtol=0)
    assert fd.stats['replays'] > 0 and fd.stats['eager_steps'] == 0

@pytest.mark.parametrize('mode', ['static', 'dry-graph'])
@pytest.mark.parametrize('name', list(STATIC_MODELS))
def test_static_dfs_batch_matches_dfs_sample(name, mode):
    """dfs_batch over prompts of different lengths = dfs_sample on each alone (same lists, same order, log-probs within 1e-5),
    for every threshold and greedy, one max_new_tokens for all or one per prompt; static cache, and the graph path's buckets."""
    m = STATIC_MODELS[name]()
    fd = FastDecoder(m, max_rows=512) if mode == 'static' else Dry(m, graphs=True, max_rows=512, min_len=16)
    assert len({len(p) for p in BATCH}) == 4
    probs = (0.9, 0.3, 0.05, 0.01, 0.002, None) if mode == 'static' else (0.3, 0.01, None)
    found, multi = 0, 0
    for p in probs:
        for news in (9, [3, 9, 6, 1]):
            ref = per_prompt(m, BATCH, p, news)
            assert_same(fd.dfs_batch(BATCH, min_prob=p, max_new_tokens=news, eos_token_id=V.eos), ref)
            found += sum(map(len, ref))
            multi += sum(len(r) > 0 for r in ref) > 1  # several prompts with candidates in one batch
    assert found > 20 and multi > 2 and fd.stats['fallbacks'] == 0 and fd.stats['gathers'] > 0
    if mode == 'dry-graph':
        assert fd.stats['replays'] > 0 and fd.stats['eager_steps'] == 0 and any(b > 4 for b, _ in fd._graphs)
    if name == 'llama-lora':  # LoRA switched off, then on again: the decoder follows
        with m.disable_adapter():
            for p in (0.05, None):
                assert_same(fd.dfs_batch(BATCH, min_prob=p, max_new_tokens=9, eos_token_id=V.eos), per_prompt(m, BATCH, p, 9))
        assert_same(fd.dfs_batch(BATCH, min_prob=0.05, max_new_tokens=9, eos_token_id=V.eos), per_prompt(m, BATCH, 0.05, 9))
        assert fd.stats['invalidations'] == (2 if mode == 'dry-graph' else 0)  # captured graphs baked the switch in: captured again

def test_dfs_batch_chunks_by_memory():
    """A cache budget of 20 rows: the prompts go in several batches (two of 10 rows at min_prob 0.1; a prompt that outgrows its
    rows is searched eagerly); the same lists, the cache within the budget."""
    m = MODELS['llama-b-gqa']()
    fd = Dry(m, graphs=True, max_rows=512, min_len=16)
    L = pow2(max(map(len, BATCH)) + 10, 16)
    fd.max_cache_gb = 20 * fd.row_bytes(L) / 2**30
    for p, news, batches, eager in ((0.1, 10, 2, 0), (0.05, [10, 4, 10, 7], 4, 0), (0.002, 10, 4, 3), (None, [10, 3, 10, 10], 1, 0)):
        c0, f0 = fd.stats['chunks'], fd.stats['fallbacks']
        ref = per_prompt(m, BATCH, p, news)
        assert_same(fd.dfs_batch(BATCH, min_prob=p, max_new_tokens=news, eos_token_id=V.eos), ref)
        assert (fd.stats['chunks'] - c0, fd.stats['fallbacks'] - f0) == (batches, eager), p
        assert any(len(s) > 1 for r in ref for s, _ in r), p  # candidates that need decode steps
    assert (fd.rows, fd.length) == (20, L) and fd.rows * fd.row_bytes(fd.length) <= fd.cache_budget()
    assert fd.stats['replays'] > 0 and all(b <= 20 for b, _ in fd._graphs)

def test_dfs_batch_fallbacks():
    "A sliding window shorter than one prompt's search: that prompt alone runs eagerly; errors name the mismatch."
    m = boost_eos(peaked(small_model(MistralForCausalLM, MistralConfig, 1, sliding_window=20), 10), 2.0)
    fd = FastDecoder(m, max_rows=512)
    ref = per_prompt(m, BATCH, 0.01, 8)
    assert_same(fd.dfs_batch(BATCH, min_prob=0.01, max_new_tokens=8, eos_token_id=V.eos), ref)
    assert fd.stats['fallbacks'] == sum(len(p) + 8 > 20 for p in BATCH) and 0 < fd.stats['fallbacks'] < len(BATCH)
    with pytest.raises(ValueError, match='max_new_tokens for'):
        fd.dfs_batch(BATCH, min_prob=0.1, max_new_tokens=[3, 4], eos_token_id=V.eos)

# --- several tasks at once: each prompt through its task's SlotLoRA slot (issue 22, item 3) -----------------------------
from arc_nb.model import SlotLoRA
from arc_nb.search import OneSlot

def slot_model(name, K=3, std=0.2, seed=0, device=None):
    "A LoRA test model with a SlotLoRA of K distinct random slots: a row in the wrong slot would show."
    if name == 'tiny':  # arc_nb.model's tiny Llama (fp32) under attach_lora's default targets
        import tempfile
        from pathlib import Path
        from arc_nb.model import make_tiny_model, load_base, attach_lora
        m = attach_lora(load_base(make_tiny_model(Path(tempfile.mkdtemp()) / 'tiny', seed=1), device='cpu', dtype='float32')[0], rank=4)
        m = boost_eos(peaked(m, 12), 2.0)
    elif name == 'qwen2-lora':  # biases on q/k/v; GQA. Slots of std 0.2 make its batched log-probs drift by 1.1e-5 from
        # dfs_sample's (padding's rounding: the batch without slots drifts as much); 0.1 keeps within 1e-5
        m, std = boost_eos(peaked(with_lora(small_model(Qwen2ForCausalLM, Qwen2Config, 2)), 10), 2.0), min(std, 0.1)
    elif name == 'qwen3-lora':  # q/k norms after the slot's LoRA delta; std as qwen2-lora's
        m, std = qwen3(), min(std, 0.1)
    else:
        m = boost_eos(peaked(with_lora(llama(3)), 8), 2.0)
    m = m.to(device) if device else m  # the SlotLoRA is made where the model lives
    S = SlotLoRA(m, K)
    with torch.no_grad():
        torch.manual_seed(seed)
        S.weight.normal_(0, std)
    return m, S

# BATCH's prompts, two of them again under other slots
SLOT_PROMPTS, SLOT_KS, SLOT_NEWS = BATCH + BATCH[:2], [0, 1, 2, 1, 2, 0], [9, 5, 9, 7, 9, 6]

def slots_alone(m, S, prompts, ks, p, news):
    "The oracle: each prompt alone (dfs_sample) with its slot copied into peft's single adapter."
    out = []
    for q, k, n in zip(prompts, ks, news):
        S.to_adapter(k)
        out.append(dfs_sample(m, q, min_prob=p, max_new_tokens=n, eos_token_id=V.eos))
    return out

@pytest.mark.parametrize('name', ['tiny', 'llama-lora', 'qwen2-lora'])
def test_slots_dfs_batch_eager(name):
    """Eager dfs_batch with slots=(S, ks): each prompt's list is dfs_sample's with its slot in the single adapter (same
    sequences, same order, log-probs within 1e-5), at four thresholds and greedy, in passes of any size; within 5e-6 of
    the batch without slots (each slot in turn in the single adapter: the same padding; only the products' shapes round
    otherwise, about 2e-6 here);
    OneSlot gives dfs_sample's lists on a slot; the same prompt under the three slots gives three different lists."""
    m, S = slot_model(name)
    found = 0
    for p in (0.3, 0.05, 0.01, None):
        ref = slots_alone(m, S, SLOT_PROMPTS, SLOT_KS, p, SLOT_NEWS)
        kw = dict(min_prob=p, max_new_tokens=SLOT_NEWS, eos_token_id=V.eos)
        for mb in (None, 3):
            got = dfs_batch(m, SLOT_PROMPTS, max_batch=mb, slots=(S, SLOT_KS), **kw)
            assert_same(got, ref)
        plain = [None] * len(SLOT_PROMPTS)
        for k in range(S.K):
            S.to_adapter(k)
            for i, r in enumerate(dfs_batch(m, SLOT_PROMPTS, **kw)):
                plain[i] = r if SLOT_KS[i] == k else plain[i]
        assert_same(got, plain, atol=5e-6)
        assert_same([dfs_sample(OneSlot(S, k), q, min_prob=p, max_new_tokens=n, eos_token_id=V.eos)
                     for q, k, n in zip(SLOT_PROMPTS, SLOT_KS, SLOT_NEWS)], ref)
        found += sum(map(len, ref))
    assert found > 20 and S.rows is None
    a = slots_alone(m, S, [BATCH[0]] * 3, [0, 1, 2], 0.05, [9] * 3)
    assert a[0] != a[1] and a[1] != a[2] and a[0] != a[2]  # the slots really differ

@pytest.mark.parametrize('mode', ['static', 'dry-graph', 'modules'])
@pytest.mark.parametrize('name', ['tiny', 'llama-lora', 'qwen2-lora'])
def test_slots_static_dfs_batch(name, mode):
    """FastDecoder.dfs_batch with slots: the fused static step over all slots' buffers (masks from the cache's slot row),
    the graph path's buckets (dry, on the CPU), the modules step under S.route: each prompt's list as alone (within
    1e-5). A second round captures nothing; an in-place write into S.weight refreshes the buffers, invalidates nothing,
    and re-captures no bucket; a search without slots afterwards is the single adapter's; no weights check flips."""
    m, S = slot_model(name)
    fd = {'static': lambda: FastDecoder(m, max_rows=512), 'modules': lambda: FastDecoder(m, max_rows=512, fuse=False),
          'dry-graph': lambda: DrySlots(m, graphs=True, max_rows=512, min_len=16)}[mode]()
    probs = (0.01, 0.05, 0.3, None)  # the most rows first: the cache grows once
    refs = {p: slots_alone(m, S, SLOT_PROMPTS, SLOT_KS, p, SLOT_NEWS) for p in probs}
    for rnd in range(2):
        for p in probs:
            assert_same(fd.dfs_batch(SLOT_PROMPTS, min_prob=p, max_new_tokens=SLOT_NEWS, eos_token_id=V.eos, slots=(S, SLOT_KS)), refs[p])
        if rnd == 0:
            captures, graphs = fd.stats['captures'], dict(fd._sgraphs)
    assert fd.stats['captures'] == captures and fd.stats['invalidations'] == 0 and fd.stats['fallbacks'] == 0
    assert fd.stats['slot_refreshes'] == (0 if mode == 'modules' else 1)
    if mode == 'dry-graph':
        assert captures > 0 and fd.stats['eager_steps'] == 0 and fd._graphs == {} and any(b > 4 for b, _ in fd._sgraphs)
    with torch.no_grad():
        S.weight.mul_(1.25)  # in place (an optimizer step, a load): the version moves
    for p in (0.05, None):
        got = fd.dfs_batch(SLOT_PROMPTS, min_prob=p, max_new_tokens=SLOT_NEWS, eos_token_id=V.eos, slots=(S, SLOT_KS))
        assert_same(got, slots_alone(m, S, SLOT_PROMPTS, SLOT_KS, p, SLOT_NEWS))
    assert fd.stats['invalidations'] == 0 and all(fd._sgraphs[k] is g for k, g in graphs.items())
    assert fd.stats['slot_refreshes'] == (0 if mode == 'modules' else 2)
    S.to_adapter(1)  # without slots: peft's single adapter
    assert_same(fd.dfs_batch(BATCH, min_prob=0.05, max_new_tokens=9, eos_token_id=V.eos), per_prompt(m, BATCH, 0.05, 9))
    assert fd.stats['invalidations'] == 0 and S.rows is None

class DrySlots(Dry):
    "`Dry`, storing each bucket where the search looks it up (the slots' graphs apart from the single adapter's)."
    def _capture(self, b, L):
        g, out = super()._capture(b, L)
        self._buckets()[(b, L)] = self._graphs.pop((b, L))
        return g, out

def test_slots_fallback_and_errors():
    "Prompts whose branches outgrow the cache's rows fall back to dfs_sample through OneSlot, on their own slot; bad slots are named."
    m, S = slot_model('llama-lora')
    fd = FastDecoder(m, max_rows=2)
    got = fd.dfs_batch(SLOT_PROMPTS, min_prob=0.01, max_new_tokens=SLOT_NEWS, eos_token_id=V.eos, slots=(S, SLOT_KS))
    assert_same(got, slots_alone(m, S, SLOT_PROMPTS, SLOT_KS, 0.01, SLOT_NEWS))
    assert fd.stats['fallbacks'] > 0
    for f in (fd.dfs_batch, lambda *a, **k: dfs_batch(m, *a, **k)):
        with pytest.raises(ValueError, match='2 slot indices for 6 prompts'):
            f(SLOT_PROMPTS, min_prob=0.1, max_new_tokens=3, eos_token_id=V.eos, slots=(S, [0, 1]))
        with pytest.raises(ValueError, match=r'must be in \[0, 3\)'):
            f(SLOT_PROMPTS, min_prob=0.1, max_new_tokens=3, eos_token_id=V.eos, slots=(S, [0, 1, 2, 3, 0, 0]))

def test_slots_score_batch():
    "score_batch with slots: each prompt's score_candidates with its slot in the single adapter (within 1e-4), capped or not."
    m, S = slot_model('llama-lora')
    rng = np.random.default_rng(0)
    rand = lambda k: [int(t) for t in rng.integers(0, len(TOK), k)] + [V.eos]
    cands = [[rand(k) for k in ks] for ks in ([0, 6], [2], [3, 0, 8], [], [1, 4], [5])]
    ref = []
    for p, c, k in zip(SLOT_PROMPTS, cands, SLOT_KS):
        S.to_adapter(k)
        ref.append(score_candidates(m, p, c))
    for cap in (None, 1, 64):
        got = score_batch(m, SLOT_PROMPTS, cands, cap, slots=(S, SLOT_KS))
        assert np.allclose(np.concatenate(got), np.concatenate(ref), atol=1e-4, rtol=0), cap
    S.to_adapter(2)
    assert not np.allclose(score_candidates(m, SLOT_PROMPTS[0], cands[0]), ref[0], atol=1e-2)  # slot 2 scores otherwise

@pytest.mark.parametrize('decode', ['eager', 'static'])
def test_slots_predict_tasks(task_learned, decode):
    """predict_tasks: each (task, slot) item's predictions are predict_task's with the slot in the single adapter (same
    candidates, found by the same views, same attempts; scores within 1e-4), the eager and the static-cache paths; the
    batch's useful work is the runs' sum, in fewer decode passes; `tests` per item."""
    import copy
    from arc_nb.inference import predict_task, predict_tasks, InferConfig, HFBackend
    base, task = task_learned
    m = with_lora(copy.deepcopy(base), std=0.0)
    S = SlotLoRA(m, 3)
    with torch.no_grad():
        torch.manual_seed(1)
        S.weight.normal_(0, 0.1)
    cfg = InferConfig(n=4, min_prob=0.05, max_new_tokens=40, decode=decode)
    items = [(task, 0), (task, 2), (task, 1)]
    alone, works = [], []
    for t, k in items:
        S.to_adapter(k)
        w0 = WORK.copy()
        alone.append(predict_task(HFBackend(m, V.eos, decode=decode), V, t, cfg))
        works.append(WORK.since(w0))
    w0 = WORK.copy()
    got = predict_tasks(HFBackend(m, V.eos, decode=decode, slots=S), V, items, cfg)
    both = WORK.since(w0)
    for a, b in zip(alone, got):
        assert [(p.index, p.attempts, p.malformed, p.tokens) for p in a] == [(p.index, p.attempts, p.malformed, p.tokens) for p in b]
        for x, y in zip(a, b):
            assert [(c.grid, c.found_by) for c in x.candidates] == [(c.grid, c.found_by) for c in y.candidates]
            assert np.allclose([c.dfs_logprob for c in x.candidates], [c.dfs_logprob for c in y.candidates], atol=1e-5, rtol=0)
            assert np.allclose(sum([c.scores for c in x.candidates], []), sum([c.scores for c in y.candidates], []), atol=1e-4, rtol=0)
    assert sum(len(p.candidates) for g in got for p in g) > 3
    assert len({str([[c.grid for c in p.candidates] for p in g]) for g in got}) > 1  # the slots decide differently
    assert {k: both[k] for k in USEFUL} == {k: sum(w[k] for w in works) for k in USEFUL} and both['steps'] < sum(w['steps'] for w in works)
    sub = predict_tasks(S, V, items[:2], cfg, tests=[[1], None])  # a SlotLoRA as the backend
    assert [[(p.index, p.attempts) for p in g] for g in sub] == [[(p.index, p.attempts) for p in alone[0][1:]], [(p.index, p.attempts) for p in alone[1]]]

@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU')
def test_slots_graph_decoder_cuda():
    """On a GPU, graphs on: K tasks at once give each task's candidates alone (the graph decoder with its slot in the
    single adapter, and dfs_sample); a second mix of tasks and an in-place slot update capture nothing new."""
    m, S = slot_model('llama-lora', device='cuda')
    fd = FastDecoder(m, max_rows=512)
    assert fd.graphs
    prompts = SLOT_PROMPTS + [BATCH[0][:-1] + [V.cells[i % 10] for i in range(300)] + BATCH[0][-1:]]
    probs = (0.01, 0.05, 0.3, None)
    for rnd, ks in enumerate(([0, 1, 2, 1, 2, 0, 1], [2, 2, 0, 1, 0, 1, 0], [1, 0, 1, 2, 0, 2, 2])):
        if rnd == 2:
            with torch.no_grad():
                S.weight.mul_(1.25)
        for p in probs:
            news = SLOT_NEWS + [9]
            got = fd.dfs_batch(prompts, min_prob=p, max_new_tokens=news, eos_token_id=V.eos, slots=(S, ks))
            ref = slots_alone(m, S, prompts, ks, p, news)
            assert_same(got, ref, atol=1e-4)
            for k in sorted(set(ks)):  # the graph decoder alone, task by task
                S.to_adapter(k)
                idx = [i for i, x in enumerate(ks) if x == k]
                one = fd.dfs_batch([prompts[i] for i in idx], min_prob=p, max_new_tokens=[news[i] for i in idx], eos_token_id=V.eos)
                assert_same([got[i] for i in idx], one, atol=1e-4)
        if rnd == 0:
            captures = {k: g for k, g in fd._sgraphs.items()}
    assert fd.stats['invalidations'] == 0 and fd.stats['eager_steps'] == 0 and fd.stats['slot_refreshes'] == 2
    assert all(fd._sgraphs[k] is g for k, g in captures.items()) and len(fd._sgraphs) > 0 and fd.stats['replays'] > 0

# --- Qwen3 in the static-cache decoder (issue 23, item 1): per-head q/k RMSNorms before rotary ----------------------------
QWEN3 = {'qwen3-lora': lambda: qwen3(), 'qwen3-bias': lambda: qwen3(3, attention_bias=True),
         'qwen3-plain': lambda: qwen3(4, lora=False)}

@pytest.mark.parametrize('fuse', [True, False])
@pytest.mark.parametrize('name', list(QWEN3))
def test_qwen3_decoder_matches_dfs_sample(name, fuse):
    """fp32 on the CPU, the fused step (q/k norms in the rope function) and the modules step (fuse=False): FastDecoder.dfs
    and dfs_batch give dfs_sample's lists (same order, log-probs within 1e-5), greedy and five thresholds."""
    m = QWEN3[name]()
    fd, total = FastDecoder(m, max_rows=512, fuse=fuse), 0
    for p in (0.9, 0.3, 0.05, 0.01, 0.002, None):
        for n in (3, 9):
            for prompt in PROMPTS:
                ref = dfs_sample(m, prompt, min_prob=p, max_new_tokens=n, eos_token_id=V.eos)
                assert_same([fd.dfs(prompt, min_prob=p, max_new_tokens=n, eos_token_id=V.eos)], [ref])
                total += len(ref)
        news = [9, 3, 6, 1]
        assert_same(fd.dfs_batch(BATCH, min_prob=p, max_new_tokens=news, eos_token_id=V.eos), per_prompt(m, BATCH, p, news))
    assert total > 20 and fd.stats['fallbacks'] == 0 and fd.stats['gathers'] > 0
    assert (fd._layers is not None) == fuse and (not fuse or all(ly['qkn'] is not None for ly in fd._layers))

def test_qwen3_sliding_window_and_refusals():
    """Qwen3's sliding window: none unless use_sliding_window and a sliding layer; with one, a search longer than it runs
    eagerly (counted), the others on the static cache. unsupported names what it refuses."""
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm
    from arc_nb.fastdecode import unsupported
    assert FastDecoder(qwen3(lora=False, sliding_window=20)).window is None  # use_sliding_window=False
    assert FastDecoder(qwen3(lora=False, use_sliding_window=True, sliding_window=20)).window is None  # max_window_layers=28: no sliding layer
    m = qwen3(lora=False, use_sliding_window=True, sliding_window=20, max_window_layers=1)
    assert m.config.layer_types == ['full_attention', 'sliding_attention']
    fd = FastDecoder(m, max_rows=512)
    assert fd.window == 20 and fast_decoder(m, 'static') is not None
    assert_same(fd.dfs_batch(BATCH, min_prob=0.01, max_new_tokens=8, eos_token_id=V.eos), per_prompt(m, BATCH, 0.01, 8))
    assert fd.stats['fallbacks'] == sum(len(p) + 8 > 20 for p in BATCH) and 0 < fd.stats['fallbacks'] < len(BATCH)
    m.config.layer_types = ['full_attention', 'chunked_attention']
    assert 'chunked_attention' in unsupported(m) and fast_decoder(m, 'static') is None
    m.config.layer_types = ['full_attention'] * 2
    a = m.model.layers[1].self_attn
    a.k_norm = Qwen3RMSNorm(2 * 8)
    assert 'across heads' in unsupported(m)
    del a.k_norm
    assert 'q or on k alone' in unsupported(m)

@pytest.mark.parametrize('mode', ['static', 'dry-graph', 'modules'])
def test_qwen3_slots_static_dfs_batch(mode):
    """Qwen3 with K tasks' slots: the slot test above (each prompt's list as alone, refreshes, no recapture) on 'qwen3-lora',
    the fused step over the slots' buffers, its graph buckets (dry) and the modules step under S.route."""
    test_slots_static_dfs_batch('qwen3-lora', mode)
