"The models competitors bring (issue 23), end to end on the CPU: Qwen3-shaped random models, LoRA on the embedding and the head, rsLoRA, a head trained in full."
import json, subprocess
import pytest
from conftest import arc_nb_cmd
from arc_nb.model import make_tiny_model, FAMILIES
from arc_nb.scheduler import RunConfig, RunDir, launch
from arc_nb.scoring import validate_submission

FAST = ['--data', 'arc-agi-2/evaluation', '--tasks', 'smallest:2', '--gpus', 'cpu', '--epochs', '1', '--n', '2', '--min-prob', '0.1',
        '--lora-rank', '4', '--max-seq-len', '2048', '--cpu-threads', '1', '--quiet']

def check(run, n):
    "Every task trained (train.json: a fused run keeps its adapters in memory) and predicted, a valid submission."
    assert all(run.train_json(t).exists() for t in run.tasks()) and all(run.predicted(t) for t in run.tasks()) and len(run.tasks()) == n
    assert validate_submission(json.loads(run.submission_file.read_text()), run.tasks()) == []

def test_qwen3_with_embedding_and_head_lora_and_rslora_runs_end_to_end(tmp_path):
    model = make_tiny_model(tmp_path / 'qwen3', family='qwen3', kv_heads=2)
    out = tmp_path / 'run'
    p = subprocess.run(arc_nb_cmd() + ['run', '--model', str(model), '--out', str(out), '--target-modules',
                                       'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,embed_tokens,lm_head', '--use-rslora', 'true'] + FAST,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    run = RunDir(out)
    check(run, 2)
    cfg = json.loads((run.adapter(next(iter(run.tasks()))) / 'adapter_config.json').read_text())
    assert {'embed_tokens', 'lm_head'} <= set(cfg['target_modules']) and cfg['use_rslora'] is True

@pytest.mark.parametrize('family', [f for f in FAMILIES if f != 'llama'])
def test_head_trained_in_full_split_and_fused(tmp_path, family):
    "modules_to_save: each task starts from the base model's head (reset in place), the adapter carries the trained copy."
    model = make_tiny_model(tmp_path / family, family=family, kv_heads=2)
    kw = dict(data='arc-agi-2/evaluation', tasks='smallest:2', model=str(model), gpus='cpu', epochs=1, n=2, min_prob=0.1, lora_rank=4,
              max_seq_len=2048, cpu_threads=1, target_modules='q_proj,v_proj', modules_to_save='lm_head')
    launch(RunConfig(out=str(tmp_path / 'split'), **kw), progress=False)
    launch(RunConfig(out=str(tmp_path / 'fused'), mode='fused', **kw), progress=False)
    split, fused = RunDir(tmp_path / 'split'), RunDir(tmp_path / 'fused')
    check(split, 2); check(fused, 2)
    assert json.loads(split.submission_file.read_text()) == json.loads(fused.submission_file.read_text())
    from safetensors.torch import load_file
    sd = load_file(split.adapter(next(iter(split.tasks()))) / 'adapter_model.safetensors')
    assert any(k.endswith('lm_head.weight') for k in sd)

def test_several_tasks_per_worker_refuse_embedding_targets():
    with pytest.raises(ValueError, match='projections only'):
        RunConfig(tasks_per_worker=2, target_modules='q_proj,embed_tokens')
    with pytest.raises(ValueError, match='expected true or false'):
        from arc_nb.scheduler import _bool
        _bool('maybe')

def llama2_like():
    "A sentencepiece-style tokenizer as Llama 2 and Mistral have: a word-start piece before the text, the newline a byte token."
    from tokenizers import Tokenizer, models, normalizers as n, pre_tokenizers as pt, decoders as dd
    from transformers import PreTrainedTokenizerFast
    toks = ['<unk>', '<s>', '</s>'] + [f'<0x{b:02X}>' for b in range(256)] + ['▁', *'0123456789', 'I', 'O', '▁I', '▁O']
    t = Tokenizer(models.BPE({s: i for i, s in enumerate(toks)}, [('▁', 'I'), ('▁', 'O')], unk_token='<unk>', byte_fallback=True, fuse_unk=True))
    t.normalizer = n.Sequence([n.Prepend('▁'), n.Replace(' ', '▁')])
    t.pre_tokenizer = pt.Digits(individual_digits=True)
    t.decoder = dd.Sequence([dd.Replace('▁', ' '), dd.ByteFallback(), dd.Fuse(), dd.Strip(' ', 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=t, bos_token='<s>', eos_token='</s>', unk_token='<unk>')

def test_llama2_style_newline_is_one_token():
    "Llama 2 / Mistral encode '\\n' alone as the word-start piece then <0x0A>: the cell table takes <0x0A> (it was refused as 2 tokens)."
    from arc_nb.encoding import check_tokenizer
    tok = llama2_like()
    assert tok.convert_ids_to_tokens(tok.encode('\n', add_special_tokens=False)) == ['▁', '<0x0A>']
    v = check_tokenizer(tok)
    assert tok.convert_ids_to_tokens([v.newline]) == ['<0x0A>'] and tok.convert_ids_to_tokens(list(v.cells)) == list('0123456789')

def test_4bit_refused_at_once_without_bitsandbytes_or_a_gpu(tmp_path, monkeypatch):
    "4-bit needs bitsandbytes and a GPU: either missing stops the run before any worker starts, in one line."
    import importlib.util
    from arc_nb.scheduler import open_run, RunError
    kw = dict(tasks='smallest:1', gpus='cpu', load_in_4bit=True)
    if importlib.util.find_spec('bitsandbytes') is None:
        with pytest.raises(RunError, match='needs the bitsandbytes package'):
            open_run(RunConfig(out=str(tmp_path / 'a'), **kw))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: object() if name == 'bitsandbytes' else real(name, *a))
    with pytest.raises(RunError, match='needs a GPU'):
        open_run(RunConfig(out=str(tmp_path / 'b'), **kw))

def _no_4bit():
    import importlib.util, torch
    if importlib.util.find_spec('bitsandbytes') is None: return 'bitsandbytes is not installed'
    if not torch.cuda.is_available(): return 'no CUDA GPU'
    return None

@pytest.mark.skipif(_no_4bit() is not None, reason=f"4-bit needs bitsandbytes and a CUDA GPU ({_no_4bit()}); it was run on the H200 "
                    "(benchmarks/models.py, section run_4bit, benchmarks/README.md section 0d)")
def test_4bit_run_trains_hot_loads_and_searches(tmp_path):
    "On a GPU with bitsandbytes: `arc-nb run --load-in-4bit` trains, saves, hot-loads and searches, and the worker says once that it decodes eagerly."
    model = make_tiny_model(tmp_path / 'm', family='llama', kv_heads=2)
    out = tmp_path / 'run'
    p = subprocess.run(arc_nb_cmd() + ['run', '--model', str(model), '--out', str(out), '--load-in-4bit', 'true']
                       + [x for x in FAST if x not in ('--gpus', 'cpu')], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    check(RunDir(out), 2)
    logs = ''.join(f.read_text() for f in (out / 'logs').glob('*.log'))
    assert logs.count('decoding eagerly: the static-cache decoder does not support this model (quantized weights)') >= 1
