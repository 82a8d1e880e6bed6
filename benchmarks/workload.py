"""The reference's workload end to end on one GPU: arc_nb against the reload-per-task way, same tasks, same GPU.

    python3 benchmarks/workload.py --ways arc_nb:greedy,arc_nb:dfs,arc_nb:greedy@2/2 --budget 160 --out $OUT/workload.json
    python3 benchmarks/workload.py --ways reload:greedy,reload:dfs --budget 210 --out $OUT/workload.json
    python3 benchmarks/workload.py --ways arc_nb:greedy@1/2,arc_nb_best:greedy,arc_nb_best:dfs --budget 130 --out $OUT/workload.json
    python3 benchmarks/workload.py --merge A.json B.json C.json --out benchmarks/results/workload.json   # one file, plus the projection
    python3 benchmarks/workload.py --smoke --ways reload:greedy,arc_nb:greedy,arc_nb:dfs --out /tmp/w.json  # the same code on a CPU

The workload (issue 19). A 7.24B Llama/Mistral-shaped model with random weights (bf16), saved with save_pretrained
to local disk; the 16 ARC-AGI-2 evaluation tasks whose test outputs are shortest in total (`selection`: their
prompts run from 0.7K to 5.7K tokens, their training from 9K to 154K tokens a task, 3 have two test inputs; the
shortest outputs because the reference's way decodes at ~0.1 s a token and must finish something inside a
10-minute call); the reference's settings: 10 epochs, batch size 1, LoRA r32 on all linear layers, lr 1e-4,
max_seq_len 8192, n=8 views. Two decode regimes, made the same in every way by `workload_bias.py`: `greedy` writes
exactly each view's answer (same tokens in every way, checked), `dfs` is the min_prob 0.17 DFS over a small tree
(two 50/50 branch points per view). A random model cannot score: the point is cost.

Ways. `reload`: the reference's way, emulated: every task trained in a fresh process that loads the base model
from disk, attaches LoRA, trains (arc_nb's loop), saves; every task predicted in a fresh process that loads the
base model, `PeftModel.from_pretrained` the adapter and decodes eagerly one sequence at a time (`dfs_recursive`;
greedy: batch-1 eager greedy), 2 train + 3 inference processes at a time. `arc_nb`: `arc-nb run` with its
defaults, split, 2 train + 3 inference slots. `arc_nb_best`: the settings of the issue-19 code that did best (BEST).
`arc_nb_batched` (issue 21): BEST's slots and settings on the code that searches every view of a test input as one
batch, with quick passes (a time budget turns them on); its results sit beside arc_nb_best's issue-19 records.
`arc_nb_multitask` (issue 22): arc_nb_batched's settings with `tasks_per_worker` K (MULTITASK): a train (or fused)
worker trains K tasks at once, each in its own adapter slot of one model.
`WAY:REGIME@T/I` runs a way with T train and I inference slots (the slot table); `@fused:T` T fused workers;
`*K` K tasks per worker (arc_nb_multitask); `^GB` the run's GPU memory limit (`gpu_memory_gb`, to emulate a 24 GB card).

Every run has a time budget (--budget or ~SECONDS; the same for every way within a regime); a run may end sooner,
when its workers stop claiming what their estimate says cannot finish. Figures per
run (`way_record`): tasks fully done (trained, every test input predicted) per GPU-hour, wall time, process-seconds
split into load / train / decode / rescoring / other / idle, decode and training tokens, model loads, mean NVML
utilisation, useful-work utilisation (`arc_nb.plots.useful_work`: training and prefill/rescoring FLOPs over the
measured bf16 peak plus decode weight-and-KV bytes over the measured bandwidth, per wall second), peak GPU memory
per process (torch's reserved memory at exit) and per GPU (NVML).
"""
import argparse, json, math, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))

WAY_NAMES = ('reload', 'arc_nb', 'arc_nb_best', 'arc_nb_batched', 'arc_nb_multitask')
REFERENCE = dict(epochs=10, lr=1e-4, lora_rank=32, batch_size=1, max_seq_len=8192, n=8,  # the reference's settings
                 gradient_checkpointing='on')  # 2 train + 3 inference 7B processes fit 141 GB only so ('auto': 53 GB a train process, OOM)
SMOKE = dict(epochs=1, n=2)                                                              # --smoke: the same code, seconds a task
BEST = dict(slots=(1, 3), settings=dict(lora_dtype='base', gradient_checkpointing='auto'))  # arc_nb_best: see benchmarks/README.md
MULTITASK = dict(slots=(1, 3), K=4)  # arc_nb_multitask's default slots and tasks per worker
BATCHED = ('arc_nb_batched', 'arc_nb_multitask')  # the ways whose views of a test input decode as one batch
MIN_PROB = {'greedy': None, 'dfs': 0.17}
L4 = dict(name='NVIDIA L4 (Kaggle), assumed', flops=121e12 * 0.80, bandwidth=300e9 * 0.90, memory_gb=24,
          note='datasheet bf16 dense 121 TFLOP/s and 300 GB/s, times the fractions of the datasheet measured on the H200 '
               '(789 of 989 TFLOP/s, 4.3 of 4.8 TB/s)')

