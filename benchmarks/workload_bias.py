"""A logit bias that makes a random model decode the real ARC answers: the decode work of benchmarks/workload.py.

A random model writes no grids, so on its own it would decode until `max_new_tokens` (greedy) or find nothing
(min_prob DFS). For each prompt that `predict_task` decodes (every test input of the run's tasks under every
view, from the run's own tasks, solutions and inference settings), this bias adds +BETA to the logit of the
view's answer token at each output position, so that:

- regime `greedy`: greedy decoding writes exactly the view's answer, its length and then the end token;
- regime `dfs`: at two positions (a third and two thirds into the answer's cells) a second colour gets +BETA too,
  splitting the probability about in half: the min_prob 0.17 DFS finds four sequences of p ~ 0.25 per view, a
  small realistic tree of the answer's length.

Decode work is what is compared. arc_nb's batched rescoring (a prefill of several prompts) is not biased, the reload
way's one-prompt rescoring is: the scores differ, the cost does not, and scores are not what is compared.
Every way compared gets the same bias: arc_nb's workers through `ARC_NB_WORKER_SETUP=benchmarks/workload_bias.py:install`
(with WORKLOAD_REGIME set), the reload way's processes by calling `install` themselves. Anything else (training,
a prompt not in the table) is not biased. It works in the model's own forward (eager DFS, prefill, rescoring:
a pre-hook on the model reads the cache length, a hook on the output layer adds the bias rows) and inside
arc_nb's CUDA graphs (during a decode step each row's bias is picked by its prompt, the decoder's `which`, and its
position, `pos`, from tables made once per model, so a captured graph reads the current answers). arc_nb now searches
every view of a test input as one batch; `install` wraps `FastDecoder.dfs_batch` so that the bias knows the batch's
prompts, and makes the eager batched search (no FastDecoder: the CPU smoke run) go one prompt at a time.
"""
import os
import torch

BETA, MAXLEN = 30.0, 1024
REGIMES = ('greedy', 'dfs')

