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

# prompts of four different lengths, searched as one batch
BATCH = [PROMPTS[1], PROMPTS[0][:-1] + [V.cells[i % 10] for i in range(13)] + PROMPTS[0][-1:], PROMPTS[2], PROMPTS[0]]
STATIC_MODELS = {**{k: f for k, f in MODELS.items() if k != 'gpt2'},
                'mistral': lambda: boost_eos(peaked(small_model(MistralForCausalLM, MistralConfig, 1, sliding_window=None), 10), 2.0),
                'qwen2': lambda: boost_eos(peaked(small_model(Qwen2ForCausalLM, Qwen2Config, 2), 10), 2.0)}

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