def log(*a): print(*a, flush=True)

def child_env(**kw):
    pp = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])
    return {**os.environ, 'PYTHONPATH': pp, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false',
            'PYTHONUNBUFFERED': '1', **kw}

# ---------------------------------------------------------------------------------------------------------
def selection(k=16):
    "The k ARC-AGI-2 evaluation tasks whose test outputs have the fewest tokens in total (ties by id)."
    from arc_nb.data import load_tasks
    from arc_nb.encoding import output_tokens
    ev = load_tasks('arc-agi-2/evaluation')
    return sorted(ev, key=lambda t: (sum(output_tokens(e.output) for e in ev[t].test), t))[:k], ev

def model_folder(shape):
    "The random model of gpu_bench's SHAPES, saved once under BENCH_DISK (made again only when missing)."
    path = Path(os.environ.get('BENCH_DISK', tempfile.gettempdir()))/f'model-{shape}'
    if (path/'config.json').exists() and list(path.glob('*.safetensors')): return path, 0.0
    from gpu_bench import make_model
    t = time.time(); make_model(shape, path)
    return path, time.time() - t

def settings_for(way, regime, smoke, K=None, gpu_memory_gb=None):
    s = dict(REFERENCE, **(SMOKE if smoke else {}), min_prob=MIN_PROB[regime])
    if way in ('arc_nb_best',) + BATCHED: s.update(BEST['settings'])
    if way == 'arc_nb_multitask': s['tasks_per_worker'] = K or MULTITASK['K']
    if gpu_memory_gb: s['gpu_memory_gb'] = gpu_memory_gb
    if way in ('arc_nb', 'arc_nb_best'): s['quick_views'] = 0  # issue 19's ways: one pass, the reload way's decode work
    return s

def write_run_files(run, tasks, cfg):
    "The run files the reload way's processes read (arc_nb's own format: config.json, challenges.json, solutions.json)."
    from arc_nb.data import write_json
    write_json(run.config_file, cfg.to_dict(), indent=1)
    write_json(run.challenges_file, {k: t.to_json() for k, t in tasks.items()})
    write_json(run.path/'solutions.json', {k: t.solutions() for k, t in tasks.items()})

# ---------------------------------------------------------------------------------------------------------
# the reload way: one process per task and phase
def reload_worker(run_path, phase, tid, slot, gpu):
    "One reload-way process: load the base model from disk, then train and save one task, or load its adapter and predict it."
    t_start = time.time()
    from arc_nb.scheduler import RunDir
    run = RunDir(run_path)
    base = dict(worker=f'{phase}-{gpu}-{slot}', pid=os.getpid(), phase=phase, gpu=None if gpu == 'cpu' else int(gpu), slot=slot)
    emit = lambda ev, **kw: run.emit(ev, **base, **kw)
    emit('worker_start')
    import torch
    from arc_nb.model import load_base, attach_lora, save_adapter
    from arc_nb.encoding import check_tokenizer
    from arc_nb.ttt import train_task
    from arc_nb.search import dfs_sample, dfs_recursive
    from arc_nb.inference import predict_task, write_predictions, HFBackend, score_candidates
    from arc_nb.data import write_json
    import workload_bias
    cfg = run.config(); tcfg, icfg = cfg.ttt(), cfg.infer()
    cuda = torch.cuda.is_available()
    model, tok = load_base(cfg.model, device='cuda:0' if cuda else 'cpu', dtype='bfloat16' if cuda else 'float32')
    v = check_tokenizer(tok)
    if phase == 'train':
        model = attach_lora(model, rank=tcfg.lora_rank, alpha=tcfg.lora_alpha, seed=tcfg.seed, lora_dtype=tcfg.lora_dtype)
    else:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, run.adapter(tid)).eval()
    workload_bias.install(model, tok, run)
    emit('model_load', seconds=time.time() - t_start, model=str(cfg.model))
    task = run.tasks()[tid]
    t_claim = time.time(); emit('claim', task=tid)
    if phase == 'train':
        r = train_task(model, v, task, tcfg, reset=False)
        emit('train_end', task=tid, steps=r.steps, tokens=r.tokens, tokens_sq=r.tokens_sq, loss=r.final_loss, seconds=r.seconds)
        t = time.time(); save_adapter(model, run.adapter(tid)); emit('adapter_save', task=tid, seconds=time.time() - t)
        write_json(run.train_json(tid), r.to_json())
    else:
        class OneAtATime(HFBackend):
            "The reference's decoding: eager, one sequence at a time (recursive DFS; greedy at batch 1)."
            def sample(self, prompts, *, min_prob, max_new_tokens):
                if min_prob is None:
                    return [dfs_sample(self.model, p, min_prob=None, max_new_tokens=m, eos_token_id=self.eos) for p, m in zip(prompts, max_new_tokens)]
                return [dfs_recursive(self.model, p, min_prob=min_prob, max_new_tokens=m, eos_token_id=self.eos) for p, m in zip(prompts, max_new_tokens)]
            def score(self, prompts, cands):  # and rescoring one view at a time (arc_nb's HFBackend batches them)
                return [score_candidates(self.model, p, c) for p, c in zip(prompts, cands)]
        t = time.time(); preds = predict_task(OneAtATime(model, v.eos, decode='eager'), v, task, icfg); sec = time.time() - t
        write_predictions(run.predictions(tid), tid, preds, seconds=sec)
        work = {k: sum(p.work.get(k, 0) for p in preds) for k in ('steps', 'rows', 'kv', 'tokens', 'ctx')}
        emit('infer_end', task=tid, candidates=sum(len(p.candidates) for p in preds), tokens=sum(p.tokens for p in preds), tests=len(preds),
             seconds=sec, decode_s=sum(p.decode_s for p in preds), score_s=sum(p.score_s for p in preds), work=work, decode='eager')
    emit('task_end', task=tid, seconds=time.time() - t_claim)
    emit('worker_exit', **({'peak_mem_gb': torch.cuda.max_memory_reserved() / 2**30} if cuda else {}))
    return 0

