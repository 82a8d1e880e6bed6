"""A logit bias that makes a random model decode the real ARC answers: the decode work of benchmarks/workload.py.

A random model writes no grids, so on its own it would decode until `max_new_tokens` (greedy) or find nothing
(min_prob DFS). For each prompt that `predict_task` decodes (every test input of the run's tasks under every
view, from the run's own tasks, solutions and inference settings), this bias adds +BETA to the logit of the
view's answer token at each output position, so that:

- regime `greedy`: greedy decoding writes exactly the view's answer, its length and then the end token;
- regime `dfs`: at two positions (a third and two thirds into the answer's cells) a second colour gets +BETA too,
  splitting the probability about in half: the min_prob 0.17 DFS finds four sequences of p ~ 0.25 per view, a
  small realistic tree of the answer's length.

Every way compared gets the same bias: arc_nb's workers through `ARC_NB_WORKER_SETUP=benchmarks/workload_bias.py:install`
(with WORKLOAD_REGIME set), the reload way's processes by calling `install` themselves. Anything else (training,
a prompt not in the table) is not biased. It works in the model's own forward (eager DFS, prefill, rescoring:
a pre-hook on the model reads the cache length, a hook on the output layer adds the bias rows) and inside
arc_nb's CUDA graphs (during a decode step the row is picked by the decoder's position tensor from a table made
once per model, so a captured graph reads the current answer).
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

class AnswerBias:
    "The bias of the module docstring on `model` (a peft model or a plain one), for the prompts in `table`."
    def __init__(self, model, table):
        base = model.get_base_model() if hasattr(model, 'get_base_model') else model
        W = base.get_output_embeddings().weight
        self.model, self.table = model, table
        assert max((len(a) for a, _ in table.values()), default=0) < MAXLEN
        self.bias = torch.zeros(MAXLEN + 1, W.shape[0], dtype=W.dtype, device=W.device)  # row j: output position j; row MAXLEN: zero
        self.P = torch.ones(1, dtype=torch.long, device=W.device)  # the prompt length of the search under way
        self.active, self.pos0, self.T, self.rows, self.hits, self.misses = False, 0, 0, 0, 0, 0
        self.handles = [base.register_forward_pre_hook(self.pre, with_kwargs=True),
                        base.get_output_embeddings().register_forward_hook(self.post)]

    def pre(self, mod, args, kw):
        ids = kw.get('input_ids', args[0] if args else None)
        cache = kw.get('cache', kw.get('past_key_values'))
        self.pos0, self.T = (cache.get_seq_length() if cache is not None else 0), ids.shape[1]
        if self.pos0 == 0 and torch.is_grad_enabled(): self.active = False  # training: never biased
        elif self.pos0 == 0: self.load(self.table.get(tuple(ids[0].tolist())), self.T)  # a prompt's prefill

    def load(self, hit, P):
        "Put the answer `hit` (or nothing) into the table, for a prompt of P tokens."
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

    def post(self, mod, inp, out):
        decoders = self.model.__dict__.get('_arc_decoders', {}).values()  # arc_nb's graph decoder, when the worker made one
        fd = next((d for d in decoders if d.stepping), None)
        if fd is not None:  # a decode step, maybe being captured into a CUDA graph: tensor operations only
            # a position per row; one table: right for one prompt's search at a time (FastDecoder.dfs), not for dfs_batch
            # over several prompts (benchmarks/batched_inference.py's ViewBias biases those row by row)
            j = (fd.pos[:out.shape[0]] - (self.P - 1)).clamp(0, MAXLEN)
            return out + self.bias.index_select(0, j)[:, None]
        if not self.active: return out
        To = out.shape[1]
        j = torch.arange(self.pos0 + self.T - To, self.pos0 + self.T, device=out.device) - (self.P - 1)
        j = torch.where(j < 0, MAXLEN, j).clamp(max=MAXLEN)
        return out + self.bias.index_select(0, j)[None]

    def remove(self):
        for h in self.handles: h.remove()

def install(model, tok, run, regime=None):
    "`ARC_NB_WORKER_SETUP` entry: the bias for every prompt of the run's tasks; WORKLOAD_REGIME picks the regime."
    from arc_nb.encoding import check_tokenizer
    regime = regime or os.environ.get('WORKLOAD_REGIME', 'greedy')
    model.__dict__['_workload_bias'] = b = AnswerBias(model, answers(check_tokenizer(tok), run.tasks(), run.config().infer(), regime))
    return b