def answers(v, tasks, icfg, regime) -> dict:
    "prompt ids (a tuple) -> (the view's answer ids with the end token, {output position: second token})."
    from arc_nb.encoding import grid_ids
    from arc_nb.inference import task_views, test_prompts
    if regime not in REGIMES: raise ValueError(f"regime must be one of {REGIMES}, not {regime!r}")
    table = {}
    for t in tasks.values():
        if not t.has_solutions: continue
        views = task_views(t, icfg)
        for e, prompts in zip(t.test, test_prompts(v, t, icfg, views)):
            for tr, p in zip(views, prompts):
                ans = list(grid_ids(v, tr.grid(e.output))) + [v.eos]
                cells = [j for j, x in enumerate(ans) if x in v.cells]
                at = sorted({cells[len(cells) // 3], cells[2 * len(cells) // 3]}) if regime == 'dfs' and len(cells) >= 3 else []
                table[tuple(p)] = (ans, {j: v.cells[(v.cells.index(ans[j]) + 1) % 10] for j in at})
    return table

_BUFS = {}  # output-layer weight address -> the decode-step tables: made once per model, overwritten by each new AnswerBias

class AnswerBias:
    """The bias of the module docstring on `model` (a peft model or a plain one), for the prompts in `table`.

    In the model's own forward (a prefill of one prompt, eager decoding of that prompt's search, dfs_recursive) the
    prompt is the one seen at the prefill, the position the cache length. During a FastDecoder step each row's bias
    comes from its own prompt and position: `use(prompts)` (called by `install`'s wrapper before every
    `FastDecoder.dfs_batch`) maps the decoder's `which` (a row's index in `prompts`) to a table slot, and `fd.pos` is
    the row's position; tensor operations only, so a CUDA graph records them and reads the current slots when replayed.
    A multi-row prefill (the eager batched search, batched rescoring) is not biased: it cannot tell which row is which."""
    def __init__(self, model, table, maxp=1024):
        base = model.get_base_model() if hasattr(model, 'get_base_model') else model
        head = base.get_output_embeddings()
        W, dev = head.weight, head.weight.device
        self.model, self.table = model, table
        assert max((len(a) for a, _ in table.values()), default=0) < MAXLEN and len(table) < maxp
        self.bias = torch.zeros(MAXLEN + 1, W.shape[0], dtype=W.dtype, device=dev)  # eager: row j output position j; MAXLEN: zero
        self.P = torch.ones(1, dtype=torch.long, device=dev)  # the prompt length of the eager search under way
        if W.data_ptr() not in _BUFS:  # slots: a prompt's answer, its alternatives (-1: none), lengths; slot_of: which -> slot
            z = lambda *shape: torch.zeros(*shape, dtype=torch.long, device=dev)
            _BUFS[W.data_ptr()] = (z(maxp, MAXLEN), z(maxp, MAXLEN), z(maxp), z(maxp), z(maxp))
        self.ans, self.alt, self.alen, self.plen, self.slot_of = _BUFS[W.data_ptr()]
        assert len(table) < self.ans.shape[0], 'more prompts than the tables made for this model hold'
        ans, alt = torch.zeros_like(self.ans, device='cpu'), torch.full(self.alt.shape, -1, dtype=torch.long)
        alen, plen = torch.zeros_like(self.alen, device='cpu'), torch.zeros_like(self.plen, device='cpu')
        for k, (key, (a, al)) in enumerate(table.items()):  # the last slot stays empty: prompts not in the table
            ans[k, :len(a)], alen[k], plen[k] = torch.tensor(a), len(a), len(key)
            for j, t in al.items(): alt[k, j] = t
        for dst, src in ((self.ans, ans), (self.alt, alt), (self.alen, alen), (self.plen, plen)): dst.copy_(src)
        self.slot = {key: k for k, key in enumerate(table)}
        self.active, self.pos0, self.T, self.rows, self.hits, self.misses = False, 0, 0, 0, 0, 0
        self.handles = [base.register_forward_pre_hook(self.pre, with_kwargs=True), head.register_forward_hook(self.post)]

    def use(self, prompts):
        "Before a FastDecoder search of `prompts`: each one's table slot (the empty last slot when it is not in the table)."
        empty = self.ans.shape[0] - 1
        self.slot_of[:len(prompts)].copy_(torch.tensor([self.slot.get(tuple(p), empty) for p in prompts]))

    def pre(self, mod, args, kw):
        ids = kw.get('input_ids', args[0] if args else None)
        cache = kw.get('cache', kw.get('past_key_values'))
        self.pos0, self.T = (cache.get_seq_length() if cache is not None else 0), ids.shape[1]
        if self.pos0 == 0 and (torch.is_grad_enabled() or ids.shape[0] > 1): self.active = False  # training, or a batch of prompts
        elif self.pos0 == 0: self.load(self.table.get(tuple(ids[0].tolist())), self.T)  # a prompt's prefill

    def load(self, hit, P):
        "Put the answer `hit` (or nothing) into the eager table, for a prompt of P tokens."
        self.bias[:self.rows].zero_()
        self.active, self.rows = hit is not None, 0
        if hit is not None:
            ans, alt = hit
            j = torch.arange(len(ans), device=self.bias.device)
            self.bias[j, torch.tensor(ans, device=self.bias.device)] = BETA
            for k, t in alt.items(): self.bias[k, t] += BETA
            self.rows = len(ans); self.hits += 1
        else: self.misses += 1
        self.P.fill_(P)

    def rows_bias(self, fd, out):
        "[b, 1, V]: row i's bias at answer position pos[i] - (P - 1) of its prompt; zero outside the answer."
        b, V = out.shape[0], out.shape[-1]
        s = self.slot_of.index_select(0, fd.which[:b])
        j = fd.pos[:b] - (self.plen.index_select(0, s) - 1)
        ok = (j >= 0) & (j < self.alen.index_select(0, s))
        jj = j.clamp(0, MAXLEN - 1)
        a, al = self.ans[s, jj], self.alt[s, jj]
        idx = torch.stack([a, al.clamp(min=0)], 1)
        val = torch.stack([ok, ok & (al >= 0)], 1).to(out.dtype) * BETA
        return torch.zeros(b, V, dtype=out.dtype, device=out.device).scatter_add_(1, idx, val)[:, None]

    def post(self, mod, inp, out):
        decoders = self.model.__dict__.get('_arc_decoders', {}).values()  # arc_nb's graph decoder, when the worker made one
        fd = next((d for d in decoders if d.stepping), None)
        if fd is not None: return out + self.rows_bias(fd, out)  # a decode step, maybe being captured into a CUDA graph
        if not self.active or torch.is_grad_enabled(): return out  # training never: train_many calls the head alone, past the pre-hook
        To = out.shape[1]
        j = torch.arange(self.pos0 + self.T - To, self.pos0 + self.T, device=out.device) - (self.P - 1)
        j = torch.where(j < 0, MAXLEN, j).clamp(max=MAXLEN)
        return out + self.bias.index_select(0, j)[None]

    def remove(self):
        for h in self.handles: h.remove()

def _wrap_searches():
    """Once per process: every FastDecoder.dfs_batch tells the model's bias its prompts first; the eager batched search
    (HFBackend without a FastDecoder: the CPU) runs one prompt at a time, whose prefill the bias can recognise."""
    from arc_nb import fastdecode, inference
    if getattr(fastdecode.FastDecoder.dfs_batch, '_biased', False): return
    fast, eager = fastdecode.FastDecoder.dfs_batch, inference.dfs_batch
    def dfs_batch(fd, prompts, **kw):
        b = fd.model.__dict__.get('_workload_bias')
        if b is not None: b.use(prompts)
        return fast(fd, prompts, **kw)
    def one_at_a_time(model, prompts, *, max_new_tokens, **kw):
        news = max_new_tokens if isinstance(max_new_tokens, (list, tuple)) else [max_new_tokens] * len(prompts)
        return [eager(model, [p], max_new_tokens=[m], **kw)[0] for p, m in zip(prompts, news)]
    dfs_batch._biased = True
    fastdecode.FastDecoder.dfs_batch, inference.dfs_batch = dfs_batch, one_at_a_time

def install(model, tok, run, regime=None):
    "`ARC_NB_WORKER_SETUP` entry: the bias for every prompt of the run's tasks; WORKLOAD_REGIME picks the regime."
    from arc_nb.encoding import check_tokenizer
    regime = regime or os.environ.get('WORKLOAD_REGIME', 'greedy')
    model.__dict__['_workload_bias'] = b = AnswerBias(model, answers(check_tokenizer(tok), run.tasks(), run.config().infer(), regime))
    _wrap_searches()
    return b