def run_reload(run_path, model, tasks, order, regime, slots, budget, smoke):
    "2 train + 3 inference processes at a time, a fresh one per task and phase; stops at the budget."
    from arc_nb.scheduler import RunDir, RunConfig, MONITOR_CODE
    run = RunDir(run_path)
    import torch
    cuda = torch.cuda.is_available()
    gpu = '0' if cuda else 'cpu'
    write_run_files(run, tasks, RunConfig(model=str(model), out=str(run_path), **settings_for('reload', regime, smoke)))
    env = child_env(CUDA_VISIBLE_DEVICES='0' if cuda else '', WORKLOAD_REGIME=regime,
                    OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // sum(slots))))
    t0 = time.time(); deadline = t0 + budget
    base = dict(worker='launcher', pid=os.getpid(), phase=None, gpu=None, slot=None)
    run.emit('run_start', **base, tasks=len(tasks), time_budget=budget)
    mon = subprocess.Popen([sys.executable, '-c', MONITOR_CODE, '--run', str(run.path), '--interval', '0.5', '--gpus', '0' if cuda else 'cpu',
                            '--parent', str(os.getpid())], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    todo = {'train': list(order), 'infer': []}
    live = {('train', k): None for k in range(slots[0])} | {('infer', k): None for k in range(slots[1])}
    failed, cut = [], False
    while True:
        for key, item in live.items():
            if item is None: continue
            p, tid, logf = item
            if p.poll() is None: continue
            logf.close(); live[key] = None
            if p.returncode != 0: failed.append((key[0], tid, p.returncode)); log(f'  reload {key[0]} {tid} failed ({p.returncode}): '
                                                                                  + (run.path/'logs'/f'{key[0]}-{tid}.log').read_text()[-1500:])
            elif key[0] == 'train': todo['infer'].append(tid)
        if time.time() >= deadline: cut = True; break
        for (phase, k), item in live.items():
            if item is None and todo[phase]:
                tid = todo[phase].pop(0)
                logf = open(run.path/'logs'/f'{phase}-{tid}.log', 'wb')
                p = subprocess.Popen([sys.executable, __file__, '--reload-worker', str(run.path), phase, tid, str(k), gpu], env=env,
                                     stdout=logf, stderr=subprocess.STDOUT)
                live[(phase, k)] = (p, tid, logf)
        if all(v is None for v in live.values()) and not todo['train'] and not todo['infer']: break
        time.sleep(0.1)
    for item in live.values():
        if item is not None: item[0].kill(); item[0].wait(); item[2].close()
    run.stop_file.touch()
    try: mon.wait(timeout=5)
    except subprocess.TimeoutExpired: mon.kill()
    run.emit('run_end', **base, deadline_cut=cut)
    return dict(t0=t0, t1=time.time(), cut=cut, failed=failed)

# ---------------------------------------------------------------------------------------------------------
def run_arc_nb(run_path, model, ids, way, regime, slots, budget, smoke, K=None, gpu_memory_gb=None):
    "`arc-nb run` (split with the given slots, or fused: slots (T, 0)) on the tasks, with the bias installed in every worker."
    import torch
    cfg = dict(settings_for(way, regime, smoke, K, gpu_memory_gb), data='arc-agi-2/evaluation', tasks=list(ids), model=str(model),
               mode='split' if slots[1] else 'fused', gpus='auto' if torch.cuda.is_available() else 'cpu', train_slots=slots[0],
               infer_slots=max(1, slots[1]), time_budget=budget, monitor_interval=0.5)
    cf = Path(str(run_path) + '.config.json'); cf.write_text(json.dumps(cfg))
    env = child_env(ARC_NB_WORKER_SETUP=f"{ROOT/'benchmarks'/'workload_bias.py'}:install", WORKLOAD_REGIME=regime)
    t0 = time.time()
    p = subprocess.run([sys.executable, '-c', 'import sys; from arc_nb.cli import main; sys.exit(main())', 'run', '--config', str(cf),
                        '--out', str(run_path), '--quiet'], env=env, capture_output=True, text=True)
    t1 = time.time()
    if p.returncode not in (0, 4, 5): log(f'  arc-nb run failed ({p.returncode}):', p.stderr[-3000:])  # 4, 5: bad tasks, work undone
    ev = [json.loads(l) for l in (Path(run_path)/'events.jsonl').read_text().splitlines() if l.strip()]
    return dict(t0=t0, t1=t1, cut=any(e['event'] == 'deadline' for e in ev), rc=p.returncode,  # the launcher's cut, or workers that stopped claiming
                stderr=p.stderr[-2000:] if p.returncode else '')

# ---------------------------------------------------------------------------------------------------------
def expected_rows(tasks, icfg, regime):
    "Per task, per test input: the decode-step rows a greedy search feeds when the bias is hit (each view's answer less its first token)."
    from arc_nb.encoding import make_compact_tokenizer, check_tokenizer
    from arc_nb.inference import task_views, test_prompts
    import workload_bias
    v = check_tokenizer(make_compact_tokenizer())
    out = {}
    for tid, t in tasks.items():
        tab = workload_bias.answers(v, {tid: t}, icfg, regime)
        out[tid] = [sum(len(tab[tuple(p)][0]) - 1 for p in ps) for ps in test_prompts(v, t, icfg, task_views(t, icfg))]
    return out

def process_split(run_path, n_slots, t0, t1) -> dict:
    """Process-seconds of all slots over [t0, t1] by kind: load, train, decode, rescore, other (predict and task overhead),
    cut (a task claimed and not finished when the budget stopped its process) and idle (the rest: waiting, ended early)."""
    import pandas as pd
    from arc_nb.plots import read_events, summary
    ev, sm = read_events(run_path), summary(run_path)
    col = lambda k: float(sm[k].sum()) if len(sm) else 0.0
    inf = ev[ev.event == 'infer_end'] if len(ev) else ev
    dec = float(pd.to_numeric(inf.get('decode_s', pd.Series(dtype=float))).sum())
    sc = float(pd.to_numeric(inf.get('score_s', pd.Series(dtype=float))).sum())
    has = len(ev) and 'task' in ev  # a run whose workers failed at start has no task events
    ended = set(zip(ev[ev.event == 'task_end'].pid, ev[ev.event == 'task_end'].task)) if has else set()
    cut = sum(max(0.0, t1 - e.time) for _, e in ev[ev.event == 'claim'].iterrows() if (e.pid, e.task) not in ended) if has else 0.0
    return dict(load=col('load_s'), train=col('train_s'), decode=dec, rescore=sc, other_predict=col('predict_s') - dec - sc,
                overhead=col('overhead_s'), cut=cut, idle=n_slots * (t1 - t0) - col('lifetime_s') + col('idle_s') - cut)

def way_record(run_path, way, regime, slots, res, tasks, model, hw, gpu_name, settings):
    "The figures of one run (see the module docstring), from its run directory alone."
    import pandas as pd
    from arc_nb.plots import read_events, read_resources, summary, useful_work
    ev = read_events(run_path)
    cols = ['time', 'task', 'tokens', 'seconds', 'tests', 'decode_s', 'score_s', 'work', 'peak_mem_gb', 'decode', 'pid']
    get = lambda name: ev[ev.event == name].reindex(columns=sorted(set(ev.columns) | set(cols))) if len(ev) else pd.DataFrame(columns=cols)
    tr, inf = get('train_end'), get('infer_end')
    per = []
    spans = [(e.time - e.seconds, e.time) for _, e in tr.iterrows()]  # when some process was training
    def overlap(a, b):  # the fraction of [a, b] during which at least one training step ran
        cuts = sorted({a, b} | {x for s in spans for x in s if a < x < b})
        inside = sum(y - x for x, y in zip(cuts, cuts[1:]) if any(s0 < (x + y) / 2 < s1 for s0, s1 in spans))
        return inside / (b - a) if b > a else 0.0
    for tid, t in tasks.items():
        a, b = tr[tr.task == tid], inf[inf.task == tid]  # b: one row per pass (the full pass per test input after a quick one)
        pj = Path(run_path)/'tasks'/tid/'predictions.json'
        tests = json.loads(pj.read_text())['tests'] if pj.exists() else []
        partial = (Path(run_path)/'tasks'/tid/'partial').exists()
        works = [x for x in b.work if isinstance(x, dict)] if len(b) else []
        w = {k: sum(x.get(k, 0) for x in works) for k in ('rows', 'steps', 'tokens')}
        fsum = lambda col: float(pd.to_numeric(b[col]).sum()) if len(b) else None
        n_full = sum(x.get('pass', 'full') == 'full' for x in tests)
        per.append(dict(task=tid, tests=len(t.test), trained=bool(len(a)), tests_predicted=len(tests), tests_full=n_full,
                        tests_at_fallback_with_adapter=(len(t.test) - len(tests)) if len(a) else 0,
                        done=bool(len(a)) and not partial and len(tests) == len(t.test),
                        train_tokens=int(a.tokens.iloc[0]) if len(a) else 0, train_s=float(a.seconds.iloc[0]) if len(a) else None,
                        decode_s=fsum('decode_s'), score_s=fsum('score_s'), infer_s=fsum('seconds'), passes=len(b),
                        decode_tokens=int(w['rows']), decode_steps=int(w['steps']), forward_tokens=int(w['tokens']),
                        decode_tokens_per_test=[x.get('work', {}).get('rows') for x in tests],
                        ms_per_decode_step=1e3 * fsum('decode_s') / max(int(w['steps']), 1) if len(b) else None,
                        infer_overlaps_training=overlap(float((b.time - b.seconds).min()), float(b.time.max())) if len(b) else None))
    u = useful_work(run_path, model, hw, window=(res['t0'], res['t1']))
    wall = res['t1'] - res['t0']
    split = process_split(run_path, sum(slots), res['t0'], res['t1'])
    done = sum(p['done'] for p in per)
    ex = get('worker_exit')
    loads = ev[ev.event.isin(['model_load', 'claim'])].groupby(['pid']).agg(loads=('event', lambda e: (e == 'model_load').sum()),
                                                                             claims=('event', lambda e: (e == 'claim').sum())) if len(ev) else None
    dec = [(e['pid'], e['decode']) for _, e in inf.iterrows() if isinstance(e.get('decode'), dict)] if 'decode' in inf else []
    capture_s = sum(max(d.get('capture_s', 0) for p2, d in dec if p2 == p) for p in {p for p, _ in dec})
    r = read_resources(run_path)
    r = r[(r.time >= res['t0']) & (r.time <= res['t1'])].dropna(subset=['gpu']) if len(r) else r
    return dict(way=way, regime=regime, slots=f'{slots[0]}/{slots[1]}' if slots[1] else f'fused:{slots[0]}', settings=settings, gpu=gpu_name, tasks=len(tasks), tasks_done=done,
                tests=sum(p['tests'] for p in per), tests_predicted=sum(p['tests_predicted'] for p in per), trained=sum(p['trained'] for p in per),
                tests_full=sum(p['tests_full'] for p in per), tests_at_fallback_with_adapter=sum(p['tests_at_fallback_with_adapter'] for p in per),
                budget_s=settings.get('time_budget'), deadline_cut=res['cut'], wall_s=wall, tasks_per_gpu_hour=3600 * done / wall,
                decode_tokens=u['decode_tokens'], decode_steps=u['decode_steps'], train_tokens=u['train_tokens'], forward_tokens=u['forward_tokens'],
                model_loads=int(len(get('model_load'))), nvml_util_pct=u['nvml_util_pct'], useful_util_pct=u['useful_util_pct'],
                useful=dict((k, u[k]) for k in ('train_util_pct', 'forward_util_pct', 'decode_util_pct', 'useful_s', 'train_flops', 'forward_flops',
                                                'decode_bytes', 'lora_bytes', 'roofline')),
                peak_mem_gb=float(pd.to_numeric(ex.peak_mem_gb).max()) if ex.peak_mem_gb.notna().any() else None,
                peak_mem_gb_per_gpu=float(pd.to_numeric(r.vram_used).max()) / 1024 if len(r) else None,
                process_seconds=split, process_seconds_per_task_done={k: v / max(done, 1) for k, v in split.items()},
                gpu_seconds_per_task_done=wall / max(done, 1), graph_capture_s=capture_s, failed=res.get('failed', []),
                claims_per_process=dict(max=int(loads.claims.max()), loads_max=int(loads.loads.max())) if loads is not None and len(loads) else None,
                per_task=per)

def run_way(spec, model, ids, tasks, budget, smoke, work_dir, hw, gpu_name):
    spec, _, b = spec.partition('~')  # WAY:REGIME[@T/I|@fused:T][*K][^GB][~SECONDS]
    budget = float(b) if b else budget
    spec, _, gb = spec.partition('^'); gpu_memory_gb = float(gb) if gb else None
    spec, _, k = spec.partition('*'); K = int(k) if k else None
    way, regime = spec.split('@')[0].split(':')
    at = spec.split('@')[1] if '@' in spec else None
    slots = ((int(at.split(':')[1]), 0) if at.startswith('fused:') else tuple(map(int, at.split('/')))) if at else \
        (MULTITASK['slots'] if way == 'arc_nb_multitask' else BEST['slots'] if way in ('arc_nb_best', 'arc_nb_batched') else (2, 3))
    K = K or (MULTITASK['K'] if way == 'arc_nb_multitask' else None)
    spec = spec + (f'*{K}' if K else '') + (f'^{gb}' if gb else '')
    assert way in WAY_NAMES and regime in MIN_PROB, spec
    run_path = work_dir/spec.replace(':', '-').replace('@', '-').replace('/', '-').replace('*', '-k').replace('^', '-mem')
    if run_path.exists(): shutil.rmtree(run_path)
    order = sorted(ids, key=lambda t: -len(json.dumps(tasks[t].to_json())))  # longest first, as arc_nb trains them
    log(f'== {spec}: {len(ids)} tasks, slots {slots[0]}/{slots[1]}, budget {budget:.0f} s')
    if way == 'reload': res = run_reload(run_path, model, tasks, order, regime, slots, budget, smoke)
    else: res = run_arc_nb(run_path, model, ids, way, regime, slots, budget, smoke, K, gpu_memory_gb)
    settings = dict(settings_for(way, regime, smoke, K, gpu_memory_gb), time_budget=budget)
    rec = way_record(run_path, way, regime, slots, res, tasks, model, hw, gpu_name, settings)
    log(f"   {rec['tasks_done']}/{rec['tasks']} tasks done, {rec['tests_predicted']}/{rec['tests']} tests, wall {rec['wall_s']:.0f} s, "
        f"{rec['tasks_per_gpu_hour']:.0f} tasks/GPU-h, NVML {rec['nvml_util_pct'] or 0:.0f}%, useful {rec['useful_util_pct']:.1f}%, "
        f"{rec['model_loads']} model loads, peak {rec['peak_mem_gb'] or 0:.1f} GB/process")
    return rec, run_path

# ---------------------------------------------------------------------------------------------------------
def check_tokens(ways, expected):
    """Regime greedy: every way decodes the same rows for each test input, and they are the answers' (the bias was hit
    everywhere); tasks whose every test input has its full search (a quick pass decodes 2 of the 8 views)."""
    rows = {}
    for w in ways:
        if w['regime'] != 'greedy': continue
        for p in w['per_task']:
            full = p.get('tests_full') is None or p['tests_full'] == p['tests']  # None: a way without quick passes
            if p['tests_predicted'] == p['tests'] and full: rows.setdefault(p['task'], {})[f"{w['way']}@{w['slots']}"] = p['decode_tokens_per_test']
    same = {t: all(list(x) == list(expected[t]) for x in r.values()) for t, r in rows.items()}
    return dict(per_task=rows, expected=expected, same=same, all_same=all(same.values()) if same else None,
                ways_compared=sorted({k for r in rows.values() for k in r}))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--ways', default='arc_nb:greedy', help='WAY:REGIME[@T/I|@fused:T][*K][^GB][~SECONDS], comma-separated; WAY in reload, arc_nb, arc_nb_best, arc_nb_batched, arc_nb_multitask; '
                    'REGIME greedy or dfs; @T/I: train/inference slots; ~SECONDS: this run\'s budget')
    ap.add_argument('--budget', type=float, default=180.0, help='seconds each run may take (the same for every way) [180]')
    ap.add_argument('--tasks', type=int, default=16, help='how many tasks of the selection [16]')
    ap.add_argument('--shape', default='7b', help="gpu_bench's model shape [7b]")
    ap.add_argument('--out', help='JSON to write (ways are added to it when it exists)')
    ap.add_argument('--smoke', action='store_true', help='CPU check: smoke shape, 1 epoch, n=2')
    ap.add_argument('--merge', nargs='*', help='JSON files of earlier calls to put into --out (their RUNS.tgz beside them: splits recomputed)')
    ap.add_argument('--reload-worker', nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.reload_worker: return reload_worker(*a.reload_worker[:3], int(a.reload_worker[3]), a.reload_worker[4])
    if not a.out: ap.error('--out is required')
    out = Path(a.out)
    if a.merge is not None: return merge(a.merge, out)
    import torch, transformers, peft
    from arc_nb.plots import Roofline, H200, model_figures
    cuda = torch.cuda.is_available()
    gpu_name = torch.cuda.get_device_name(0) if cuda else (platform.processor() or 'cpu')
    hw = H200 if cuda and 'H200' in gpu_name else Roofline(1e12, 1e10, 'nominal CPU figures (smoke run: the numbers mean nothing)')
    res = json.loads(out.read_text()) if out.exists() else {}
    shape = 'smoke' if a.smoke else a.shape
    model, made_s = model_folder(shape)
    ids, ev = selection(a.tasks)
    tasks = {t: ev[t] for t in ids}
    res.setdefault('calls', []).append(dict(date=time.strftime('%Y-%m-%d %H:%M:%S'), command=' '.join(sys.argv), gpu=gpu_name, torch=torch.__version__,
                                            transformers=transformers.__version__, peft=peft.__version__, python=platform.python_version(),
                                            model_make_s=made_s))
    fig = model_figures(model)
    res.update(model=dict(shape=shape, **fig), selection=ids, roofline=hw.__dict__,
               settings=dict(REFERENCE, **(SMOKE if a.smoke else {})), best=dict(slots=list(BEST['slots']), **BEST['settings']))
    work_dir = Path(tempfile.mkdtemp(prefix='workload-', dir=os.environ.get('BENCH_DISK')))
    ways = res.setdefault('ways', [])
    def save(): out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1, default=str))
    for spec in a.ways.split(','):
        try: rec, run_path = run_way(spec, model, ids, tasks, a.budget, a.smoke, work_dir, hw, gpu_name)
        except Exception as e:
            import traceback; traceback.print_exc(); res.setdefault('errors', []).append(dict(spec=spec, error=f'{type(e).__name__}: {e}')); save(); continue
        ways[:] = [w for w in ways if way_key(w) != way_key(rec)] + [rec]
        save()
    from arc_nb.scheduler import RunConfig
    icfg = RunConfig(**settings_for('arc_nb', 'greedy', a.smoke)).infer()
    res['tokens_check'] = check_tokens(ways, expected_rows(tasks, icfg, 'greedy'))
    save()
    scheduled_records(ways, out.parent/'batched_inference.json')
    import tarfile
    with tarfile.open(out.with_suffix('.runs.tgz'), 'w:gz') as tf:  # events, resources, logs and config of every run, for a second look
        for f in sorted(work_dir.rglob('*')):
            if f.is_file() and (f.suffix in ('.jsonl', '.csv', '.log') or f.name in ('config.json', 'score.json')): tf.add(f, f.relative_to(work_dir))
    table(res)

def processes(slots: str) -> int:
    "Worker processes of a record's slots: 'T/I' split, 'fused:T' fused."
    return int(slots.split(':')[1]) if slots.startswith('fused:') else sum(map(int, slots.split('/')))

def way_key(w):
    "What makes two records the same way: way, regime, slots, tasks per worker and memory limit (a later record replaces an earlier one)."
    st = w.get('settings') or {}
    return (w['way'], w['regime'], w['slots'], st.get('tasks_per_worker', 1), st.get('gpu_memory_gb'))

def scheduled_records(ways, path):
    "Issue 21's `scheduled` records (in batched_inference.json beside the output): the budget and what each arc_nb_batched run did with it."
    recs = [dict(way=w['way'], regime=w['regime'], slots=w['slots'], budget_s=w['budget_s'], used_s=w['wall_s'], tasks=w['tasks'],
                 trained=w['trained'], tasks_done=w['tasks_done'], tests=w['tests'], tests_predicted=w['tests_predicted'],
                 tests_full=w.get('tests_full'), tests_at_fallback_with_adapter=w.get('tests_at_fallback_with_adapter'),
                 unused_pct=100 * max(0.0, w['budget_s'] - w['wall_s']) / w['budget_s'], work_remained=w['tasks_done'] < w['tasks'])
            for w in ways if w['way'] == 'arc_nb_batched' and w.get('budget_s')]
    if not recs: return
    res = json.loads(path.read_text()) if path.exists() else {}
    res['scheduled'] = [r for r in res.get('scheduled', []) if (r['regime'], r['slots']) not in {(x['regime'], x['slots']) for x in recs}] + recs
    path.write_text(json.dumps(res, indent=1))

# ---------------------------------------------------------------------------------------------------------
def eval_work(settings):
    "The useful work of every ARC-AGI-2 evaluation task in the greedy regime, from token counts alone (for the projection)."
    from arc_nb.data import load_tasks
    from arc_nb.encoding import make_compact_tokenizer, check_tokenizer
    from arc_nb.scheduler import RunConfig
    from arc_nb.ttt import task_sequences
    import workload_bias
    v = check_tokenizer(make_compact_tokenizer())
    cfg = RunConfig(**dict(settings, min_prob=None))
    tc, ic = cfg.ttt(), cfg.infer()
    tot = dict(tasks=0, tests=0, train_tokens=0, tokens_sq=0, steps=0, steps_batched=0, rows=0, kv=0, tokens=0, ctx=0)
    for tid, t in load_tasks('arc-agi-2/evaluation').items():
        lens = [len(s) for s in task_sequences(v, t, tc)]
        tot['tasks'] += 1; tot['tests'] += len(t.test); tot['train_tokens'] += sum(lens); tot['tokens_sq'] += sum(x * x for x in lens)
        fed = []
        for p, (ans, _) in workload_bias.answers(v, {tid: t}, ic, 'greedy').items():
            P, A = len(p), len(ans)
            tot['steps'] += A - 1; tot['rows'] += A - 1; tot['kv'] += sum(P + k + 1 for k in range(A - 1))
            # the search's prefill, then rescoring: the prompt again and one candidate of A tokens (A - 1 fed)
            tot['tokens'] += 2 * P + A - 1; tot['ctx'] += P * (P + 1) + (A - 1) * P + (A - 1) * A // 2
            fed.append(A - 1)
        # views searched as one batch (arc_nb_batched): a test input's steps are its longest view's (answers() lists a
        # test input's n views one after another)
        tot['steps_batched'] += sum(max(fed[i:i + ic.n]) for i in range(0, len(fed), ic.n))
    return tot

def project(res):
    "Hours for 240 tasks at each way's measured useful-work rate: on this GPU, and on 4 L4s (a projection, see L4)."
    m, ew = res['model'], res.get('eval_work')
    if not ew or 'steps_batched' not in ew: ew = eval_work(res['settings'])
    res['eval_work'] = ew
    lora = next((w['useful']['lora_bytes'] for w in res['ways'] if w['useful'].get('lora_bytes')), 0)
    def seconds(flops, bw, steps):
        f = 4 * m['params'] * ew['train_tokens'] + 6 * m['layers'] * m['d_model'] * ew['tokens_sq'] + 2 * m['params'] * ew['tokens'] + 4 * m['layers'] * m['d_model'] * ew['ctx']
        b = steps * (m['weight_bytes'] + lora) + ew['kv'] * m['kv_bytes_per_token']
        return (f / flops + b / bw) / ew['tasks']  # per task, at the roofline
    rows = []
    for w in res['ways']:
        if w['regime'] != 'greedy' or not w['useful_util_pct']: continue
        steps = ew['steps_batched'] if w['way'] in BATCHED else ew['steps']  # a step reads the weights once for all its rows
        here, l4 = seconds(res['roofline']['flops'], res['roofline']['bandwidth'], steps), seconds(L4['flops'], L4['bandwidth'], steps)
        f = w['useful_util_pct'] / 100
        rows.append(dict(way=w['way'], slots=w['slots'], useful_util_pct=w['useful_util_pct'], hours_240_this_gpu=240 * here / f / 3600,
                         hours_240_4xL4=240 * l4 / f / 3600 / 4, selection_tasks_per_gpu_hour=w['tasks_per_gpu_hour'],
                         roofline_s_per_task_this_gpu=here, roofline_s_per_task_L4=l4))
    here, l4 = seconds(res['roofline']['flops'], res['roofline']['bandwidth'], ew['steps']), seconds(L4['flops'], L4['bandwidth'], ew['steps'])
    res['projection'] = dict(rows=rows, roofline_s_per_eval_task_this_gpu=here, roofline_s_per_eval_task_L4=l4, L4=L4,
                             assumptions='240 tasks like the 120 ARC-AGI-2 evaluation tasks (greedy regime, 8 views, the reference settings); '
                                         'each way keeps the useful-work utilisation it reached on the selection; 4 L4s share the work perfectly; '
                                         'memory is not modelled: a bf16 7.24B model (14.5 GB) leaves ~9 GB of a 24 GB L4, so the 2/3-slot '
                                         'configurations measured here do not fit there as they are (issue 22)')
    return res

def resplit(r, tgz):
    "Recompute each run's process-seconds split from the event logs kept beside its call's JSON (NAME.runs.tgz)."
    import tarfile
    tmp = Path(tempfile.mkdtemp())
    with tarfile.open(tgz) as tf: tf.extractall(tmp)
    from arc_nb.plots import read_events
    for w in r.get('ways', []):
        st = w.get('settings') or {}
        sfx = (f"-k{st['tasks_per_worker']}" if w['way'] == 'arc_nb_multitask' and st.get('tasks_per_worker') else '') + \
              (f"-mem{st['gpu_memory_gb']:g}" if st.get('gpu_memory_gb') else '')
        names = [f"{w['way']}-{w['regime']}-{w['slots'].replace('/', '-').replace(':', '-')}{sfx}", f"{w['way']}-{w['regime']}"]  # run_way's folder names
        d = next((tmp/n for n in names if (tmp/n).exists()), None)
        if d is None: continue
        t1 = read_events(d).query("event == 'run_end'").time.max()  # the call measured its wall from the process start: end - wall
        w['process_seconds'] = process_split(d, processes(w['slots']), t1 - w['wall_s'], t1)
        w['process_seconds_per_task_done'] = {k: v / max(w['tasks_done'], 1) for k, v in w['process_seconds'].items()}

def merge(files, out):
    res = {}
    for f in files:
        r = json.loads(Path(f).read_text())
        tgz = Path(f).with_suffix('.runs.tgz')
        if tgz.exists(): resplit(r, tgz)
        for k, v in r.items():
            if k == 'ways':
                for w in v: res.setdefault('ways', [])[:] = [x for x in res.get('ways', []) if way_key(x) != way_key(w)] + [w]
            elif k == 'calls': res.setdefault('calls', []).extend(v)
            elif k not in ('tokens_check', 'projection'): res[k] = v
    from arc_nb.data import load_tasks
    tasks = {t: load_tasks('arc-agi-2/evaluation')[t] for t in res['selection']}
    from arc_nb.scheduler import RunConfig
    res['tokens_check'] = check_tokens(res['ways'], expected_rows(tasks, RunConfig(**dict(res['settings'], min_prob=None)).infer(), 'greedy'))
    project(res)
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1, default=str))
    table(res)

def table(res):
    log('\n| way | regime | slots | K | done | tests | wall s | tasks/GPU-h | NVML % | useful % | decode tok | train tok | loads | peak GB/proc | GPU GB |')
    log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for w in res['ways']:
        log(f"| {w['way']} | {w['regime']} | {w['slots']} | {(w.get('settings') or {}).get('tasks_per_worker', 1)} | {w['tasks_done']}/{w['tasks']} | {w['tests_predicted']}/{w['tests']} | {w['wall_s']:.0f} | "
            f"{w['tasks_per_gpu_hour']:.0f} | {w['nvml_util_pct'] or 0:.0f} | {w['useful_util_pct']:.1f} | {w['decode_tokens']} | {w['train_tokens']} | "
            f"{w['model_loads']} | {w['peak_mem_gb'] or 0:.1f} | {w['peak_mem_gb_per_gpu'] or 0:.1f} |")
    tc = res.get('tokens_check') or {}
    log(f"greedy decode tokens the same in every way, per task: {tc.get('all_same')} "
        f"({sum(tc.get('same', {}).values())}/{len(tc.get('same', {}))} tasks predicted in every way compared)")

if __name__ == '__main__':
    sys.exit(main())
